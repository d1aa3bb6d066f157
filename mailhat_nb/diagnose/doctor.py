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
from pathlib import Path

from mailhat_nb.checks import check_timeout
from mailhat_nb.diagnose.certificate import verified_context
from mailhat_nb.diagnose.gate import AuthGate
from mailhat_nb.diagnose.normalise import Account
from mailhat_nb.diagnose.presets import Preset, Target, expand, load_presets
from mailhat_nb.diagnose.probe import ProbeConfig, probe
from mailhat_nb.diagnose.report import Report
from mailhat_nb.diagnose.results import PresetResult
from mailhat_nb.diagnose.sendtest import send_test as run_send_test
from mailhat_nb.diagnose.verdict import decide

DEFAULT_TIMEOUT = 10.0


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
) -> Report:
    """Test every preset for ``account`` and conclude.

    Parameters
    ----------
    account:
        From :meth:`Account.from_input` (validates and repairs the input).
    presets:
        A built-in name (``"hostgator"``, ``"gmail"`` ...; comma-separated for
        several), a presets file path, a list of :class:`Preset`, or None to
        choose by the email domain (HostGator otherwise).
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

    Raises
    ------
    UsageError, PresetsError
        For unusable presets, CA file or timeout; never for anything a server does.
    """
    check_timeout(timeout)
    start = time.monotonic()
    chosen = presets if isinstance(presets, list) else load_presets(presets, account.domain)
    targets, notes = expand(chosen, account)
    cfg = ProbeConfig(account=account, context=verified_context(ca_file), timeout=timeout,
                      gate=sweep_gate(targets, timeout),
                      allow_plaintext_login=allow_plaintext_login)
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
            results[i] = probe(targets[i], cfg)
            if on_result is not None:
                on_result(results[i])  # type: ignore[arg-type]
    done = [r for r in results if r is not None]
    verdict = decide(done)
    if send_test:
        if verdict.outgoing_untested is not None:
            notes.append("send test skipped: the only usable outgoing preset is unencrypted "
                         "and the doctor does not send the password in clear text")
        elif verdict.outgoing is None:
            notes.append("send test skipped: no outgoing (SMTP) preset works")
        else:
            outcome = run_send_test(verdict.outgoing, verdict.incoming, cfg)
            notes.append(f"send test: {outcome.detail}")
            verdict = decide(done)
    if verdict.code == "auth_failed" and account.password.padded:
        # The likeliest cause, and invisible in a Password box: say it first.
        verdict.summary = ("The password starts or ends with a space: most likely pasted "
                           "with it. Retype it without the space and run again. "
                           + verdict.summary)
    return Report(account=account, results=done, verdict=verdict,
                  elapsed_ms=(time.monotonic() - start) * 1000, notes=notes)

