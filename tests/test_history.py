"""History per customer: runs kept as private, redacted JSON, and what changed since the last."""

from __future__ import annotations

import datetime as dt
import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailhat_nb.cli import main
from mailhat_nb.diagnose.history import (
    History,
    address_slug,
    compare,
    earlier_runs,
    file_name,
    prepare,
)
from mailhat_nb.errors import UsageError
from mailhat_nb.lab import Lab, LabInfo

AT = dt.datetime(2026, 12, 3, 10, 15, tzinfo=dt.UTC)


def _result(preset: str, code: str, status: str, port: int = 993,
            sha: str | None = None, not_after: str = "2027-01-01T00:00:00+00:00"
            ) -> dict[str, Any]:
    cert = ({"sha256": sha, "names": ["gator1234.hostgator.com"], "issuer": "Let's Encrypt",
             "not_after": not_after} if sha else {})
    return {"preset": preset, "host": "gator1234.hostgator.com", "port": port, "code": code,
            "status": status, "certificate": cert}


def _run(at: str, code: str, results: list[dict[str, Any]], incoming: str | None = None,
         crm: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"at": at, "account": {"email": "info@customer.example"},
                            "verdict": {"code": code, "incoming": incoming}, "results": results}
    if crm:
        data["crm_error"] = {"code": crm}
    return data


# --------------------------------------------------------------------------- comparing


def test_the_verdict_that_changed_comes_first() -> None:
    before = _run("2026-12-03T10:15:00Z", "cert_expired",
                  [_result("imap-ssl", "cert_expired", "fail", sha="aa" * 32,
                           not_after="2026-12-01T00:00:00+00:00"),
                   _result("imap-none", "plaintext_password_exposed", "warn", port=143)],
                  crm="cert_expired")
    after = _run("2026-12-09T08:00:00Z", "ok",
                 [_result("imap-ssl", "ok", "ok", sha="bb" * 32),
                  _result("imap-none", "plaintext_password_exposed", "warn", port=143)],
                 incoming="imap-ssl", crm="connect_timeout")
    changes = compare(before, after)
    assert changes[0] == "2026-12-03: cert_expired; now: ok."
    assert changes[1] == "The setting to enter was none on 2026-12-03; now imap-ssl."
    assert changes[2] == ("imap-ssl on gator1234.hostgator.com:993: failed on 2026-12-03 "
                          "(cert_expired), now works (ok).")
    assert changes[3].startswith("The certificate on gator1234.hostgator.com:993 changed since "
                                 "2026-12-03: it was valid to 2026-12-01, now covers "
                                 "gator1234.hostgator.com")
    assert changes[4] == "The CRM said cert_expired on 2026-12-03; now connect_timeout."
    assert len(changes) == 5  # the unchanged preset says nothing


def test_a_setting_that_worked_and_now_fails_and_many_presets_in_one_sentence() -> None:
    presets = [f"p{i}" for i in range(6)]
    before = _run("2026-12-09T07:00:00Z", "ok", [_result(p, "ok", "ok") for p in presets],
                  incoming="p0")
    after = _run("2026-12-09T08:30:00Z", "connect_timeout",
                 [_result(p, "connect_timeout", "fail") for p in presets])
    changes = compare(before, after)
    assert changes[0] == "2026-12-09 07:00 UTC: ok; now: connect_timeout."  # same day: the time
    worked = [c for c in changes if "worked on" in c]
    assert worked == ["p0 on gator1234.hostgator.com:993, p1 on gator1234.hostgator.com:993, "
                      "p2 on gator1234.hostgator.com:993 and 3 more: worked on 2026-12-09 "
                      "07:00 UTC (ok), now fails: connect_timeout."]


def test_nothing_changed_is_said_once() -> None:
    run = _run("2026-12-03T10:15:00Z", "ok", [_result("imap-ssl", "ok", "ok", sha="aa" * 32)],
               incoming="imap-ssl")
    assert compare(run, run | {"at": "2026-12-04T10:15:00Z"}) == []
    history = History("2026-12-03T10:15:00Z", "ok", [])
    assert history.sentences() == ["Nothing that matters changed since the last run "
                                   "(2026-12-03: ok)."]
    assert History().sentences() == ["First saved run for this address."]
    assert History().to_dict() == {"previous": None, "changes": []}


def test_file_names_say_who_and_when() -> None:
    assert address_slug("Info@Customer.example") == "info-at-customer.example"
    assert address_slug("a/b\\c..@x") == "a_b_c..-at-x"
    assert file_name("info@customer.example", AT) == \
        "diagnosis-info-at-customer.example-20261203T101500Z.json"


