"""The layered probe: DNS → TCP → TLS → greeting → capabilities → auth → mailbox.

:func:`probe` tests one target and always returns a
:class:`~mailhat_nb.diagnose.results.PresetResult`; it never raises for
anything a server or the network does. Every layer is a recorded
:class:`~mailhat_nb.diagnose.results.Step`; the first failing layer names the
diagnosis, the layers after it are ``skip``.

No password in clear text: on an unencrypted connection (``security =
"none"``) the probe stops after the capabilities and judges from what the
server advertises whether it would take the password unencrypted
(:meth:`~mailhat_nb.diagnose.session.Session.plaintext_offer`); the auth
step then says so (``plaintext_password_exposed``, a warning) without the
password ever being sent. A real clear-text login is made only when the
caller opts in (``ProbeConfig.allow_plaintext_login``), for the rare CRM
that can do nothing else, and even then only after the encrypted presets of
the same protocol have had their login (:mod:`.gate`): a wrong password is
rejected over TLS, and not sent in clear.

Time: every wait is bounded by ``timeout`` (connect, greeting, each reply), so
a port that swallows packets costs one timeout, never more. On a plain port
that stays silent the last quarter second (up to one) of the greeting wait
is spent trying a TLS handshake on the same connection, which tells
``tls_on_plain_port`` from ``no_greeting`` without a second wait.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mailhat_nb.diagnose.certificate import describe, unverified_context, vet
from mailhat_nb.diagnose.classify import Diagnosed, classify_error
from mailhat_nb.diagnose.dns import Resolver, resolves_to
from mailhat_nb.diagnose.gate import AuthGate, Pass
from mailhat_nb.diagnose.imap import ImapSession
from mailhat_nb.diagnose.normalise import Account
from mailhat_nb.diagnose.pop3 import Pop3Session
from mailhat_nb.diagnose.presets import Target
from mailhat_nb.diagnose.results import PresetResult, Step
from mailhat_nb.diagnose.session import Session
from mailhat_nb.diagnose.smtp import SmtpSession
from mailhat_nb.diagnose.transcript import Transcript, secret_forms
from mailhat_nb.diagnose.wire import (
    CLOSED,
    Channel,
    NotTLS,
    PeerClosed,
    ReadTimeout,
    TLSHandshakeError,
)
from mailhat_nb.errors import DnsError, MailhatError

log = logging.getLogger("mailhat_nb.diagnose")

SESSIONS: dict[str, Callable[[Channel], Session]] = {
    "imap": ImapSession, "pop3": Pop3Session, "smtp": SmtpSession,
}
CERT_CODES = frozenset({"cert_hostname_mismatch", "cert_untrusted", "cert_expired"})


class _Stop(Exception):  # control flow, never escapes this module
    """A step failed: stop the probe (the step is already recorded)."""


def planned_steps(protocol: str, security: str) -> list[str]:
    """List the layers a probe of this kind runs, in order.

    >>> planned_steps("imap", "starttls")
    ['dns', 'tcp', 'greeting', 'capabilities', 'tls', 'capabilities_tls', 'auth', 'mailbox']
    """
    if security == "starttls":
        steps = ["dns", "tcp", "greeting", "capabilities", "tls", "capabilities_tls"]
    else:
        steps = ["dns", "tcp", "tls", "greeting", "capabilities"]
    steps.append("auth")
    if protocol != "smtp":
        steps.append("mailbox")
    return steps


@dataclass
class ProbeConfig:
    """What every probe of a sweep shares.

    Attributes
    ----------
    allow_plaintext_login:
        Really log in on unencrypted presets (one attempt, through the
        gate). Off by default: the doctor must not itself cause the
        exposure it warns about.
    """

    account: Account
    context: ssl.SSLContext
    timeout: float
    gate: AuthGate
    allow_plaintext_login: bool = False
    #: Where names are looked up (``--dns-server``); None: the system's resolver.
    resolver: Resolver | None = None
    #: Hosts the doctor found rather than the user typed: they get the password
    #: only over TLS whose certificate proves the name, never in clear text.
    discovered: frozenset[str] = frozenset()


class Run:
    """Records the steps of one probe as they happen."""

    def __init__(self, target: Target, transcript: Transcript) -> None:
        self.target = target
        self.transcript = transcript
        self.steps: list[Step] = []
        self.code = ""
        self.warning = ""
        self.certificate: dict[str, Any] | None = None
        self.addresses: tuple[str, ...] = ()
        self.reached = ""
        self.start = time.monotonic()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time one layer; a raised error becomes its diagnosis and stops the probe."""
        rec = Step(name)
        start = time.monotonic()
        try:
            yield rec
        except _Stop:
            raise
        except Exception as exc:  # the one boundary: everything becomes a code
            code, detail = classify_error(exc, name, self.target.security)
            rec.status = exc.status if isinstance(exc, Diagnosed) else "fail"
            # A Diagnosed detail is the doctor's own words with any server text
            # already checked (Session.said); a foreign error's text is checked here.
            rec.detail = detail if isinstance(exc, Diagnosed) else self.transcript.guard(detail)
            rec.code = code
            self.code = code
            self.transcript.note(f"{name}: {code}: {rec.detail}")
            raise _Stop from exc
        finally:
            rec.elapsed_ms = (time.monotonic() - start) * 1000
            self.steps.append(rec)
        if rec.status == "warn" and rec.code and not self.warning:
            self.warning = rec.code

    def skip(self, name: str, detail: str) -> None:
        """Record a layer that does not apply or was not reached."""
        self.steps.append(Step(name, "skip", 0.0, detail))


