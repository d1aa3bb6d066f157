"""The login gate: one password attempt per preset, and no pile-up of failures.

cPanel's cPHulk and CSF lock an account and block the client's IP after a
handful of failed logins, and a sweep probes a dozen presets at once. If the
password is wrong, a dozen simultaneous failures are exactly what gets the
customer (or the agent's office) blocked. So:

* until one login has succeeded, logins go one at a time;
* once one has succeeded, the credentials are good and the gate opens;
* once a protocol has rejected the credentials, no other preset of that
  protocol tries them (it reports the same diagnosis without sending the
  password); other protocols still get one try each, so the verdict can say
  "wrong on every protocol".

At most one failed login per protocol per sweep (three), never a cycle of
usernames or passwords.

Encrypted first. An unencrypted preset (``security = "none"``) reaches the
gate only when the caller allowed a clear-text login, and it reaches it
first, because it skips the TLS handshake. Were the turn simply first come,
first served, a wrong password would always be tried, and rejected, in clear
text while an encrypted preset of the same protocol was still on its way,
and that rejection would then stop the encrypted one. So the sweep announces
its encrypted probes (:meth:`AuthGate.expect`), and an unencrypted login
waits until every encrypted probe of its protocol has taken its turn at the
gate or ended before reaching it (:meth:`AuthGate.done`). The wait is
bounded by the sweep's own deadline (``patience``, one timeout and a small
margin from the sweep's start): past it the unencrypted preset is not tried
(:attr:`Pass.waited`), so the wait never adds more than that to a sweep, and
the password is not sent in clear meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass

#: Codes that mean "the server judged these credentials and said no".
REJECTIONS = frozenset({"auth_failed", "password_not_ascii"})


@dataclass(frozen=True)
class Pass:
    """The gate's answer: go ahead (``allowed``), or reuse an earlier rejection.

    ``waited`` is True when an unencrypted login was not allowed because an
    encrypted probe of its protocol had not had its turn by the deadline
    (``code`` is then empty: there is no diagnosis to reuse).
    """

    allowed: bool
    code: str = ""
    detail: str = ""
    waited: bool = False


class AuthGate:
    """Shared by the probes of one sweep (one set of credentials).

    Parameters
    ----------
    patience:
        Seconds from now until which an unencrypted login waits for the
        encrypted probes of its protocol (see the module doc). None: as
        long as its own ``timeout`` in :meth:`enter`.
    """

    def __init__(self, patience: float | None = None) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._good = False
        self._rejected: dict[str, tuple[str, str]] = {}  # protocol -> (code, who)
        self._pending: dict[str, set[Hashable]] = {}  # protocol -> encrypted probes to come
        self._until = None if patience is None else time.monotonic() + patience
        self.attempts = 0

    def expect(self, protocol: str, key: Hashable) -> None:
        """Announce an encrypted probe (``key``) that may come to log in over ``protocol``."""
        with self._cond:
            self._pending.setdefault(protocol, set()).add(key)

    def done(self, protocol: str, key: Hashable) -> None:
        """Say the probe ``key`` will not come (any more): it ended, or had its turn.

        Idempotent, and harmless for a key never announced.
        """
        with self._cond:
            waiting = self._pending.get(protocol)
            if waiting is not None and key in waiting:
                waiting.discard(key)
                self._cond.notify_all()

    def pending(self, protocol: str) -> int:
        """How many announced encrypted probes of ``protocol`` have not had their turn."""
        with self._cond:
            return len(self._pending.get(protocol, ()))

    def enter(self, protocol: str, who: str, timeout: float, encrypted: bool = True,
              key: Hashable | None = None) -> Pass:
        """Wait for our turn to log in (at most ``timeout`` seconds).

        An unencrypted login (``encrypted=False``) also waits for the encrypted
        probes of its protocol, up to the gate's ``patience`` when that ends
        later than ``timeout``. Once this returns, the probe ``key`` has had
        its turn (it no longer holds up an unencrypted login).
        """
        try:
            return self._enter(protocol, who, timeout, encrypted)
        finally:
            if key is not None:
                self.done(protocol, key)

    def _enter(self, protocol: str, who: str, timeout: float, encrypted: bool) -> Pass:
        deadline = time.monotonic() + timeout
        if not encrypted and self._until is not None:
            deadline = max(deadline, self._until)
        with self._cond:
            while True:
                if protocol in self._rejected:
                    code, by = self._rejected[protocol]
                    return Pass(False, code, f"not tried: {by} already rejected these "
                                "credentials over " + protocol.upper() + ", so the password "
                                "was not sent here; one failed login per protocol keeps "
                                "cPHulk/CSF from locking the account")
                held_up = not encrypted and bool(self._pending.get(protocol))
                if not held_up and (self._good or not self._busy):
                    if not self._good:
                        self._busy = True
                    self.attempts += 1
                    return Pass(True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if held_up:
                        return Pass(False, "", "not tried: the encrypted presets of "
                                    f"{protocol.upper()} had not finished their login in time, "
                                    "and the doctor does not send the password in clear text "
                                    "before they have", waited=True)
                    return Pass(False, "unknown", "not tried: another login attempt did not "
                                "finish in time, so the password was not sent here")
                self._cond.wait(remaining)

    def leave(self, protocol: str, who: str, code: str) -> None:
        """Report how our attempt ended (``ok``, a rejection code, or anything else)."""
        with self._cond:
            if code == "ok":
                self._good = True
            elif code in REJECTIONS:
                self._rejected.setdefault(protocol, (code, who))
            self._busy = False
            self._cond.notify_all()
