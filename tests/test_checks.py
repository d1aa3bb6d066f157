"""The input checks every entry point shares (pure functions)."""

from __future__ import annotations

import pytest

from mailhat_nb.checks import as_text, check_given, check_store_arg, check_text, split_email
from mailhat_nb.errors import UsageError


@pytest.mark.parametrize(("typed", "address"), [
    (" alice@example.com ", "alice@example.com"),
    ("mailto:alice@example.com", "alice@example.com"),
    ("Alice Smith <alice@example.com>", "alice@example.com"),
    ('"Smith, Alice" <alice@example.com> ', "alice@example.com"),
])
def test_what_a_paste_brings_along_is_dropped(typed: str, address: str) -> None:
    assert split_email(typed)[0] == address


@pytest.mark.parametrize(("typed", "words"), [
    ("", "is empty"),
    ("alice @example.com", "contains spaces"),
    ("alice", "not of the form name@domain"),
    ("a@b@c", "more than one @"),
    ("alice@example.com\r\n", "a line break"),
    ("al\udcffice@example.com", "not valid UTF-8"),
])
def test_an_address_that_is_not_one_is_refused(typed: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        split_email(typed)


def test_a_password_is_never_quoted() -> None:
    with pytest.raises(UsageError) as caught:
        check_text("Hunter2\n", "password", secret=True)
    assert "Hunter2" not in str(caught.value)
    check_text("tab\tand ünïcode", "password", secret=True)  # anything else goes


def test_empty_options_and_stores(tmp_path: object) -> None:
    check_given(None, "--ca-file", "hint")  # not given: fine
    with pytest.raises(UsageError, match="--ca-file is empty: hint"):
        check_given("  ", "--ca-file", "hint")
    with pytest.raises(UsageError, match="--store is empty"):
        check_store_arg("")


def test_undecodable_file_names_become_text() -> None:
    assert as_text("caf\udce9") == "caf\ufffd"
    assert as_text("café") == "café"