# ------------------------------------------------------------------ network layers


def resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """The system resolver's addresses for ``host``:``port``, within ``timeout``.

    Raises
    ------
    Diagnosed
        With the ``dns_*`` code.
    """
    return lookup(Resolver(None, timeout), host, port)


def lookup(resolver: Resolver, host: str, port: int) -> list[tuple[Any, ...]]:
    """The addresses to connect to, from the run's resolver (``--dns-server``, else the system).

    Raises
    ------
    Diagnosed
        With the resolver's ``dns_*`` code.
    """
    try:
        return resolver.sockaddrs(host, port)
    except DnsError as exc:
        raise Diagnosed(exc.code, str(exc)) from exc


def connect(addrs: list[tuple[Any, ...]], timeout: float) -> tuple[socket.socket, str]:
    """Connect to the first address that accepts, within ``timeout`` overall.

    Raises
    ------
    Diagnosed
        ``connect_timeout`` when any address timed out (a filter drops the
        packets), else ``connection_refused``.
    """
    deadline = time.monotonic() + timeout
    outcomes: list[tuple[str, str]] = []
    for family, kind, proto, _, sockaddr in addrs:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(remaining)
        where = f"{sockaddr[0]} port {sockaddr[1]}"
        try:
            sock.connect(sockaddr)
        except Exception as exc:  # classified right here
            sock.close()
            code, detail = classify_error(exc, "tcp")
            outcomes.append((code, f"{where}: {detail}"))
            continue
        return sock, where
    if not outcomes:
        raise Diagnosed("connect_timeout", f"no address answered within {timeout:g} s")
    for wanted in ("connect_timeout", "connection_refused"):
        hits = [d for c, d in outcomes if c == wanted]
        if hits:
            raise Diagnosed(wanted, "; ".join(hits))
    raise Diagnosed(outcomes[-1][0], "; ".join(d for _, d in outcomes))


def greet(session: Session, chan: Channel, host: str, timeout: float) -> str:
    """Read the greeting; on a silent plain port, find out whether it speaks TLS."""
    if chan.tls is not None:
        return session.greeting(timeout)
    margin = min(1.0, timeout * 0.25)
    try:
        return session.greeting(timeout - margin)
    except ReadTimeout as exc:
        if exc.partial:
            raise
        chan.transcript.note(f"no greeting after {timeout - margin:.1f} s; trying a TLS "
                             "handshake on the same connection")
        try:
            chan.start_tls(unverified_context(), host, timeout=margin)
        except TLSHandshakeError as tls_exc:
            if tls_exc.reason == CLOSED:
                raise Diagnosed("no_greeting", "the connection opened but the server sent "
                                f"nothing in {timeout:g} s, and hung up on a TLS handshake"
                                ) from None
            # otherwise its first bytes were TLS: that is what we wanted to know
        except (ReadTimeout, PeerClosed, NotTLS):
            raise Diagnosed("no_greeting", "the connection opened but the server sent nothing "
                            f"in {timeout:g} s (and did not answer TLS either)") from None
        raise Diagnosed("tls_on_plain_port", "the server sent no greeting but answered a TLS "
                        "handshake: this port expects SSL/TLS from the first byte") from None


