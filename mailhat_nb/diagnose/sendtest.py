"""``--send-test``: send a message to the account itself and watch it arrive.

Runs after the sweep, with the credentials already proven by it (so it adds
no failed login): one SMTP session over the recommended outgoing preset sends
a message carrying a unique ``X-Mailhat-Test`` header; one IMAP session over
the recommended incoming preset polls INBOX until that header shows up,
measures the delay, and removes exactly that message again (UID EXPUNGE).
The two steps (``send``, ``arrival``) and their transcript are appended to
the outgoing preset's result.
"""

from __future__ import annotations

import contextlib
import secrets
import time

from mailhat_nb.diagnose.imap import ImapSession
from mailhat_nb.diagnose.probe import ProbeConfig, Run, _Stop, establish
from mailhat_nb.diagnose.results import PresetResult, Step
from mailhat_nb.diagnose.session import Session
from mailhat_nb.diagnose.smtp import SmtpSession
from mailhat_nb.diagnose.transcript import Transcript, secret_forms


def _transcript(cfg: ProbeConfig, label: str) -> Transcript:
    return Transcript(secret_forms(cfg.account.username, cfg.account.password.reveal()), label)


def send_test(outgoing: PresetResult, incoming: PresetResult | None, cfg: ProbeConfig,
              wait: float | None = None) -> str:
    """Send, confirm arrival, record both; return the sentence for the report's notes.

    ``outgoing`` (and ``incoming``, for the arrival check) must be presets the
    sweep logged in with (:attr:`PresetResult.works`); the caller checks.
    ``wait`` bounds the arrival wait (default 3x timeout).
    """
    account = cfg.account
    token = secrets.token_hex(8)
    subject = f"mailhat connection test {token}"
    wait = wait if wait is not None else max(10.0, 3 * cfg.timeout)

    send_tr = _transcript(cfg, f"send-test {outgoing.host}:{outgoing.port}")
    send_tr.note(f"send test: {outgoing.setting()} -> {account.email}")
    send_run = Run(outgoing.target, send_tr)
    accepted_at: float | None = None
    send_step = Step("send", "fail")
    start = time.monotonic()

    def deliver(session: Session) -> None:
        nonlocal accepted_at
        assert isinstance(session, SmtpSession)  # noqa: S101 - outgoing is always SMTP
        with send_run.step("send") as rec:
            rec.detail = session.send(account.email, account.email, subject, token)
            accepted_at = time.monotonic()

    with contextlib.suppress(_Stop):
        establish(send_run, cfg, after_auth=deliver).close()
    failed = next((s for s in send_run.steps if s.status == "fail"), None)
    send_step.elapsed_ms = (time.monotonic() - start) * 1000
    if accepted_at is None:
        send_step.detail = f"not sent: {failed.name}: {failed.detail}" if failed else "not sent"
        send_step.code = send_run.code or "send_rejected"
        _record(outgoing, [send_step], send_tr)
        if send_step.code == "send_rejected":
            outgoing.code = "send_rejected"
        return send_step.detail
    sent = next(s for s in send_run.steps if s.name == "send")
    send_step.status, send_step.detail = "ok", f"sent to {account.email}: {sent.detail}"

    arrival = Step("arrival", "skip", 0.0, "no working IMAP preset to check arrival with")
    steps = [send_step, arrival]
    # Only over a preset the sweep logged in with: an unencrypted one judged from
    # the server's offer would need the password sent in clear text.
    if incoming is None or incoming.protocol != "imap" or not incoming.works:
        _record(outgoing, steps, send_tr)
        return arrival.detail

    watch_tr = _transcript(cfg, f"arrival {incoming.host}:{incoming.port}")
    watch_tr.note(f"arrival check over {incoming.setting()}")
    watch_run = Run(incoming.target, watch_tr)
    found: tuple[int, float] | None = None
    removed = False

    def watch(session: Session) -> None:
        nonlocal found, removed
        assert isinstance(session, ImapSession)  # noqa: S101 - incoming is IMAP here
        with watch_run.step("arrival") as rec:
            session.examine_inbox(select=True)
            found = session.wait_for(token, wait)
            if found is not None:
                removed = session.remove(found[0])
            rec.detail = "found" if found else "not found"

    watch_start = time.monotonic()
    with contextlib.suppress(_Stop):
        establish(watch_run, cfg, after_auth=watch).close()
    arrival.elapsed_ms = (time.monotonic() - watch_start) * 1000
    if found is not None:
        # From the server's acceptance of the message to its first sighting in INBOX.
        delay = max(found[1] - (accepted_at or found[1]), 0.0)
        arrival.status = "ok"
        arrival.detail = (f"arrived in INBOX {delay:.2f} s after it was accepted"
                          + ("; test message removed" if removed else
                             "; the test message was left in INBOX (no UIDPLUS)"))
        _record(outgoing, steps, send_tr, watch_tr)
        return arrival.detail
    failed = next((s for s in watch_run.steps if s.status == "fail"), None)
    arrival.status = "fail"
    arrival.detail = (f"not seen in INBOX within {wait:g} s" if failed is None else
                      f"could not check: {failed.name}: {failed.detail}")
    _record(outgoing, steps, send_tr, watch_tr)
    return arrival.detail


def _record(result: PresetResult, steps: list[Step], *transcripts: Transcript) -> None:
    result.steps += steps
    for tr in transcripts:
        offset = result.transcript[-1].ms if result.transcript else 0.0
        result.transcript += [type(ln)(ln.ms + offset, ln.direction, ln.text) for ln in tr.lines()]
