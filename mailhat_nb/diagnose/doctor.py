"""The sweep: every preset probed at once, results streamed, one Report back.

Probes run in threads (they wait on sockets, not the CPU), one per target, so
a sweep takes about as long as its slowest probe: one timeout when ports
swallow packets, never the sum. ``on_result`` is called in the caller's
thread as each probe finishes, so a notebook panel can fill in row by row
without worrying about threads.

The password never crosses the network unencrypted on the doctor's account
unless the caller asks for it (``allow_plaintext_login``): unencrypted presets
are judged from what the server advertises (see :mod:`.probe`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from mailhat_nb.checks import check_timeout
from mailhat_nb.diagnose.certificate import verified_context
from mailhat_nb.diagnose.dns import Resolver
from mailhat_nb.diagnose.gate import AuthGate
from mailhat_nb.diagnose.normalise import Account
from mailhat_nb.diagnose.presets import Preset, Target, builtin_names, expand, load_presets
from mailhat_nb.diagnose.probe import ProbeConfig, probe
from mailhat_nb.diagnose.report import Report
from mailhat_nb.diagnose.results import PresetResult
from mailhat_nb.diagnose.sendtest import send_test as run_send_test
from mailhat_nb.diagnose.verdict import decide
from mailhat_nb.discovery.health import notes as health_notes
from mailhat_nb.discovery.model import Discovery, Problem

DEFAULT_TIMEOUT = 10.0
#: Discovery before a sweep gets four fifths of one timeout: a source that hangs
#: (an autoconfig server that never answers) then adds less than a timeout.
DISCOVERY_SHARE = 0.8


def sweep_gate(targets: list[Target], timeout: float) -> AuthGate:
    """The login gate of one sweep, with its encrypted probes announced.

    An unencrypted login waits for them (see :mod:`mailhat_nb.diagnose.gate`)
    at most until one timeout, plus a margin (a quarter of it, at most 1 s)
    for a probe that failed right at its deadline to report it, has passed
    since the sweep began, however the encrypted probes fare; the clear-text
    login that follows is bounded by its own timeout.
    """
    gate = AuthGate(patience=timeout + min(1.0, timeout * 0.25))
    for target in targets:
        if target.security != "none":
            gate.expect(target.protocol, target)
    return gate


def diagnose(
    account: Account,
    presets: str | Path | list[Preset] | None = None,
    ca_file: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    send_test: bool = False,
    on_result: Callable[[PresetResult], None] | None = None,
    concurrent: bool = True,
    allow_plaintext_login: bool = False,
    dns_server: str | Resolver | None = None,
    discovery: Discovery | None = None,
) -> Report:
    """Test every preset for ``account`` and conclude.

    Parameters
    ----------
    account:
        From :meth:`Account.from_input` (validates and repairs the input).
    presets:
        A built-in name (``"hostgator"``, ``"gmail"`` ...; comma-separated for
        several), a presets file path, a list of :class:`Preset`, or None to
        choose by the email domain (HostGator otherwise); ``"auto"`` (and None
        after a discovery) picks the presets of the provider the domain's MX
        reveals.
    ca_file:
        A PEM file of extra trusted CAs (a corporate CA, the lab's CA).
    timeout:
        Seconds any one wait may take (connect, greeting, each reply).
    send_test:
        Also send a message to the account and confirm it arrives over IMAP.
    on_result:
        Called with each result as its probe finishes (in this thread).
    concurrent:
        False probes one after another (for the benchmark's comparison).
    allow_plaintext_login:
        Really log in on unencrypted (``security = "none"``) presets, sending
        the password in clear text: one attempt per preset, through the login
        gate, which gives the encrypted presets of each protocol their
        attempt first (a wrong password is then rejected over TLS, and the
        clear-text attempt is not made). Off by default, because the doctor
        would otherwise cause the exposure it warns about on every sweep;
        such presets are then judged from the server's capabilities
        (``plaintext_auth_disabled``, or ``plaintext_password_exposed`` as a
        warning with "not sent"). Turn it on only for a CRM that can do
        nothing but "none" and only when the customer accepts the risk.
        A host the doctor discovered never gets it in clear text.
    dns_server:
        ``IP[:PORT]`` (or a :class:`Resolver`) for every name lookup; None
        for the system's resolver.
    discovery:
        A discovery already made; without one and without a server name in
        ``account``, the doctor discovers first (:mod:`mailhat_nb.discovery`)
        and tests the recommended host, whose password then goes only over
        TLS whose certificate is valid for that name.

    Raises
    ------
    UsageError, PresetsError
        For unusable presets, CA file or timeout; never for anything a server does.
    """
    check_timeout(timeout)
    start = time.monotonic()
    context = verified_context(ca_file)
    resolver = dns_server if isinstance(dns_server, Resolver) else Resolver(
        dns_server, lifetime=timeout)
    discovered: frozenset[str] = frozenset()
    if discovery is None and not account.server and wants_discovery(presets, account):
        # Imported here: discovery builds on this package (dns, certificate).
        from mailhat_nb.discovery.run import discover

        discovery = discover(account.email, resolver, ca_file, timeout * DISCOVERY_SHARE)
    mismatch = mx_elsewhere(discovery, presets) if discovery is not None else None
    if mismatch is not None and discovery is not None:
        discovery.problems.insert(0, mismatch)
    elif discovery is not None and not account.server and discovery.recommended:
        # (Another provider's server name would only be tried with the wrong presets.)
        account = replace(account, server=discovery.recommended.host)
        discovered = frozenset({discovery.recommended.host})
    chosen = presets if isinstance(presets, list) else load_presets(
        auto_presets(presets, discovery), account.domain)
    targets, notes = expand(chosen, account)
    cfg = ProbeConfig(account=account, context=context, timeout=timeout,
                      gate=sweep_gate(targets, timeout),
                      allow_plaintext_login=allow_plaintext_login, resolver=resolver,
                      discovered=discovered)
    results: list[PresetResult | None] = [None] * len(targets)
    if concurrent and targets:
        with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="probe") as pool:
            futures = {pool.submit(probe, t, cfg): i for i, t in enumerate(targets)}
            for future in as_completed(futures):
                result = future.result()
                results[futures[future]] = result
                if on_result is not None:
                    on_result(result)
    else:
        # One after another, the encrypted presets go first (as the gate would
        # have it), so an unencrypted one never waits for a probe not yet started.
        order = sorted(range(len(targets)), key=lambda i: targets[i].security == "none")
        for i in order:
            results[i] = result = probe(targets[i], cfg)
            if on_result is not None:
                on_result(result)
    done = [r for r in results if r is not None]
    verdict = decide(done, discovery, account)
    if send_test:
        if verdict.outgoing_untested is not None:
            notes.append("send test skipped: the only usable outgoing preset is unencrypted "
                         "and the doctor does not send the password in clear text")
        elif verdict.outgoing is None:
            notes.append("send test skipped: no outgoing (SMTP) preset works")
        else:
            notes.append("send test: "
                         + run_send_test(verdict.outgoing, verdict.incoming, cfg))
            verdict = decide(done, discovery, account)
    if verdict.code == "auth_failed" and account.password.padded:
        # The likeliest cause, and invisible in a Password box: say it first.
        verdict.summary = ("The password starts or ends with a space: most likely pasted "
                           "with it. Retype it without the space and run again. "
                           + verdict.summary)
    health = outgoing_health(discovery, verdict.outgoing, resolver)
    return Report(account=account, results=done, verdict=verdict,
                  elapsed_ms=(time.monotonic() - start) * 1000, notes=notes,
                  discovery=discovery, health=health)


def wants_discovery(presets: str | Path | list[Preset] | None, account: Account) -> bool:
    """True when the presets need the server name (``{server}``) or a provider (``auto``).

    Never for a single-label domain (``localhost``): no public DNS knows it.
    """
    if account.server or "." not in account.domain:
        return False
    if presets is None or str(presets).strip().lower() == "auto":
        return True
    chosen = presets if isinstance(presets, list) else load_presets(presets, account.domain)
    return any("{server}" in t for p in chosen for t in (p.host, *p.alt_hosts))


def auto_presets(presets: str | Path | None, discovery: Discovery | None) -> str | Path | None:
    """Resolve ``"auto"`` (and None after a discovery) to the provider's presets.

    Anything else passes through; without a provider, None (by the email domain).
    """
    wanted = str(presets).strip().lower() if presets is not None else None
    if wanted not in (None, "auto"):
        return presets
    provider = discovery.provider if discovery is not None else None
    if provider is not None and provider.presets in builtin_names():
        return provider.presets
    return None


def mx_elsewhere(found: Discovery,
                 presets: str | Path | list[Preset] | None) -> Problem | None:
    """``mx_elsewhere`` when the presets tested are another provider's than the MX's.

    Only built-in presets are judged (a file of one's own may be anything).
    """
    provider = found.provider
    if provider is None or not provider.presets or isinstance(presets, list):
        return None
    names = [n.strip().lower() for n in str(presets).split(",")] if presets else []
    if (not names or names == ["auto"] or not set(names) <= set(builtin_names())
            or provider.presets in names):
        return None
    tested = ", ".join(n.capitalize() if n != "hostgator" else "HostGator" for n in names)
    return Problem("mx_elsewhere", f"this domain's mail is handled by {provider.name} "
                   f"({provider.evidence}), not {tested}: {tested}'s settings cannot work; "
                   f"{provider.advice}", found.domain)


def outgoing_health(found: Discovery | None, outgoing: PresetResult | None,
                    resolver: Resolver) -> list[str]:
    """SPF/DMARC/DKIM advice for the recommended SMTP server (empty without a discovery)."""
    if found is None or not found.domain:
        return []
    return health_notes(found.dns, found.domain, outgoing.host if outgoing is not None else None,
                        (outgoing.reached or None) if outgoing is not None else None, resolver)