def handshake(run: Run, chan: Channel, cfg: ProbeConfig, addrs: list[tuple[Any, ...]],
              rec: Step) -> None:
    """TLS with verification; on a certificate failure, read the certificate anyway."""
    host = run.target.host
    try:
        chan.start_tls(cfg.context, host)
    except (TLSHandshakeError, NotTLS, ReadTimeout) as exc:
        # Classified as a handshake: after an accepted STARTTLS, silence or plain
        # text is the server's TLS failing, not a port that speaks no TLS.
        code, detail = classify_error(exc, "handshake", run.target.security)
        if code in CERT_CODES:
            run.certificate = read_certificate(run.target, addrs, cfg.timeout)
            if run.certificate:
                resolver = cfg.resolver or Resolver(None, cfg.timeout)
                cert = run.certificate = vet(run.certificate, {a[4][0] for a in addrs},
                                             lambda name: resolves_to(resolver, name))
                detail += (f"; the certificate covers {', '.join(cert['names'])} (issuer "
                           f"{cert['issuer']}, valid until {cert['not_after'][:10]})")
                if code == "cert_hostname_mismatch" and cert.get("recommended_host"):
                    detail += f"; use {cert['recommended_host']}"
                elif cert.get("not_here"):
                    detail += f"; {cert['not_here']}"
        raise Diagnosed(code, detail) from exc
    der = chan.peer_certificate()
    if der:
        cert = run.certificate = describe(der, host)
        rec.detail = (f"{chan.tls.version() if chan.tls else ''}; certificate for "
                      f"{', '.join(cert['names'][:4])}, issuer {cert['issuer']}, valid until "
                      f"{cert['not_after'][:10]}")


def read_certificate(target: Target, addrs: list[tuple[Any, ...]],
                     timeout: float) -> dict[str, Any] | None:
    """Fetch the server's certificate without verifying it; no credentials are sent.

    For STARTTLS the greeting and STARTTLS are repeated on a new connection.
    Returns None when the certificate cannot be read (the failure is already
    diagnosed; this only adds facts).
    """
    notes = Transcript(label=f"cert {target.host}:{target.port}")
    try:
        sock, _ = connect(addrs, timeout)
        chan = Channel(sock, notes, timeout)
        try:
            if target.security == "starttls":
                session = SESSIONS[target.protocol](chan)
                session.greeting(timeout)
                session.capabilities()
                session.starttls()
            chan.start_tls(unverified_context(), target.host)
            der = chan.peer_certificate()
        finally:
            chan.close()
    except (MailhatError, OSError, ValueError):
        return None
    return describe(der, target.host) if der else None


# ------------------------------------------------------------------ the probe


def establish(run: Run, cfg: ProbeConfig,
              after_auth: Callable[[Session], None] | None = None) -> Session:
    """Run the layers up to and including auth (and mailbox); return the live session.

    On an unencrypted preset without ``cfg.allow_plaintext_login`` the auth
    step only judges the server's offer and no login happens, so neither the
    mailbox step nor ``after_auth`` runs (callers that need a login, like the
    send test, check :attr:`PresetResult.login_tried` first).

    Raises
    ------
    _Stop
        When a layer failed (it is recorded in ``run``).
    """
    target, timeout = run.target, cfg.timeout
    with run.step("dns") as rec:
        addrs = lookup(cfg.resolver or Resolver(None, timeout), target.host, target.port)
        run.addresses = tuple(sorted({a[4][0] for a in addrs}))
        rec.detail = f"{target.host} → {', '.join(run.addresses[:4])}"
    with run.step("tcp") as rec:
        sock, where = connect(addrs, timeout)
        run.reached = str(sock.getpeername()[0])
        rec.detail = f"connected to {where}"
    chan = Channel(sock, run.transcript, timeout)
    session = SESSIONS[target.protocol](chan)
    try:
        if target.security == "ssl":
            with run.step("tls") as rec:
                handshake(run, chan, cfg, addrs, rec)
        elif target.security == "none":
            run.skip("tls", "not used: this preset is unencrypted")
        with run.step("greeting") as rec:
            rec.detail = greet(session, chan, target.host, timeout)
            session.greeted = True
        with run.step("capabilities") as rec:
            rec.detail = session.capabilities()
        if target.security == "starttls":
            with run.step("tls") as rec:
                session.starttls()
                handshake(run, chan, cfg, addrs, rec)
                rec.detail = "STARTTLS: " + rec.detail
            with run.step("capabilities_tls") as rec:
                rec.detail = session.capabilities()
        logged_in = False
        with run.step("auth") as rec:
            if target.security == "none" and (not cfg.allow_plaintext_login
                                               or target.host in cfg.discovered):
                rec.detail = plaintext_verdict(session, cfg)
            else:
                ticket = enter_gate(run, cfg)
                if ticket.waited:
                    # Allowed, but the encrypted presets come first and had not had
                    # their turn in time: judged from the offer, as by default.
                    rec.detail = plaintext_verdict(session, cfg, held_back=ticket.detail)
                else:
                    rec.detail = authenticate(run, session, cfg)
                    logged_in = True
            if not logged_in:
                rec.status, rec.code = "warn", "plaintext_password_exposed"
            elif not session.encrypted:
                rec.status, rec.code = "warn", "plaintext_password_exposed"
                rec.detail += ("; the password crossed the network unencrypted (the clear-text "
                               "login was asked for)")
                if session.caps & {"STARTTLS", "STLS"}:
                    rec.detail += "; the server also offers STARTTLS on this port"
        if not logged_in:
            if target.protocol != "smtp":
                run.skip("mailbox", "not tried: there was no login (the doctor did not send "
                         "the password unencrypted)")
            return session
        if after_auth is not None:
            after_auth(session)
            return session
        if target.protocol != "smtp":
            with run.step("mailbox") as rec:
                rec.detail = session.mailbox() or ""
    except BaseException as exc:
        # A polite LOGOUT/QUIT only when the server is talking to us; after a
        # timeout it would cost another wait.
        session.close(polite=isinstance(exc.__cause__, Diagnosed) and session.greeted)
        raise
    return session


