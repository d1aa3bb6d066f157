"""The evidence the verdict weighs: a sweep's results in one canonical order.

:func:`preference` is that order and the verdict's only tie-break,
:data:`TELLING` ranks what a failure tells (:func:`most_telling`), and
:class:`Evidence` answers the questions the rules in
:mod:`mailhat_nb.diagnose.verdict` ask of the rows: which setting works
best per protocol, which failure explains a protocol, which is the server's
own fault. Nothing here words a sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mailhat_nb.diagnose import codes
from mailhat_nb.diagnose.gate import REJECTIONS
from mailhat_nb.diagnose.normalise import Account
from mailhat_nb.diagnose.probe import CERT_CODES
from mailhat_nb.diagnose.results import PresetResult
from mailhat_nb.discovery.model import Discovery

#: The codes a failure can carry, most telling first (see the module doc).
TELLING: tuple[str, ...] = (
    # the login went through; what came after it failed
    "mailbox_unavailable", "send_rejected",
    # the server judged the credentials, or barred the account
    "account_locked", "auth_failed", "password_not_ascii",
    # the server would not take a password on this connection, or not now
    "plaintext_auth_disabled", "smtp_auth_unavailable", "login_delayed", "server_unavailable",
    # TLS was reached: the certificate does not prove the name
    "cert_hostname_mismatch", "cert_expired", "cert_untrusted",
    # the server's own TLS failed, or is not on offer
    "tls_handshake_failed", "starttls_failed", "starttls_unavailable",
    # the server did what no mail server does, or hung up
    "server_misbehaved", "server_disconnected",
    # the port speaks something else than the setting says
    "plain_on_tls_port", "tls_on_plain_port", "wrong_protocol", "unknown",
    # nothing useful answered
    "no_greeting", "pop_only", "connection_refused", "connect_timeout",
    # the name did not lead to an address
    "dns_no_record", "dns_servfail", "dns_timeout", "dns_failure", "dns_not_found",
)
_RANK = {code: i for i, code in enumerate(TELLING)}
_SECURITY_RANK = {"ssl": 0, "starttls": 1, "none": 2}
#: Standard ports in the order to recommend them when two settings work equally.
_PORT_RANK = {993: 0, 143: 1, 995: 0, 110: 1, 465: 0, 587: 1, 25: 2, 26: 3}


def preference(result: PresetResult) -> tuple[Any, ...]:
    """The canonical order of results, the verdict's only tie-break.

    Most secure first, then the standard port to prefer (465 before 587
    before 25), the preset's own host before its ``alt_hosts``, then names;
    then what was found, so that two results never tie unless the verdict
    cannot tell them apart.
    """
    cert = json.dumps(result.certificate or {}, sort_keys=True, default=str)
    return (result.protocol, _SECURITY_RANK[result.security],
            _PORT_RANK.get(result.preset.std_port, 9), result.target.alternate, result.host,
            result.port, result.preset.id, result.code, result.login_tried, result.detail, cert)


def telling_rank(code: str) -> int:
    """Where ``code`` stands in :data:`TELLING` (unknown codes last)."""
    return _RANK.get(code, len(TELLING))


def most_telling(results: list[PresetResult]) -> PresetResult | None:
    """The failure that explains most (:data:`TELLING`); a real rejection before a reused one."""
    return min(results, key=lambda r: (telling_rank(r.code), r.rejection_reused,
                                       preference(r)), default=None)


def is_fault(code: str) -> bool:
    """True for a fault of the server's to fix: its certificate, its TLS, a hung service."""
    return code in CERT_CODES or codes.get(code).host_side


@dataclass
class Evidence:
    """The results of a sweep in canonical order, and what the rules ask of them."""

    rows: list[PresetResult]
    discovery: Discovery | None = None
    #: The account diagnosed, when known: what the username advice quotes.
    account: Account | None = None

    def of(self, protocol: str) -> list[PresetResult]:
        """The rows of ``protocol``."""
        return [r for r in self.rows if r.protocol == protocol]

    def resolved(self, protocol: str | None = None) -> list[PresetResult]:
        """The rows (of ``protocol``) whose host name resolved."""
        return [r for r in self.rows if passed(r, "dns")
                and (protocol is None or r.protocol == protocol)]

    @cached_property
    def rejected(self) -> list[PresetResult]:
        """Rows whose credentials a server rejected (or that reuse such a rejection)."""
        return [r for r in self.rows if r.code in REJECTIONS]

    def best(self, protocol: str) -> PresetResult | None:
        """The setting of ``protocol`` to recommend: logged in, most secure, canonical first.

        An unencrypted preset nobody logged in over counts only while no
        password was rejected anywhere, or once a login worked somewhere.
        """
        untested_ok = not self.rejected or any(r.works for r in self.rows)
        found = [r for r in self.of(protocol) if r.works or (r.usable and untested_ok)]
        return min(found, key=lambda r: (r.status != "ok", not r.works, preference(r)),
                   default=None)

    def cause(self, protocol: str) -> PresetResult | None:
        """The failure that explains ``protocol``: among its encrypted rows when any failed."""
        failed = [r for r in self.of(protocol) if r.status == "fail"]
        return most_telling([r for r in failed if r.security != "none"] or failed)

    def fault(self, protocol: str) -> PresetResult | None:
        """The server's fault that makes an encrypted row of ``protocol`` fail, if any."""
        return most_telling([r for r in self.of(protocol) if r.security != "none"
                             and r.status == "fail" and is_fault(r.code)])

    @cached_property
    def incoming(self) -> PresetResult | None:
        """The IMAP setting to recommend, if any (:meth:`best`)."""
        return self.best("imap")

    @cached_property
    def outgoing(self) -> PresetResult | None:
        """The SMTP setting to recommend, if any (:meth:`best`)."""
        return self.best("smtp")


def passed(result: PresetResult, step: str) -> bool:
    """Whether ``result`` got through ``step`` (ok, or ok with a warning)."""
    found = result.step(step)
    return found is not None and found.status in ("ok", "warn")
