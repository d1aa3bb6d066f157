"""The notebook glue and panels: pure helpers first, then the panels against the lab."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
import pytest

from mailhat_nb.analysis.frames import messages_frame
from mailhat_nb.app import params as notebook
from mailhat_nb.diagnose import Preset, PresetResult, Step, Target
from mailhat_nb.diagnose.transcript import Line
from mailhat_nb.errors import AuthFailed, UsageError
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.secrets import Secret
from mailhat_nb.sync.progress import Progress
from mailhat_nb.widgets import render
from mailhat_nb.widgets._base import WIDGET_VIEW, describe_error
from mailhat_nb.widgets.correspondence import (
    CorrespondencePanel,
    contact_options,
    default_choice,
    plural,
)
from mailhat_nb.widgets.doctor import DoctorPanel, progress_text, provider_options, ticket_filename
from mailhat_nb.widgets.sync import SyncPanel, folder_label, preview_frame, progress_words
from mailhat_nb.widgets.training import ScenarioRun

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Sup3r-s3cret-Pw"


@pytest.fixture(autouse=True)
def _clean_kernel_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """No remembered connection and no password in the environment leaks between tests."""
    notebook.forget()
    monkeypatch.delenv(notebook.DEFAULT_PASSWORD_ENV, raising=False)


class FakeLab:
    """Just enough of :class:`Lab` for the password rules."""

    def __init__(self, users: list[str]) -> None:
        self.users = users

    def info(self) -> Any:
        return type("Info", (), {"users": self.users})()

    def password(self, user: str) -> str:
        return f"lab-password-of-{user}"


# --------------------------------------------------------------------------- the password


def test_typed_password_wins_over_environment_and_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PW", "from-env")
    found = notebook.find_password("alice@localhost", "typed!", "MY_PW",
                                   FakeLab(["alice@localhost"]))  # type: ignore[arg-type]
    assert found.secret.reveal() == "typed!"
    assert found.source == "from the form"


def test_environment_variable_comes_before_the_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PW", "from-env")
    found = notebook.find_password("alice@localhost", "", "MY_PW",
                                   FakeLab(["alice@localhost"]))  # type: ignore[arg-type]
    assert found.secret.reveal() == "from-env"
    assert "MY_PW" in found.source


def test_lab_file_only_for_lab_accounts() -> None:
    lab = FakeLab(["alice@localhost"])
    found = notebook.find_password("Alice@Localhost", "", "UNSET_VAR_X", lab)  # type: ignore[arg-type]
    assert found.secret.reveal() == "lab-password-of-alice"
    assert "lab" in found.source
    with pytest.raises(UsageError) as err:
        notebook.find_password("bob@customer.example", "", "UNSET_VAR_X", lab)  # type: ignore[arg-type]
    assert "UNSET_VAR_X" in str(err.value)
    assert "lab-password" not in str(err.value)


def test_no_password_anywhere_says_where_to_put_one() -> None:
    with pytest.raises(UsageError, match="type it into the Password box"):
        notebook.find_password("x@example.com", "", None, None)


def test_a_password_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PW", SECRET)
    found = notebook.find_password("x@example.com", "", "MY_PW", None)
    assert SECRET not in repr(found)
    assert SECRET not in str(found)


# --------------------------------------------------------------------------- parameters


def test_lab_keyword_without_a_lab_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILHAT_LAB_DIR", "/tmp/mh-no-lab-here")
    with pytest.raises(UsageError, match="lab server is not running"):
        notebook.resolve_presets("lab")
    with pytest.raises(UsageError, match="lab server is not running"):
        notebook.resolve_ca_file("LAB")


def test_presets_and_ca_parameters_pass_through(tmp_path: Path) -> None:
    assert notebook.resolve_presets("") is None
    assert notebook.resolve_presets("auto") is None
    assert notebook.resolve_presets(" hostgator ") == "hostgator"
    assert notebook.resolve_ca_file("") is None
    pem = tmp_path / "ca.pem"
    pem.write_text("x")
    assert notebook.resolve_ca_file(str(pem)) == str(pem)
    with pytest.raises(UsageError, match="does not exist"):
        notebook.resolve_ca_file(str(tmp_path / "missing.pem"))


def test_remembered_connections_are_per_address() -> None:
    from mailhat_nb.sync.imap import ImapSettings

    conn = notebook.Connection(ImapSettings("Ann@Example.com", "mail.example.com"),
                               Secret(SECRET), "IMAP option 1", "a test")
    notebook.remember(conn)
    assert notebook.recall(" ann@example.com") is conn
    assert notebook.recall("bob@example.com") is None
    assert SECRET not in repr(conn)
    notebook.forget("ann@example.com")
    assert notebook.recall("ann@example.com") is None


# --------------------------------------------------------------------------- rendering


def _result(code: str = "ok", steps: list[Step] | None = None, port: int = 993,
            lines: list[str] = ()) -> PresetResult:  # type: ignore[assignment]
    preset = Preset(id="hostgator-imap-ssl", label="IMAP option 1", protocol="imap",
                    host="{server}", port=port, security="ssl")
    return PresetResult(
        target=Target(preset, "gator1234.hostgator.com"), code=code,
        steps=steps if steps is not None else [Step("dns"), Step("tcp"), Step("tls")],
        transcript=[Line(1.0, "S", text) for text in lines])


def test_server_text_is_escaped_in_transcripts_and_grid() -> None:
    evil = "<script>alert(1)</script>"
    result = _result("no_greeting", [Step("dns"), Step("tcp"), Step("greeting", "fail")],
                     lines=[evil])
    out = render.transcripts_html([result])
    assert evil not in out
    assert "&lt;script&gt;" in out


def test_the_certificate_helper_offers_only_a_vetted_name() -> None:
    # D4: a name the certificate covers is offered once it leads to the same server;
    # otherwise the helper says why none is.
    steps = [Step("dns"), Step("tcp"), Step("tls", "fail")]
    base = {"names": ["shared42.hosting.example"], "issuer": "CA", "covers_host": False}
    vetted = _result("cert_hostname_mismatch", steps)
    vetted.certificate = {**base, "recommended_host": "shared42.hosting.example"}
    html = render.certificate_html([vetted])
    assert "Use this server name instead" in html
    assert "leads here" not in html
    nowhere = _result("cert_hostname_mismatch", steps)
    nowhere.certificate = {**base, "not_here": "shared42.hosting.example does not resolve"}
    html = render.certificate_html([nowhere])
    assert "Use this server name instead" not in html
    assert "No name it covers leads here" in html
    assert "shared42.hosting.example does not resolve" in html


def test_layer_status_is_the_worst_step_of_the_layer() -> None:
    result = _result("plaintext_password_exposed", [
        Step("dns"), Step("capabilities", "ok"), Step("capabilities_tls", "warn"),
        Step("auth", "fail")])
    assert render.layer_status(result, "Caps") == "warn"
    assert render.layer_status(result, "Auth") == "fail"
    assert render.layer_status(result, "Mailbox") is None


def test_grid_marks_pending_rows_until_their_result_arrives() -> None:
    done = _result("ok", [Step("dns"), Step("tcp"), Step("tls"), Step("auth")])
    other = Target(Preset(id="x", label="IMAP option 2", protocol="imap", host="{server}",
                          port=143, security="none"), "mail.example.com")
    html = render.grid_html([done.target, other], {render.target_key(done): done})
    assert html.count("testing…") == 1
    assert "✓ Works" in html


def test_health_sentences_name_incomplete_folders_first() -> None:
    health = pd.DataFrame({
        "account": ["a", "a"], "folder": ["INBOX", "Sent"], "rows": [10, 5],
        "server_count": pd.array([12, 5], dtype="Int64"), "missing": pd.array([2, 0],
                                                                                dtype="Int64"),
        "duplicates": [4, 0], "date_fallbacks": [1, 0], "no_date": [0, 0],
        "suspect_dates": [0, 0], "defects": [0, 3], "uidvalidity_events": [0, 0]})
    said = render.health_sentences(health)
    assert said[0] == ("fail", "15 messages in 2 folders.")
    assert said[1][0] == "fail"
    assert "INBOX" in said[1][1]
    text = " ".join(s for _, s in said)
    assert "3 messages had header parts" in text
    assert "4 rows are copies" in text
    clean = health.assign(missing=pd.array([0, 0], dtype="Int64"), date_fallbacks=[0, 0],
                          defects=[0, 0], duplicates=[0, 0])
    assert render.health_sentences(clean) == [
        ("ok", "15 messages in 2 folders, every folder matches the server's count.")]


def test_describe_error_masks_secrets_and_names_foreign_errors() -> None:
    assert describe_error(AuthFailed(f"rejected {SECRET}"), [Secret(SECRET)]) == "rejected ***"
    assert describe_error(KeyError("x")).startswith("Unexpected error (KeyError)")


# --------------------------------------------------------------------------- small helpers


def test_provider_list_puts_the_notebooks_choice_first() -> None:
    lab = provider_options("lab")
    assert lab[0][1] == "lab"
    assert lab[-1][1] == "auto"
    assert ("HostGator", "hostgator") in lab
    assert provider_options("/x/corp.toml")[0] == ("Presets file: corp.toml", "/x/corp.toml")
    assert provider_options("gmail")[0] == ("HostGator", "hostgator")


def test_ticket_file_name_is_safe_everywhere() -> None:
    name = ticket_filename("a b/c@ex.com", dt.datetime(2024, 5, 6, 7, 8, 9))
    assert name == "diagnosis-a_b_c-at-ex.com-20240506-070809.md"
    assert re.fullmatch(r"[\w.-]+", name)


def test_progress_lines() -> None:
    assert progress_text(3, 11) == "Testing 11 presets at once: 3 finished…"
    assert progress_text(11, 11).startswith("All 11 presets tested")
    event = Progress(done=50, total=200, rate=25.0, eta=6.0, folder="INBOX", phase="fetch",
                     elapsed=2.0)
    assert progress_words(event) == (
        "INBOX: 50 of 200 new messages at 25 messages/s, about 6 s to go")
    assert progress_words(Progress(9, 9, 1, 0, "", "done", 3.0)).startswith("Done: 9 new")
    assert folder_label("INBOX", 1234) == "INBOX (1,234 messages)"


# --------------------------------------------------------------------------- panels (no server)


def test_panel_shows_a_widget_and_a_static_snapshot() -> None:
    panel = DoctorPanel(email="x@example.com", presets="hostgator", ca_file="")
    bundle = panel._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == panel.widget.model_id
    assert "connection doctor form" in bundle["text/html"]


def test_doctor_shows_bad_input_as_a_sentence_and_clears_the_password() -> None:
    panel = DoctorPanel(email="not an address", presets="hostgator", ca_file="",
                        password_env="")
    panel.password.value = SECRET
    assert panel.run() is None
    assert panel.password.value == ""
    assert panel.error
    assert "Traceback" not in panel.error
    assert SECRET not in panel.status.value + panel.static_html()
    assert not panel.run_button.disabled


def test_a_pasted_line_break_in_the_password_is_a_sentence_not_a_traceback() -> None:
    panel = DoctorPanel(email="x@example.com", server="mail.example.com", presets="hostgator",
                        ca_file="", password_env="")
    panel.password.value = SECRET + "\n"
    assert panel.run() is None
    assert "contains a line break" in panel.error
    assert "Traceback" not in panel.error
    assert SECRET not in panel.status.value + panel.static_html()


def _frame() -> pd.DataFrame:
    def row(uid: int, sender: str, name: str, to: list[str], folder: str = "INBOX",
            day: int = 1, mid: str | None = None) -> dict[str, Any]:
        return {"account": "me@example.com", "folder": folder, "uidvalidity": 1, "uid": uid,
                "message_id": mid or f"m{uid}@x", "from_addr": sender, "from_name": name,
                "to_addrs": to, "subject": f"s{uid}", "date_source": "header",
                "folder_role": "sent" if folder == "Sent" else "inbox",
                "date": dt.datetime(2024, 1, day, 9, tzinfo=dt.UTC)}
    rows = [row(1, "ann@acme.example", "Ann Lee", ["me@example.com"]),
            row(2, "ann.lee@home.example", "Ann Lee", ["me@example.com"], day=2),
            row(3, "me@example.com", "Me", ["ann@acme.example"], folder="Sent", day=3),
            row(4, "bob@acme.example", "Bob", ["me@example.com"], day=4)]
    return messages_frame(rows)


def test_correspondence_aliases_merge_only_when_accepted(tmp_path: Path) -> None:
    panel = CorrespondencePanel(store=tmp_path / "unused", account="me@example.com",
                                messages=_frame(), export_dir=tmp_path / "exports")
    assert panel.error == ""
    before = set(panel.people["contact"])
    assert {"ann@acme.example", "ann.lee@home.example"} <= before
    assert list(panel.suggestions["address"]) == ["ann.lee@home.example"]
    panel.apply_decisions()  # nothing accepted: nothing merged
    assert set(panel.people["contact"]) == before
    panel.decide("ann.lee@home.example", True)
    panel.apply_decisions()
    people = panel.people.set_index("contact")
    assert "ann.lee@home.example" not in people.index
    assert people.loc["ann@acme.example", "received"] == 2
    assert people.loc["ann@acme.example", "sent"] == 1
    assert "accepted" in panel.aliases.static_html()
    with pytest.raises(UsageError):
        panel.decide("nobody@x.example", True)


def test_correspondence_charts_and_exports(tmp_path: Path) -> None:
    panel = CorrespondencePanel(store=tmp_path, messages=_frame(), contacts=["BOB@acme.example"],
                                export_dir=tmp_path / "exports")
    assert panel.chosen() == ["bob@acme.example"]
    html = panel.charts.static_html()
    assert html.count("data:image/png;base64,") == 4
    saved = panel.export("people.json")
    data = json.loads(saved.path.read_text())
    assert {r["contact"] for r in data} == {"ann@acme.example", "ann.lee@home.example",
                                            "bob@acme.example"}
    assert saved.path.parent == (tmp_path / "exports").resolve()
    with pytest.raises(UsageError):
        panel.export("../escape.csv")


def test_correspondence_parameter_slips_are_sentences_not_tracebacks(tmp_path: Path) -> None:
    # One string where a list belongs is that one address, not its letters.
    one = CorrespondencePanel(store=tmp_path, messages=_frame(), me="old@example.com",
                              contacts="bob@acme.example")
    assert one.error == ""
    assert "old@example.com" in set(one.self_table["address"])
    assert one.chosen() == ["bob@acme.example"]
    # A typo in `me` is named once; every other part says "nothing to show".
    typo = CorrespondencePanel(store=tmp_path, messages=_frame(), me=["old address@example.com"])
    assert "'old address@example.com' is not an email address" in typo.error
    for part in (typo.charts, typo.aliases, typo.exports):
        assert "Nothing to show" in part.static_html()
    # An export folder that cannot be made is a notice.
    panel = CorrespondencePanel(store=tmp_path, messages=_frame(),
                                export_dir=tmp_path / "file.txt" / "exports")
    (tmp_path / "file.txt").write_text("x")
    notice = panel.save("contacts.csv")
    assert isinstance(notice, render.Notice)
    assert "cannot save contacts.csv" in str(notice.text)
    # A period that is not one is said, not silently made monthly.
    weekly = CorrespondencePanel(store=tmp_path, messages=_frame(), period="Q")
    assert "period 'Q' is not one of 'D' (day)" in weekly.error


def test_an_export_says_when_it_replaced_a_file(tmp_path: Path) -> None:
    panel = CorrespondencePanel(store=tmp_path, messages=_frame(), export_dir=tmp_path / "x")
    assert "replacing" not in str(panel.export("contacts.csv"))
    assert "replacing the earlier file of that name" in str(panel.export("contacts.csv"))


def test_a_password_pasted_as_password_env_never_reaches_the_page(tmp_path: Path) -> None:
    doctor = DoctorPanel(email="x@example.com", presets="hostgator", ca_file="",
                         password_env=SECRET)
    sync = SyncPanel(email="x@example.com", store=tmp_path / "s", password_env=SECRET)
    for text in (doctor.password.placeholder, sync.password.placeholder, sync.how.value,
                 doctor.static_html(), sync.static_html()):
        assert SECRET not in text
    assert "MAILHAT" in DoctorPanel(email="x@example.com").password.placeholder


def test_an_input_error_clears_the_previous_runs_grid() -> None:
    panel = DoctorPanel(email="alice@@localhost", presets="hostgator", ca_file="",
                        password_env="")
    panel.grid.value = "<table>an earlier run's ✓ Works rows</table>"
    assert panel.run() is None
    assert "more than one @" in panel.error
    assert panel.grid.value == ""


def test_correspondence_without_a_store_says_what_to_do(tmp_path: Path) -> None:
    panel = CorrespondencePanel(store=tmp_path / "nothing")
    assert "sync the mailbox first" in panel.error
    assert "sync the mailbox first" in panel.static_html()
    assert "Nothing to show: no store at" in panel.charts.static_html()


def test_walkthrough_without_the_lab_says_so_in_every_cell(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from mailhat_nb.widgets import Walkthrough

    monkeypatch.setenv("MAILHAT_LAB_DIR", "/tmp/mh-no-lab-here")
    walk = Walkthrough("alice@localhost")
    for view in (walk.presets_table(), walk.scenario("normal"), walk.restore()):
        assert "needs the lab server" in view._repr_html_()


def test_saving_from_a_cell_shows_a_problem_instead_of_raising(tmp_path: Path) -> None:
    panel = CorrespondencePanel(store=tmp_path / "nothing")
    shown = panel.save("contacts.csv")
    assert "no messages loaded" in shown._repr_html_()


def test_contact_chooser_helpers() -> None:
    people = pd.DataFrame({"contact": ["a@x.example", "b@x.example"], "name": ["Ann", None],
                           "total": [5, 2]})
    assert contact_options(people) == [("Ann <a@x.example> · 5", "a@x.example"),
                                       ("b@x.example · 2", "b@x.example")]
    assert plural(1, "chosen contact") == "1 chosen contact"
    assert plural(2, "contact") == "2 contacts"
    assert default_choice(people, ["B@x.example", "zz@x.example"], 1) == ["b@x.example"]
    assert default_choice(people, [], 1) == ["a@x.example"]


def test_preview_frame_reads_like_a_mail_list() -> None:
    preview = preview_frame(_frame().assign(direction="received"), rows=2)
    assert list(preview["subject"]) == ["s4", "s3"]
    assert preview["date"].iloc[0] == "2024-01-04 09:00"


# --------------------------------------------------------------------------- layering


def test_only_the_widgets_package_imports_ipywidgets_or_ipython() -> None:
    offenders = []
    for path in (ROOT / "mailhat_nb").rglob("*.py"):
        if "widgets" in path.relative_to(ROOT / "mailhat_nb").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("ipywidgets", "IPython") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# --------------------------------------------------------------------------- against the lab


@pytest.fixture
def on_lab(lab_info: LabInfo, monkeypatch: pytest.MonkeyPatch) -> LabInfo:
    """Point "lab" parameters at the session's lab."""
    monkeypatch.setenv("MAILHAT_LAB_DIR", lab_info.root)
    return lab_info


