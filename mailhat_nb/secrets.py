"""Passwords: where they come from, and how they are kept out of everything else.

A password enters the package from the environment variable the user names
(``--password-env VAR``, the notebooks' ``password_env`` parameter), from a
no-echo prompt or Password widget, or, for the lab's own accounts only, from
the lab's password file. It is held in a :class:`Secret`, whose ``repr`` and
``str`` never show the value, so an accidental f-string, log line, exception
message or DataFrame cell carries ``***`` instead of the password, and
pickling one (multiprocessing, caches) fails rather than copying it. Only the
protocol boundary calls :meth:`Secret.reveal`.

Users paste the password where the variable's *name* belongs
(``--password-env "$MAILHAT_PASSWORD"``): :func:`check_env_name` refuses
anything that is not a variable name without ever repeating it.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Iterable

from mailhat_nb.checks import check_text
from mailhat_nb.errors import UsageError

MASK = "***"
#: Where the notebooks and the report look for a password by default.
DEFAULT_PASSWORD_ENV = "MAILHAT_PASSWORD"  # noqa: S105 - a variable NAME, not a password
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Secret:
    """A string that will not print itself.

    Examples
    --------
    >>> s = Secret("hunter2")
    >>> f"{s}", repr(s)
    ('***', "Secret('***')")
    >>> s.reveal()
    'hunter2'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        # A password no protocol can carry (not UTF-8, a line break, NUL) is
        # refused where it enters, unseen: it was not copied as meant.
        check_text(value, "password", secret=True)
        self._value = value

    def reveal(self) -> str:
        """The password itself; call only where it is sent to a server."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    @property
    def padded(self) -> bool:
        """Whether it starts or ends with whitespace: most often a paste that took it along."""
        return self._value != self._value.strip()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling (multiprocessing, widget state, caches) must not carry it.
        raise TypeError("a Secret cannot be pickled")


def check_env_name(var: str) -> str:
    """Return ``var`` when it is an environment variable *name*.

    Raises
    ------
    UsageError
        Otherwise, without repeating ``var``: it may well be the password
        itself, pasted where its variable's name belongs.
    """
    if not _ENV_NAME.match(var):
        raise UsageError(
            "--password-env / password_env takes the NAME of an environment variable "
            "(letters, digits and _), e.g. MAILHAT_PASSWORD; what was given is not one "
            "(not shown here, in case it is the password itself)"
        )
    return var


def from_env(var: str) -> Secret:
    """Read the password from environment variable ``var``.

    Raises
    ------
    UsageError
        When ``var`` is not a variable name, or the variable is unset or
        empty; the message names the variable, never a value.
    """
    check_env_name(var)
    value = os.environ.get(var)
    if not value:
        raise UsageError(
            f"environment variable {var} is not set or empty: export the password "
            f"there (e.g. `read -s {var}; export {var}`), or leave --password-env out "
            "to be prompted"
        )
    try:
        return Secret(value)
    except UsageError as exc:  # the agent sees an empty Password box: say where it came from
        raise UsageError(f"{exc} (it came from the environment variable {var})") from None


def obtain(env_var: str | None, prompt: str = "Password: ") -> Secret:
    """The password from ``env_var`` when given, else from a no-echo prompt.

    ``env_var=""`` (an empty ``--password-env``) is an error, not a prompt:
    the user meant a variable. Without a terminal to prompt on (a cron job,
    a CI step), :func:`getpass.getpass` would fall back to reading stdin with
    echo and a warning: the error says to use ``--password-env`` instead.
    """
    if env_var is not None:
        return from_env(env_var)
    if not _have_terminal():
        raise UsageError("no terminal to ask for the password on: export it in an environment "
                         "variable and name it with --password-env")
    try:
        return Secret(getpass.getpass(prompt))
    except (EOFError, KeyboardInterrupt) as exc:
        raise UsageError("no password given") from exc


def _have_terminal() -> bool:
    """Whether getpass can prompt without echo: it uses the controlling terminal."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def redact(text: str, secrets: Iterable[Secret | str], mask: str = MASK) -> str:
    """Replace every occurrence of each secret in ``text`` with ``mask``.

    A last line of defence for text built from foreign error messages; the
    transcript redacts at the source instead.
    """
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            text = text.replace(value, mask)
    return text
