"""The CRM's own error: the table of known messages, line by line, and the redaction of a paste.

Every example in ``crm_errors.toml`` is a text as a real client, server or
CRM prints it; each must be understood by its own row (not taken by an
earlier one), whatever surrounds it, however it is cased or quoted. Texts
that name no failure must not be understood as one. A pasted password never
survives into what is kept.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhat_nb.diagnose import codes
from mailhat_nb.diagnose.crm import (
    CRM_CODES,
    GROUPS,
    KnownMessage,
    load_table,
    normalise,
    redact_pasted,
    understand,
)
from mailhat_nb.errors import UsageError
from mailhat_nb.secrets import Secret

TABLE = load_table()
EXAMPLES = [(row, text) for row in TABLE for text in row.examples]
PASSWORD = "Tr0ub4dor&3-xyzzy"


def _id(value: object) -> str:
    if isinstance(value, KnownMessage):
        return value.id
    return str(value)[:40]


# --------------------------------------------------------------------------- the table


def test_the_table_is_large_enough_and_every_code_is_known() -> None:
    assert len(TABLE) >= 25
    assert len(EXAMPLES) >= 100
    known = set(codes.CODES) | set(CRM_CODES)
    assert {row.code for row in TABLE} <= known
    # every extra code of DESIGN.md's crm_error is used
    assert set(CRM_CODES) <= {row.code for row in TABLE}
    # every code a row may give is placed in a group of the doctor comparison, or is unknown
    grouped = set().union(*GROUPS.values())
    assert {row.code for row in TABLE} - grouped == {"unknown"}


@pytest.mark.parametrize(("row", "text"), EXAMPLES, ids=_id)
def test_each_real_message_is_understood_by_its_own_row(row: KnownMessage, text: str) -> None:
    found = understand(text)
    assert (found.matched, found.code) == (row.id, row.code)
    assert found.summary
    assert "{" not in found.summary
    assert found.title not in ("Unexpected error", "Not understood", found.code)


@pytest.mark.parametrize(("row", "text"), EXAMPLES, ids=_id)
def test_case_quoting_and_surroundings_do_not_matter(row: KnownMessage, text: str) -> None:
    variants = [
        text.upper(), text.lower(),
        f'Sync failed: "{text}"',
        f"Error from server: “{text}” (ticket #4411)",
        f"b'{text}'".replace("\n", "\\r\\n"),          # as a bytes value is printed
        html.escape(text),                                # pasted from a web page's source
        f"  \n{text}\n\n  Last attempt 10:41 ",
        json.dumps({"error": text}),                      # a connector's JSON response
        repr(text.encode("utf-8")),                       # a bytes value, non-ASCII as \\xNN
    ]
    for variant in variants:
        assert understand(variant).matched == row.id, variant


NEUTRAL = ["Sync", "stopped:", "HubSpot", "Zoho CRM", "at", "12:03", "inbox", "please",
           "contact", "support", "(code 7)", "--", "Error", "details:", "info@customer.example"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(EXAMPLES), st.lists(st.sampled_from(NEUTRAL), max_size=6),
       st.lists(st.sampled_from(NEUTRAL), max_size=6))
def test_any_neutral_surroundings(example: tuple[KnownMessage, str], before: list[str],
                                  after: list[str]) -> None:
    row, text = example
    assert understand(" ".join([*before, text, *after])).matched == row.id


@pytest.mark.parametrize("text", [
    "Everything worked",
    "Connected successfully. 1,204 messages synced.",
    "Your mailbox is 45% full",
    "The customer refused the upgrade",
    "535 messages were imported",
    "Authentication succeeded",
    "Login page",
    "Sync paused by the user",
    "* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN AUTH=LOGIN",
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE] Dovecot ready.",
    "The certificate was renewed on 2026-12-01",
    "IMAP enabled for the account",
    "Please check your settings",
    "timeout = 30 seconds",
    "The server relays nothing for us",
    "Something went wrong",
])
def test_texts_that_name_no_known_failure_are_not_understood(text: str) -> None:
    found = understand(text)
    assert (found.matched, found.code) == (None, "unknown")
    assert found.text == text  # kept as given (more than one word, nothing secret in it)


def test_an_alert_passes_on_the_servers_words() -> None:
    found = understand("a1 NO [ALERT] Account is locked. Contact your administrator. (Failure)")
    assert found.matched == "server-alert"
    assert '"Account is locked. Contact your administrator."' in found.summary


@pytest.mark.parametrize(("body", "message"), [
    ("[[message]]\nid='x'\ncode='no_such_code'\nsaid_by=''\nmatch=['a']\nsummary=''\n"
     "examples=['a']\n", "unknown code"),
    ("[[message]]\nid='x'\ncode='auth_failed'\nsaid_by=''\nmatch=['(']\nsummary=''\n"
     "examples=['a']\n", "does not compile"),
    ("[[message]]\nid='x'\ncode='auth_failed'\nmatch=['a']\nsummary=''\nexamples=['a']\n",
     "needs exactly the keys"),
    ("[[message]]\nid='x'\ncode='auth_failed'\nsaid_by=''\nmatch=[]\nsummary=''\n"
     "examples=['a']\n", "at least one pattern"),
    ("not toml [", "not valid TOML"),
    ("", "needs at least one"),
])
def test_a_broken_table_is_refused_in_words(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "table.toml"
    path.write_text(body)
    with pytest.raises(UsageError, match=message):
        load_table(path)


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize("pasted", [
    f"a1 LOGIN info@customer.example {PASSWORD}\na1 NO [AUTHENTICATIONFAILED] Authentication "
    "failed.",
    f'C: A00000002 LOGIN "info@customer.example" "{PASSWORD}"\nS: A00000002 NO LOGIN failed.',
    f"USER info@customer.example\nPASS {PASSWORD}\n-ERR [AUTH] Authentication failed.",
    f"Cannot connect to imaps://info:{PASSWORD}@mail.customer.example:993 - Connection timed out",
    f'{{"host": "mail.customer.example", "password": "{PASSWORD}", "error": "Invalid '
    'credentials"}',
    f"settings: server=mail.customer.example; pass={PASSWORD}; error=Connection refused",
    f"IMAP authentication error (password: {PASSWORD})",
    f"imaplib.IMAP4.error: b'[AUTHENTICATIONFAILED] ...' while sending {PASSWORD!r}",
    f"Connection timed out; the password {PASSWORD} was typed by the customer",
])
def test_a_pasted_password_is_never_kept(pasted: str) -> None:
    found = understand(pasted, [PASSWORD])
    assert found.matched is not None
    assert PASSWORD not in found.text
    assert PASSWORD not in json.dumps(found.to_dict())
    assert "***" in found.text


@pytest.mark.parametrize("pasted", [
    "a1 LOGIN info@customer.example Zq9-Unknown-Secret\na1 NO [AUTHENTICATIONFAILED] failed",
    "PASS Zq9-Unknown-Secret\n-ERR [AUTH] Authentication failed.",
    "imaps://info:Zq9-Unknown-Secret@mail.customer.example/ Connection refused",
    "password=Zq9-Unknown-Secret Connection refused",
    '{"pwd": "Zq9-Unknown-Secret", "error": "Connection refused"}',
    "app password: Zq9-Unknown-Secret - Application-specific password required",
    "C: AUTH PLAIN AGluZm9AY3VzdG9tZXIuZXhhbXBsZQBacTktVW5rbm93bi1TZWNyZXQ=\n"
    "S: 535 5.7.8 Error: authentication failed",
    "a2 AUTHENTICATE PLAIN AGluZm8AWnE5LVVua25vd24tU2VjcmV0\na2 NO [AUTHENTICATIONFAILED] x",
    "S: 334 UGFzc3dvcmQ6\nC: WnE5LVVua25vd24tU2VjcmV0\nS: 535 Incorrect authentication data",
])
def test_something_shaped_like_a_password_is_masked_even_when_unknown(pasted: str) -> None:
    found = understand(pasted)  # the doctor was not given this password
    assert found.matched is not None, pasted
    assert "Zq9-Unknown-Secret" not in found.text
    assert "WnE5LVVua25vd24tU2VjcmV0" not in found.text
    assert "AGluZm9AY3VzdG9tZXIuZXhhbXBsZQBacTktVW5rbm93bi1TZWNyZXQ=" not in found.text


@pytest.mark.parametrize("spelled", [
    PASSWORD, json.dumps(PASSWORD)[1:-1], "Tr0ub4dor%263-xyzzy", "Tr0ub4dor&amp;3-xyzzy",
])
def test_the_known_password_is_masked_however_it_was_printed(spelled: str) -> None:
    text = f"login rejected for info@customer.example with {spelled}: Invalid credentials"
    found = understand(text, [Secret(PASSWORD)])
    assert spelled not in found.text
    assert found.code == "auth_failed"


def test_one_word_nobody_knows_is_not_kept_it_may_be_the_password() -> None:
    found = understand("Kx7!pLq-99zz")
    assert found.code == "unknown"
    assert "Kx7!pLq-99zz" not in found.text
    assert "may be a password" in found.text
    # a single word that is a known message is kept
    assert understand("ECONNREFUSED").text == "ECONNREFUSED"
    assert understand("AUTHENTICATIONFAILED").code == "auth_failed"


def test_what_is_kept_is_trimmed_and_bounded() -> None:
    found = understand("   Connection timed out   \n\n\n   retry later  " + "x " * 5000)
    assert found.text.startswith("Connection timed out\nretry later")
    assert len(found.text) <= 2000
    assert found.text.endswith("…")


def test_text_that_is_not_utf8_does_not_break_anything() -> None:
    undecodable = "Connection refused \udcff\udcfe"  # what argv holds for bytes that are not UTF-8
    found = understand(undecodable)
    assert found.code == "connection_refused"
    found.text.encode("utf-8")  # storable and printable


def test_redaction_keeps_ordinary_words() -> None:
    text = ("Login to server mail.customer.example with username info@customer.example failed."
            " Server denied POP3 access for the given username and password.")
    assert redact_pasted(text) == text


def test_normalise_folds_what_a_paste_adds() -> None:
    assert normalise("“Connection\u00a0refused”\\r\\n  &quot;x&quot;\u200b") == \
        '"Connection refused" "x"'