def plaintext_verdict(session: Session, cfg: ProbeConfig, held_back: str = "") -> str:
    """The auth step of an unencrypted preset when no clear-text login is made.

    Either none is allowed (the default), or the gate held it back
    (``held_back`` is then the gate's reason, see :class:`~.gate.Pass`).

    Raises
    ------
    Diagnosed
        From :meth:`Session.plaintext_offer` when the server would not take
        the password here.
    """
    offer = session.plaintext_offer(cfg.account.username)
    detail = (f"not sent: the server accepts passwords without encryption on this port "
              f"({offer}); the doctor did not send the password")
    if session.caps & {"STARTTLS", "STLS"}:
        # A fact, not advice: whether STARTTLS works is its own row's finding.
        detail += "; the server also offers STARTTLS on this port"
    if held_back:
        return f"{detail} ({held_back})"
    return detail + " (a clear-text login is tested only on request: --allow-plaintext-login)"


def enter_gate(run: Run, cfg: ProbeConfig) -> Pass:
    """Wait for this probe's turn to log in (see :mod:`mailhat_nb.diagnose.gate`).

    Returns the gate's pass when the login may go ahead, or when an
    unencrypted login was held back (``waited``: the caller judges the
    preset from the server's offer instead).

    Raises
    ------
    Diagnosed
        With status ``skip`` when the gate refuses: the credentials were
        already rejected over this protocol, or the queue did not move in time.
    """
    target = run.target
    ticket = cfg.gate.enter(target.protocol, target.preset.display, cfg.timeout,
                            encrypted=target.security != "none", key=target)
    if not ticket.allowed and not ticket.waited:
        raise Diagnosed(ticket.code, ticket.detail, status="skip")
    return ticket


def authenticate(run: Run, session: Session, cfg: ProbeConfig) -> str:
    """One login, after :func:`enter_gate` let it through; reports the outcome to the gate."""
    target = run.target
    outcome = "error"
    run.transcript.arm()
    try:
        detail = session.authenticate(cfg.account.username, cfg.account.password)
        outcome = "ok"
        return detail
    except Diagnosed as exc:
        outcome = exc.code
        raise
    finally:
        cfg.gate.leave(target.protocol, target.preset.display, outcome)


def probe(target: Target, cfg: ProbeConfig) -> PresetResult:
    """Test one target layer by layer; never raises for what the server does."""
    account = cfg.account
    transcript = Transcript(secret_forms(account.username, account.password.reveal()),
                            label=f"{target.preset.id} {target.host}:{target.port}")
    run = Run(target, transcript)
    transcript.note(f"probing {target.setting()} as {account.username}")
    try:
        establish(run, cfg).close()
    except _Stop:
        pass
    except Exception as exc:  # a bug must not take the sweep down
        detail = transcript.guard(f"{type(exc).__name__}: {exc}")
        log.debug("probe %s crashed: %s", target.preset.id, detail)
        run.code = "unknown"
        run.steps.append(Step("internal", "fail", 0.0, detail, "unknown"))
    finally:
        # Ended (or had its turn): no unencrypted login waits for this probe any more.
        cfg.gate.done(target.protocol, target)
    return finish(run)


def finish(run: Run) -> PresetResult:
    """Turn a run into a result: skip the layers not reached, pick the code."""
    done = {s.name for s in run.steps}
    for name in planned_steps(run.target.protocol, run.target.security):
        if name not in done:
            run.skip(name, "not reached")
    order = {n: i for i, n in enumerate(planned_steps(run.target.protocol, run.target.security))}
    run.steps.sort(key=lambda s: order.get(s.name, len(order)))
    code = run.code or run.warning or "ok"
    return PresetResult(
        target=run.target, code=code, steps=run.steps, transcript=run.transcript.lines(),
        certificate=run.certificate, addresses=run.addresses, reached=run.reached,
        elapsed_ms=(time.monotonic() - run.start) * 1000,
        login_tried=run.transcript.credentials_sent,
    )
