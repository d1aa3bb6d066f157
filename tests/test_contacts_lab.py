"""The same contacts from the lab over IMAP, from the Maildir import, and by hand.

The lab's ``alice@localhost`` holds ``cuilla-m``'s Enron mailbox (all three
sent-type folders merged into ``INBOX.Sent``, the Notes views kept as
folders). Synced over IMAPS into a store and read back, its contacts must
equal the independent stdlib count of the corpus files; imported from the
Maildir tree, the same. ``mailhat contacts`` prints them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_contacts_enron import oracle_counts, oracle_records, oracle_self

from mailhat_nb import cli
from mailhat_nb import contacts as ca
from mailhat_nb.lab import Lab, LabInfo
from mailhat_nb.lab.mailboxes import DEMO_PERSON

pytestmark = pytest.mark.lab


def _counts(people: pd.DataFrame) -> dict[str, tuple[int, int]]:
    return {c: (int(s), int(r)) for c, s, r in
            zip(people["contact"], people["sent"], people["received"], strict=True)}


@pytest.fixture(scope="module")
def lab_store(lab: Lab, lab_info: LabInfo, lab_password: str,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mailhat_nb.secrets import Secret
    from mailhat_nb.sync.engine import sync_account
    from mailhat_nb.sync.imap import ImapSettings

    store = tmp_path_factory.mktemp("lab-store")
    settings = ImapSettings(email=lab_info.email("alice"), host=lab_info.server,
                            port=lab_info.ports["imaps"], security="ssl",
                            ca_file=lab_info.ca_file)
    sync_account(settings, Secret(lab_password), store)
    return store


def test_lab_sync_matches_the_independent_count(lab_store: Path, corpus: Path) -> None:
    from mailhat_nb.analysis.load import read_messages

    frame = read_messages(lab_store)
    recs = oracle_records(corpus / "enron" / DEMO_PERSON)
    assert len(frame) == len(recs)  # every file, one row each
    me = ca.own_addresses(frame)
    assert set(me["address"]) == oracle_self(recs) | {"alice@localhost"}
    got = ca.contacts(frame, me)
    assert _counts(got) == oracle_counts(recs, oracle_self(recs))


def test_cli_prints_the_same_top_contacts(lab_store: Path, corpus: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["contacts", "--store", str(lab_store), "--top", "10", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    recs = oracle_records(corpus / "enron" / DEMO_PERSON)
    expected = oracle_counts(recs, oracle_self(recs))
    ranked = sorted(expected.items(), key=lambda kv: (-sum(kv[1]), -kv[1][1], kv[0]))[:10]
    assert [(p["contact"], p["sent"], p["received"]) for p in printed] == [
        (c, s, r) for c, (s, r) in ranked]
    assert all(p["first"].endswith("+00:00") for p in printed)
    assert set(printed[0]) == {"contact", "name", "sent", "received", "total", "first", "last"}
    assert cli.main(["contacts", "--store", str(lab_store), "--csv", "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "contact,name,sent,received,total,first,last"
    assert len(lines) == 4
    assert cli.main(["contacts", "--store", str(lab_store), "--top", "5"]) == 0
    table = capsys.readouterr().out
    assert "martin.cuilla@enron.com (sent folder)" in table
    assert ranked[0][0] in table


def test_maildir_import_gives_the_same_contacts_as_the_lab(lab_store: Path, corpus: Path,
                                                           tmp_path: Path) -> None:
    from mailhat_nb.analysis.load import read_messages

    assert cli.main(["import", "--maildir", str(corpus / "enron" / DEMO_PERSON),
                     "--store", str(tmp_path)]) == 0
    imported = read_messages(tmp_path)
    synced = read_messages(lab_store)
    a = ca.contacts(imported, ca.own_addresses(imported))
    b = ca.contacts(synced, ca.own_addresses(synced))
    assert _counts(a) == _counts(b)
    assert ca.top_contacts(a, 20) == ca.top_contacts(b, 20)
