"""Checks of what a user types, shared by every entry point (CLI, notebooks, library).

One rule per field, so ``mailhat sync`` accepts exactly what ``mailhat
diagnose`` accepts and a notebook says what the command line says. Each
check raises :class:`~mailhat_nb.errors.UsageError` with one sentence saying
what to change; a password is never quoted.

Why text is checked at all: a command-line argument or environment variable
whose bytes are not UTF-8 arrives in Python as lone surrogates, which cannot
be encoded for the wire (a ``UnicodeEncodeError`` deep in a protocol or the
store); a line break inside a login or host name would end a protocol line
early and send the rest as a command of its own.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from mailhat_nb.errors import UsageError

#: The longest wait any one step may be given (seconds).
MAX_TIMEOUT = 300.0


def check_text(value: str, what: str, *, secret: bool = False) -> None:
    """Refuse text no protocol line can carry.

    Parameters
    ----------
    value:
        The text as given.
    what:
        How the message names the field ("username", "--store").
    secret:
        For a password: refuse only what no protocol can carry (bytes that
        are not UTF-8, a line break, NUL: AUTH PLAIN's separator), allow any
        other character, and never quote the value.

    Raises
    ------
    UsageError
        Saying what is wrong, with the value on one line (never a password).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"the {what} contains bytes that are not valid UTF-8 text: retype "
                         "it (or fix the terminal's encoding)") from None
    if secret:
        bad = next((c for c in value if c in "\r\n\0"), None)
    else:
        bad = next((c for c in value if unicodedata.category(c) == "Cc" and c != "\t"), None)
    if bad is None:
        return
    kind = "a line break" if bad in "\r\n" else f"a control character ({bad!r})"
    shown = "" if secret else f" {value!r}"
    raise UsageError(f"the {what}{shown} contains {kind}: "
                     + ("check that it was copied without the end of the line" if secret
                        else "give it on one line, as typed"))


def as_text(name: str) -> str:
    """A file name as text, undecodable bytes shown as ``�``.

    Python hands a name whose bytes are not UTF-8 over as lone surrogates,
    which nothing downstream (JSON, Parquet, the wire) can encode; a folder
    or account named after such a directory keeps its readable part.
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def split_email(email: str) -> tuple[str, str, str]:
    """Check an email address; return it stripped, with its local part and domain.

    What a paste brings along is dropped (surrounding spaces, a display name
    around ``<address>``, a ``mailto:``); anything else that is not one
    ``name@domain`` is refused. The domain is returned as typed: converting an
    international name is the caller's business (DNS needs it, a login not).

    Raises
    ------
    UsageError
        Empty, spaces inside, no ``@``, or more than one.
    """
    check_text(email, "email address")
    email = email.strip()
    # What a copy from a mail client or a web page brings along.
    named = re.fullmatch(r"[^<>]*<([^<>]+)>", email)
    if named:  # "Alice <alice@example.com>"
        email = named.group(1).strip()
    if email.lower().startswith("mailto:"):
        email = email[len("mailto:"):]
    if not email:
        raise UsageError("the email address is empty")
    if any(c.isspace() for c in email):
        raise UsageError(f"the email address {email!r} contains spaces")
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise UsageError(f"the email address {email!r} is not of the form name@domain")
    if "@" in local:
        raise UsageError(f"the email address {email!r} has more than one @: give one address "
                         "of the form name@domain")
    return email, local, domain


def check_username(username: str) -> str:
    """Check a login name; return it stripped ("" when none was given).

    Raises
    ------
    UsageError
        Control characters or spaces inside.
    """
    check_text(username, "username")
    user = username.strip()
    if any(c.isspace() for c in user):
        raise UsageError(f"the username {user!r} contains spaces")
    return user


def check_given(value: str | None, option: str, hint: str) -> None:
    """Refuse an option given with an empty value: a slip, not a choice.

    ``--ca-file ""`` silently trusting nothing extra, or ``--username ""``
    silently logging in as the address, would hide the slip until a
    confusing failure later.

    Raises
    ------
    UsageError
        "<option> is empty: <hint>".
    """
    if value is not None and not value.strip():
        raise UsageError(f"{option} is empty: {hint}")


def check_timeout(timeout: float, what: str = "the timeout") -> None:
    """Refuse a timeout outside (0, :data:`MAX_TIMEOUT`] seconds (NaN included).

    Raises
    ------
    UsageError
        Saying what is allowed.
    """
    if not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(f"{what} must be more than 0 and at most {MAX_TIMEOUT:g} seconds, "
                         f"not {timeout:g}")


def check_store_arg(given: str, what: str = "--store") -> Path:
    """The store directory a user named, refused when it cannot be one.

    An empty value would make the current directory the store; a file cannot
    hold one; a name that is not UTF-8 could not be written into the store's
    state records.

    Raises
    ------
    UsageError
        Empty, not UTF-8, or an existing file.
    """
    if not given.strip():
        raise UsageError(f"{what} is empty: give the store directory")
    check_text(given, f"directory name given as {what}")
    path = Path(given)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {given} is a file, not a store directory")
    return path