@pytest.mark.lab
def test_doctor_panel_with_a_typed_password(on_lab: LabInfo, lab_password: str,
                                            tmp_path: Path) -> None:
    panel = DoctorPanel(email=on_lab.email("alice"), server=on_lab.server, password_env="",
                        timeout=5, export_dir=tmp_path)
    seen: list[str] = []
    panel.grid.observe(lambda ch: seen.append(ch["new"]), names="value")
    panel.password.value = lab_password
    report = panel.run()
    assert report is not None
    assert report.verdict.code == "ok"
    assert panel.password.value == ""
    assert panel.password_source == "from the form"
    # The grid was redrawn as results arrived, pending rows disappearing one by one.
    pending = [html.count("testing…") for html in seen]
    assert pending[0] == len(panel.targets)
    assert pending[-1] == 0
    assert len(set(pending)) > 2
    assert "Use IMAP option 1" in panel.verdict.value
    path = panel.export()
    assert path is not None
    assert path.parent == tmp_path.resolve()
    text = path.read_text()
    assert "IMAP option 1" in text
    assert lab_password not in text
    assert lab_password not in panel.static_html()
    conn = notebook.recall(on_lab.email("alice"))
    assert conn is not None
    assert conn.settings.port == on_lab.ports["imaps"]


@pytest.mark.lab
def test_sync_panel_reuses_the_doctors_connection(on_lab: LabInfo, lab_password: str,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    doctor = DoctorPanel(email=on_lab.email("alice"), server=on_lab.server, password_env="",
                         timeout=5)
    doctor.password.value = lab_password
    assert doctor.run() is not None
    # From here on no password source exists but the remembered connection.
    monkeypatch.setattr(notebook, "running_lab", lambda: None)
    sync = SyncPanel(email=on_lab.email("alice"), store=tmp_path / "store", password_env="",
                     folders=["INBOX", "INBOX.Sent"], sync_now=True)
    assert sync.error == ""
    assert "reused, not asked again" in sync.how.value
    assert sync.summary is not None
    assert sync.summary.rows == (
        on_lab.folders["INBOX"] + on_lab.folders["INBOX.Sent"])
    assert sync.messages is not None
    assert set(sync.messages["folder"]) == {"INBOX", "INBOX.Sent"}
    assert "every folder matches the server&#x27;s count" in sync.static_html()
    assert lab_password not in sync.static_html()


@pytest.mark.lab
def test_after_a_good_verdict_the_doctor_syncs_in_place(
        on_lab: LabInfo, lab_password: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    doctor = DoctorPanel(email=on_lab.email("alice"), server=on_lab.server, password_env="",
                         timeout=5, dns_server="lab", store=tmp_path / "store")
    assert doctor.sync_offer.layout.display == "none"  # nothing to offer before a verdict
    doctor.password.value = lab_password
    assert doctor.run() is not None
    assert doctor.sync_offer.layout.display == ""
    assert doctor.sync_button.description == "Sync this mailbox"
    # The verdict first: the box, then the offer, then the grid.
    children = list(doctor.widget.children)
    assert children.index(doctor.verdict) < children.index(doctor.sync_offer) \
        < children.index(doctor.findings) < children.index(doctor.grid)
    # No other password source from here on: no lab file, no variable, an empty box.
    monkeypatch.setattr(notebook, "running_lab", lambda: None)
    doctor.sync_button.click()
    sync = doctor.sync
    assert sync is not None
    assert sync.error == "", sync.error
    assert sync.connection is doctor.connection  # the same setting, resolver and password
    assert sync.connection.settings.dns_server == on_lab.dns_server
    assert sync.connection.settings.port == on_lab.ports["imaps"]
    assert list(doctor.sync_area.children) == [sync.widget]
    assert sync.summary is not None
    assert sync.summary.rows == sum(on_lab.folders.values())
    assert "reused, not asked again" in sync.how.value
    assert sync.password.layout.display == "none"
    assert "Synced the headers from IMAP option 1" in str(sync.headline())
    # The password is in memory only: not in any widget's state, nor in what the page shows.
    state = json.dumps(w.Widget.get_manager_state(drop_defaults=False))
    assert lab_password not in state
    assert lab_password not in doctor.static_html()
    assert "every folder matches the server&#x27;s count" in doctor.static_html()
    # A new run puts the offer and the old sync away until its verdict is in.
    doctor.password.value = "wrong-" + lab_password
    doctor.run()
    assert doctor.sync is None
    assert list(doctor.sync_area.children) == []


@pytest.mark.lab
def test_the_sync_notebook_alone_asks_for_the_password_and_finds_the_setting(
        on_lab: LabInfo, lab_password: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    notebook.forget()  # a kernel of its own: nothing remembered
    monkeypatch.setattr(notebook, "running_lab", lambda: None)
    sync = SyncPanel(email=on_lab.email("alice"), server=on_lab.server, presets=on_lab.presets,
                     ca_file=on_lab.ca_file, store=tmp_path / "store", password_env="",
                     folders=["INBOX"])
    assert "Type the password" in sync.how.value
    assert sync.password.layout.display != "none"
    sync.password.value = lab_password
    assert sync.connect()
    assert sync.password.value == ""
    assert sync.connection is not None
    assert sync.connection.found_by == "a connection doctor run by this panel"
    assert sync.sync() is not None
    assert sync.summary is not None
    assert sync.summary.rows == on_lab.folders["INBOX"]


@pytest.mark.lab
def test_sync_panel_without_any_password_explains(on_lab: LabInfo, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notebook, "running_lab", lambda: None)
    sync = SyncPanel(email=on_lab.email("alice"), presets=on_lab.presets,
                     ca_file=on_lab.ca_file, store=tmp_path, password_env="", sync_now=True)
    assert sync.summary is None
    assert "type it into the Password box" in sync.error


@pytest.mark.lab
def test_doctor_panel_shows_a_pop_only_account_in_words(
        on_lab: LabInfo, scenario: Callable[[str], LabInfo]) -> None:
    scenario("pop-only")
    panel = DoctorPanel(email=on_lab.email("alice"), server=on_lab.server, timeout=3,
                        run_now=True)
    assert panel.report is not None
    assert panel.report.verdict.code == "pop_only"
    html = panel.verdict.value
    assert "POP-only account" in html
    assert "What to do:" in html
    assert "{" not in html  # every {host}-style blank filled
    assert notebook.recall(on_lab.email("alice")) is None


@pytest.mark.lab
def test_a_setting_with_a_catch_is_not_handed_to_the_sync(
        on_lab: LabInfo, scenario: Callable[[str], LabInfo]) -> None:
    good = DoctorPanel(email=on_lab.email("alice"), server=on_lab.server, timeout=3,
                       run_now=True)
    assert good.report is not None, good.error
    assert notebook.recall(on_lab.email("alice")) is not None
    scenario("wrong-host-cert")
    panel = DoctorPanel(email=on_lab.email("alice"), server=on_lab.server, timeout=3,
                        run_now=True)
    assert panel.report is not None
    # IMAP option 2 is usable, unencrypted: judged from the server's offer, no login sent
    assert panel.report.verdict.incoming is not None
    assert "not handed to the sync panel" in panel.status.value
    assert notebook.recall(on_lab.email("alice")) is None
    assert "⚠ Certificate for another name" in panel.verdict.value
    assert "usable now but untested (unencrypted, login not tried)" in panel.verdict.value
    assert panel.connection is None
    assert panel.sync_offer.layout.display == "none"  # no "Sync this mailbox" on a catch


def test_a_password_pasted_as_password_env_is_refused_unseen() -> None:
    from mailhat_nb.errors import UsageError

    with pytest.raises(UsageError) as caught:
        notebook.find_password("alice@localhost", "", "Hunter2 s3cret!", None)
    assert "Hunter2" not in str(caught.value)
    assert "NAME of an environment variable" in str(caught.value)


def _team_frame() -> pd.DataFrame:
    """Two accounts: ann writes to both, each writes to ann, alice writes to bob."""
    def row(account: str, uid: int, folder: str, sender: str, to: list[str],
            mid: str) -> dict[str, Any]:
        return {"account": account, "folder": folder, "uidvalidity": 1, "uid": uid,
                "message_id": mid, "from_addr": sender, "from_name": "", "to_addrs": to,
                "subject": mid, "date_source": "header",
                "folder_role": "sent" if folder == "Sent" else "inbox",
                "date": dt.datetime(2024, 1, uid, 9, tzinfo=dt.UTC)}
    a, b, ann = "alice@team.example", "bob@team.example", "ann@acme.example"
    return messages_frame([
        row(a, 1, "INBOX", ann, [a, b], "m1"), row(b, 1, "INBOX", ann, [a, b], "m1"),
        row(a, 2, "Sent", a, [ann], "m2"), row(b, 3, "Sent", b, [ann], "m3"),
        row(a, 4, "Sent", a, [b], "m4"), row(b, 4, "INBOX", a, [b], "m4")])


def test_correspondence_team_view_and_the_account_chooser(tmp_path: Path) -> None:
    panel = CorrespondencePanel(store=tmp_path, messages=_team_frame(),
                                export_dir=tmp_path / "exports")
    assert panel.error == ""
    assert panel.team
    assert [v for _, v in panel.view.options] == ["", "alice@team.example", "bob@team.example"]
    ann = panel.people.set_index("contact").loc["ann@acme.example"]
    assert (ann["sent"], ann["received"], ann["owner"]) == (2, 1, "alice@team.example")
    assert list(panel.tabs.titles)[-1] == "By teammate"
    assert panel.charts.static_html().count("data:image/png;base64,") == 5
    html = panel.static_html()
    assert "Mail inside the team" in html
    assert "Owner" in html
    inside = panel.table("internal")
    assert inside[["from_account", "to_account", "messages"]].values.tolist() == [
        ["alice@team.example", "bob@team.example", 1]]
    assert len(json.loads(panel.export("per.json", "by_account").path.read_text())) == 2
    # One account's view: bob's own numbers, alice is a contact there, no team tab.
    panel.view.value = "bob@team.example"
    assert panel.error == ""
    assert not panel.team
    bob = panel.people.set_index("contact")
    assert (bob.loc["ann@acme.example", "sent"], bob.loc["ann@acme.example", "received"]) == (1, 1)
    assert bob.loc["alice@team.example", "received"] == 1
    assert "By teammate" not in list(panel.tabs.titles)
    with pytest.raises(UsageError, match="team view"):
        panel.table("internal")
    # `me` for the team names whose address it is.
    mixed = CorrespondencePanel(store=tmp_path, messages=_team_frame(), me=["x@team.example"])
    assert "give me as {account: [addresses]}" in mixed.error
    given = CorrespondencePanel(store=tmp_path, messages=_team_frame(),
                                me={"bob@team.example": ["ann@acme.example"]})
    assert given.error == ""
    assert given.people.empty  # ann is bob's own address now: nobody is left outside
    started = CorrespondencePanel(store=tmp_path, messages=_team_frame(),
                                  account="alice@team.example", team=True)
    assert started.team


@pytest.mark.lab
@pytest.mark.parametrize("name", ["tls-broken", "starttls-broken", "self-signed-no-plaintext",
                                  "smtp-tls-broken"])
def test_the_walkthrough_fix_for_a_fault_of_the_servers_recommends_no_failing_setting(
        name: str, on_lab: LabInfo, lab: Lab, switch_advice: re.Pattern[str]) -> None:
    from mailhat_nb.widgets import Walkthrough

    walk = Walkthrough(on_lab.email("alice"), timeout=2)
    try:
        run = walk.scenario(name)
        assert isinstance(run, ScenarioRun), run
        html = run._repr_html_()
    finally:
        lab.set_scenario("normal")
    assert run.as_expected
    fix = html.split("<b>The fix:</b>")[1].split("</p>")[0]
    assert "report it to the host" in fix or "certificate" in fix, fix
    assert not switch_advice.search(fix), fix