# --------------------------------------------------------------------------- the folder


def test_a_new_folder_is_private(tmp_path: Path) -> None:
    folder = prepare(tmp_path / "a" / "history")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert list(folder.iterdir()) == []  # the write probe left nothing


def test_an_open_folder_is_tightened_only_when_it_is_ours(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    empty.chmod(0o755)
    assert stat.S_IMODE(prepare(empty).stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    (shared / "notes.txt").write_text("someone else's")
    with pytest.raises(UsageError, match="holds other files; give a folder of its own"):
        prepare(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # left as it was


@pytest.mark.parametrize(("where", "message"), [
    ("file", "that is a file, not a folder"),
    ("below-a-file", "cannot write the history there: Not a directory"),
    ("/sys/mailhat-history", "cannot write the history there: Operation not permitted"),
])
def test_a_folder_that_cannot_be_used_is_one_sentence(tmp_path: Path, where: str,
                                                      message: str) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    path = {"file": a_file, "below-a-file": a_file / "history"}.get(where, Path(where))
    with pytest.raises(UsageError, match=message):
        prepare(path)


@pytest.mark.parametrize("where", ["file", "below-a-file", "/sys/mailhat-history"])
def test_the_command_line_says_so_with_exit_2_before_asking_for_a_password(
        tmp_path: Path, where: str) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    path = {"file": a_file, "below-a-file": a_file / "history"}.get(where, Path(where))
    proc = subprocess.run([sys.executable, "-m", "mailhat_nb.cli", "diagnose", "--email",
                           "info@customer.example", "--save", str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"mailhat diagnose: --save {path}: ")
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreadable_and_foreign_files_are_left_out(tmp_path: Path) -> None:
    folder = prepare(tmp_path / "h")
    good = _run("2026-12-03T10:15:00Z", "ok", [])
    (folder / file_name("info@customer.example", AT)).write_text(json.dumps(good))
    (folder / "diagnosis-info-at-customer.example-20261204T101500Z.json").write_text("{not json")
    other = good | {"account": {"email": "info@customer.example.other"}}
    (folder / "diagnosis-info-at-customer.example-20261205T101500Z.json").write_text(
        json.dumps(other))
    runs, unreadable = earlier_runs(folder, "INFO@customer.example")
    assert [r["at"] for r in runs] == ["2026-12-03T10:15:00Z"]
    assert unreadable == 1


# --------------------------------------------------------------------------- against the lab


def _diagnose(lab_info: LabInfo, *extra: str) -> list[str]:
    return ["diagnose", "--email", lab_info.email("alice"), "--server", lab_info.server,
            "--presets", str(lab_info.presets), "--ca-file", str(lab_info.ca_file),
            "--password-env", "MH_TEST_PW", "--timeout", "1.5", *extra]


@pytest.mark.lab
def test_a_rerun_says_what_changed_and_nothing_secret_is_written(
        lab: Lab, lab_info: LabInfo, scenario: Callable[[str], LabInfo], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    password = lab.password("alice")
    monkeypatch.setenv("MH_TEST_PW", password)
    folder = tmp_path / "history"
    pasted = f"a1 LOGIN alice@localhost {password}\na1 NO [AUTHENTICATIONFAILED] failed"
    assert main(_diagnose(lab_info, "--save", str(folder), "--json",
                          "--crm-error", pasted)) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["history"] == {"previous": None, "changes": []}

    scenario("expired-cert")
    main(_diagnose(lab_info, "--save", str(folder), "--json"))
    second = json.loads(capsys.readouterr().out)
    assert second["history"]["previous"]["code"] == "ok"
    assert second["verdict"]["code"] == "cert_expired"
    changes = second["history"]["changes"]
    assert changes[0].endswith(": ok; now: cert_expired.")
    assert any("worked on" in c and "now fails: cert_expired" in c for c in changes)
    assert any(c.startswith("The certificate on localhost:") for c in changes)

    scenario("normal")
    main(_diagnose(lab_info, "--save", str(folder)))
    text = capsys.readouterr().out
    assert "Since the last run:" in text
    assert ": cert_expired; now: ok." in text

    files = sorted(folder.iterdir(), key=lambda p: json.loads(p.read_text())["at"])
    assert len(files) == 3
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        raw = path.read_bytes()
        assert password.encode() not in raw
        assert json.loads(raw)["account"]["email"] == "alice@localhost"
    assert "LOGIN alice@localhost ***" in json.loads(files[0].read_text())["crm_error"]["text"]
