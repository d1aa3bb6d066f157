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
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

#: Codes that mean "the server judged these credentials and said no".
REJECTIONS = frozenset({"auth_failed", "password_not_ascii"})


@dataclass(frozen=True)
class Pass:
    """The gate's answer: go ahead (``allowed``), or reuse an earlier rejection."""

    allowed: bool
    code: str = ""
    detail: str = ""


class AuthGate:
    """Shared by the probes of one sweep (one set of credentials)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._good = False
        self._rejected: dict[str, tuple[str, str]] = {}  # protocol -> (code, who)
        self.attempts = 0

    def enter(self, protocol: str, who: str, timeout: float) -> Pass:
        """Wait for our turn to log in (at most ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if protocol in self._rejected:
                    code, by = self._rejected[protocol]
                    return Pass(False, code, f"not tried: {by} already rejected these "
                                "credentials over " + protocol.upper() + "; one failed login "
                                "per protocol keeps cPHulk/CSF from locking the account")
                if self._good or not self._busy:
                    if not self._good:
                        self._busy = True
                    self.attempts += 1
                    return Pass(True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return Pass(False, "unknown", "not tried: another login attempt did not "
                                "finish in time")
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
