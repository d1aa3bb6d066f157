"""The generated benchmark mailbox: deterministic, realistic, and really in Dovecot."""

from __future__ import annotations

import collections
import email
import email.policy
import email.utils
import re

import pytest

from mailhat_nb.errors import UsageError
from mailhat_nb.lab import Lab
from mailhat_nb.lab.generate import (
    FOLDERS,
    encode_words,
    generate_into_lab,
    generate_messages,
)

ACCOUNT = "bench@localhost"


@pytest.fixture(scope="module")
def raw() -> list[bytes]:
    return [m.raw for m in generate_messages(4000, seed=11, account=ACCOUNT)]


@pytest.fixture(scope="module")
def sample(raw: list[bytes]) -> list[email.message.EmailMessage]:
    # The stdlib parser is the independent judge of what the generator wrote.
    return [email.message_from_bytes(r, policy=email.policy.default)  # type: ignore[misc]
            for r in raw]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = list(generate_messages(300, seed=1, account=ACCOUNT))
    b = list(generate_messages(300, seed=1, account=ACCOUNT))
    c = list(generate_messages(300, seed=2, account=ACCOUNT))
    assert a == b
    assert [m.raw for m in a] != [m.raw for m in c]


def test_contacts_follow_a_zipf_like_law(sample: list[email.message.EmailMessage]) -> None:
    received = [m["From"].addresses[0].addr_spec for m in sample
                if m["From"] and m["From"].addresses[0].addr_spec != ACCOUNT]
    counts = collections.Counter(received).most_common()
    assert 120 <= len(counts) <= 200  # ~200 contacts, the rarest may not show in 4000
    top10 = sum(n for _, n in counts[:10]) / len(received)
    bottom_half = sum(n for _, n in counts[len(counts) // 2:]) / len(received)
    assert top10 > 0.3
    assert bottom_half < 0.15


def test_sent_and_received_threads_charsets_zones_dates(
        sample: list[email.message.EmailMessage], raw: list[bytes]) -> None:
    sent = [m for m in sample if m["From"] and ACCOUNT in str(m["From"])]
    assert 0.2 < len(sent) / len(sample) < 0.35
    ids = {str(m["Message-ID"]) for m in sample}
    replies = [m for m in sample if m["In-Reply-To"]]
    assert len(replies) / len(sample) > 0.2
    assert all(str(m["In-Reply-To"]) in ids for m in replies)  # threads point backwards
    assert all(str(m["In-Reply-To"]) in str(m["References"]) for m in replies)
    assert all(str(m["Subject"]).startswith("Re: ") for m in replies)
    text = b"\n".join(r.split(b"\n\n", 1)[0] for r in raw).decode("ascii", "replace")
    charsets = set(re.findall(r"=\?([a-z0-9-]+)\?[bq]\?", text.lower()))
    assert {"utf-8", "iso-8859-1", "iso-8859-2", "koi8-r", "iso-2022-jp", "gb2312"} <= charsets
    decoded_names = {m["From"].addresses[0].display_name for m in sample if m["From"]}
    assert any(any(ord(c) > 0x2000 for c in n) for n in decoded_names)  # CJK decoded
    dates = [email.utils.parsedate_to_datetime(str(m["Date"])) for m in sample if m["Date"]]
    zones = {d.utcoffset() for d in dates}
    assert len(zones) >= 6
    span = max(dates) - min(dates)
    assert span.days > 2.8 * 365
    assert any(m["List-Id"] for m in sample)
    assert any(str(m["To"]) == "undisclosed-recipients:;" for m in sample)
    assert any(m["Date"] is None for m in sample)  # the rare message without a Date


def test_encode_words_round_trips_through_the_stdlib() -> None:
    from email.header import decode_header, make_header

    for text, charset, letter in [("Jürgen Müller", "iso-8859-1", "Q"),
                                  ("会議の件について" * 6, "iso-2022-jp", "B"),
                                  ("Отчёт за квартал", "koi8-r", "B"), ("plain", "us-ascii", "")]:
        encoded = encode_words(text, charset, letter)
        assert all(len(word) <= 75 for word in encoded.split("\n "))
        assert str(make_header(decode_header(encoded))) == text


@pytest.mark.lab
def test_generate_into_lab_replaces_the_mailbox_and_indexes_it(lab: Lab) -> None:
    first = generate_into_lab(lab, "bench", 1500, seed=3)
    assert list(first) == list(FOLDERS)
    assert sum(first.values()) == 1500
    status = lab.doveadm("mailbox", "status", "-u", ACCOUNT, "messages uidvalidity",
                         "INBOX", "INBOX.*")
    parsed = {line.split()[0]: dict(kv.split("=") for kv in line.split()[1:])
              for line in status.splitlines()}
    assert {k: int(v["messages"]) for k, v in parsed.items() if k in first} == first
    maildir = lab.paths.maildir("bench")
    assert (maildir / "dovecot-uidlist").stat().st_size > 1500 * 10  # indexed already
    owners = {p.stat().st_uid for p in list(maildir.rglob("*"))[:300]}
    assert owners == {8}  # the mail user, or Dovecot refuses the mailbox
    extra = maildir / ".Leftover" / "cur"
    extra.mkdir(parents=True)
    second = generate_into_lab(lab, "bench", 200, seed=3)
    assert sum(second.values()) == 200
    assert not extra.exists()  # the old mailbox is gone, not merged
    again = lab.doveadm("mailbox", "status", "-u", ACCOUNT, "uidvalidity", "INBOX")
    old = int(parsed["INBOX"]["uidvalidity"])
    assert int(again.split("=")[1]) > old  # a client sees the mailbox was replaced


def test_generate_refuses_unknown_users_and_silly_counts(tmp_path: object) -> None:
    lab = Lab("/tmp/mhs-none")
    with pytest.raises(UsageError, match="unknown lab user"):
        generate_into_lab(lab, "mallory", 10, 1)
    with pytest.raises(UsageError, match="count"):
        generate_into_lab(lab, "bench", -1, 1)
