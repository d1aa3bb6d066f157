"""SMTP submission, as much as the doctor needs (RFC 5321, 3207, 4954).

Greeting, EHLO (before and after STARTTLS), one AUTH (PLAIN, else LOGIN),
and for ``--send-test`` one message to the account itself.
"""

from __future__ import annotations

import email.utils
import socket

from mailhat_nb.diagnose.classify import (
    Diagnosed,
    classify_smtp_auth,
    starttls_refused,
    wrong_protocol,
)
from mailhat_nb.diagnose.session import Session, b64, sasl_plain
from mailhat_nb.diagnose.wire import Channel
from mailhat_nb.secrets import Secret


class SmtpSession(Session):
    """An SMTP conversation for the doctor."""

    protocol = "smtp"

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        self.mechanisms: list[str] = []

    def reply(self, timeout: float | None = None) -> tuple[int, str]:
        """One (possibly multi-line) reply: ``(code, text)``; code 0 when unparseable.

        The whole reply ends within ``timeout`` (default the channel's), not each line.
        """
        lines: list[str] = []
        until = self.chan.deadline(timeout)
        while True:
            line = self.chan.read_line(until=until)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        head = lines[-1][:3]
        code = int(head) if head.isdigit() else 0
        return code, "\n".join(ln[4:] for ln in lines)

    def _command(self, text: str, masked_as: str | None = None) -> tuple[int, str]:
        self.chan.send_line(text, secret=masked_as is not None, shown=masked_as)
        return self.reply()

    def greeting(self, timeout: float) -> str:  # noqa: D102 - see Session
        until = self.chan.deadline(timeout)
        first = self.chan.read_line(until=until)
        if not first[:3].isdigit():
            raise wrong_protocol(first, "SMTP")
        lines = [first]
        while len(lines[-1]) >= 4 and lines[-1][3] == "-":
            lines.append(self.chan.read_line(until=until))
        if first[:3] != "220":
            raise Diagnosed("server_disconnected",
                            f"the server refused the session: {lines[-1][:160]}")
        return first[:160]

    def _ehlo(self) -> None:
        try:
            name = f"[{self.chan.sock.getsockname()[0]}]"
        except OSError:
            name = socket.gethostname() or "mailhat"
        code, text = self._command(f"EHLO {name}")
        if code != 250:
            code, text = self._command(f"HELO {name}")
            if code != 250:
                raise Diagnosed("wrong_protocol", f"EHLO and HELO refused: {code} {text[:120]}")
            self.caps, self.mechanisms = set(), []
            return
        caps: set[str] = set()
        mechs: list[str] = []
        for line in text.split("\n")[1:]:
            words = line.replace("=", " ", 1).upper().split() if line.upper().startswith(
                "AUTH=") else line.upper().split()
            if not words:
                continue
            caps.add(words[0])
            if words[0] == "AUTH":
                mechs += [m for m in words[1:] if m not in mechs]
        self.caps, self.mechanisms = caps, mechs

    def capabilities(self) -> str:  # noqa: D102
        self._ehlo()
        detail = self.caps_detail()
        if self.mechanisms:
            detail += f"; AUTH {' '.join(self.mechanisms)}"
        return detail

    def starttls(self) -> None:  # noqa: D102
        if "STARTTLS" not in self.caps:
            raise Diagnosed("starttls_unavailable", "the server does not list STARTTLS in EHLO")
        code, text = self._command("STARTTLS")
        if code != 220:
            # 454 "TLS not available due to temporary reason" (RFC 3207): offered,
            # but failing on the server's side right now.
            raise starttls_refused(f"{code} {text}", temporary=code == 454)

    def plaintext_offer(self, username: str) -> str:  # noqa: D102 - see Session
        if "PLAIN" in self.mechanisms or "LOGIN" in self.mechanisms:
            return f"EHLO lists AUTH {' '.join(self.mechanisms)}"
        if self.mechanisms:
            raise Diagnosed("smtp_auth_unavailable",
                            f"the server offers only {' '.join(self.mechanisms)} (no PLAIN or "
                            "LOGIN); a password cannot be used")
        if "STARTTLS" in self.caps:
            # Dovecot's submission service lists a bare "AUTH" before STARTTLS when it
            # refuses passwords in clear text.
            listed = "AUTH with no mechanisms" if "AUTH" in self.caps else "no AUTH"
            raise Diagnosed("plaintext_auth_disabled",
                            f"EHLO lists {listed} before STARTTLS: the server takes passwords "
                            "only after STARTTLS; no password was sent")
        raise Diagnosed("smtp_auth_unavailable", "EHLO lists no AUTH mechanism")

    def authenticate(self, username: str, password: Secret) -> str:  # noqa: D102
        if not self.mechanisms:
            if not self.encrypted and "STARTTLS" in self.caps:
                raise Diagnosed("plaintext_auth_disabled",
                                "the server offers AUTH only after STARTTLS; no password was sent")
            raise Diagnosed("smtp_auth_unavailable", "EHLO lists no AUTH mechanism")
        if "PLAIN" in self.mechanisms:
            how = "AUTH PLAIN"
            code, text = self._command(f"AUTH PLAIN {sasl_plain(username, password)}",
                                       masked_as="AUTH PLAIN ***")
        elif "LOGIN" in self.mechanisms:
            how = "AUTH LOGIN"
            code, text = self._command("AUTH LOGIN")
            if code == 334:
                code, text = self._command(b64(username), masked_as="***")
            if code == 334:
                code, text = self._command(b64(password.reveal()), masked_as="***")
        else:
            raise Diagnosed("smtp_auth_unavailable",
                            f"the server offers only {' '.join(self.mechanisms)} (no PLAIN or "
                            "LOGIN); a password cannot be used")
        if code == 235:
            return f"logged in as {username} with {how}"
        raise Diagnosed(classify_smtp_auth(code, text),
                        f"{how} rejected: {self.said(f'{code} {text[:160]}')}")

    def send(self, sender: str, recipient: str, subject: str, token: str) -> str:
        """Send one test message; return the server's acceptance line.

        Raises
        ------
        Diagnosed
            ``send_rejected`` with the reply of the step that refused.
        """
        steps = ((f"MAIL FROM:<{sender}>", (250,)), (f"RCPT TO:<{recipient}>", (250, 251)),
                 ("DATA", (354,)))
        for command, wanted in steps:
            code, text = self._command(command)
            if code not in wanted:
                raise Diagnosed("send_rejected", f"{command.split(':')[0]} refused: "
                                + self.said(f"{code} {text[:160]}"))
        domain = sender.rpartition("@")[2] or "mailhat.invalid"
        body = [
            f"From: <{sender}>", f"To: <{recipient}>", f"Subject: {subject}",
            f"Date: {email.utils.formatdate(localtime=False)}",
            f"Message-ID: {email.utils.make_msgid('mailhat-test', domain=domain)}",
            f"X-Mailhat-Test: {token}", "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8", "",
            "This message was sent by the mailhat connection doctor to check that mail",
            "sent with these settings arrives. It is removed again when the check ends.",
        ]
        for line in body:
            self.chan.send_line("." + line if line.startswith(".") else line)
        code, text = self._command(".")
        if code != 250:
            raise Diagnosed("send_rejected",
                            "message refused: " + self.said(f"{code} {text[:160]}"))
        return self.said(f"{code} {text[:120]}")
