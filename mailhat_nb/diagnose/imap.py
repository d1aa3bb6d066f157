"""IMAP, as much as the doctor needs, spoken line by line (RFC 3501/9051).

Greeting, CAPABILITY, STARTTLS, one login (AUTHENTICATE PLAIN when offered,
because it carries a UTF-8 password; LOGIN otherwise, or over TLS AUTHENTICATE
LOGIN where the server disabled LOGIN), LIST, NAMESPACE, and a read-only
EXAMINE of INBOX. Also the polling used by ``--send-test`` to see a
message arrive.

Round trips are what a customer's distance from the server multiplies, so the
doctor spends them as a careful client does, and no more:

* the capabilities a greeting lists (``* OK [CAPABILITY ...]``, RFC 3501
  7.1) are used, not asked for again; after STARTTLS they no longer hold
  (RFC 3501 6.2.1) and are asked for; the login's answer brings those after
  login (``OK [CAPABILITY ...]`` or an untagged ``CAPABILITY``);
* the login is one round trip where the server offers ``SASL-IR`` (RFC 4959:
  ``AUTHENTICATE PLAIN`` with its initial response);
* the mailbox step's commands (``LIST``, ``NAMESPACE``, ``EXAMINE INBOX``)
  go in one write (RFC 3501 5.5: none depends on another's answer), and each
  answer is still judged on its own;
* ``LOGOUT`` is sent, not waited for.

A server without them (no capabilities in its greeting, no ``SASL-IR``, no
``AUTH=PLAIN``) is asked and answered one command at a time, and comes to
the same diagnosis.
"""

from __future__ import annotations

import re
import time

from mailhat_nb.diagnose.classify import (
    Diagnosed,
    classify_auth_reply,
    starttls_refused,
    wrong_protocol,
)
from mailhat_nb.diagnose.session import Session, b64, sasl_plain
from mailhat_nb.diagnose.wire import Channel, ReadTimeout, printable
from mailhat_nb.errors import ServerMisbehaved
from mailhat_nb.secrets import Secret

#: Largest literal accepted once logged in: none of the doctor's commands
#: (LIST, NAMESPACE, EXAMINE, SEARCH) gets one anywhere near it. Before a
#: login has worked none is accepted at all: greetings, capabilities and
#: answers to a login carry none.
MAX_LITERAL = 1024 * 1024
#: Lines in one response that are not IMAP at all (no ``*``, ``+`` or our tag)
#: tolerated before the server is taken to send garbage.
MAX_STRAY_LINES = 20

_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_CAP_CODE = re.compile(r"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
_LIST = re.compile(r'^\* LIST \(([^)]*)\) (NIL|"(?:[^"\\]|\\.)"|\S+) (.*)$', re.IGNORECASE)
_NAMESPACE = re.compile(r'^\* NAMESPACE \(\("([^"]*)"', re.IGNORECASE)


def quote(text: str) -> str:
    r"""Quote ``text`` as an IMAP quoted string.

    >>> quote('say "hi"')
    '"say \\"hi\\""'
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _needs_literal(text: str) -> bool:
    return not text.isascii() or any(c in text for c in "\r\n\0")


class Response:
    """A tagged IMAP response and the untagged lines before it."""

    def __init__(self, status: str, text: str, untagged: list[str]) -> None:
        self.status = status
        self.text = text
        self.untagged = untagged

    @property
    def ok(self) -> bool:  # noqa: D102 - the name says it
        return self.status == "OK"


class ImapSession(Session):
    """An IMAP conversation for the doctor."""

    protocol = "imap"

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        self._tag = 0
        #: Largest literal accepted now: none until a login worked (MAX_LITERAL then).
        self.literal_limit = 0
        #: True while :attr:`caps` are the greeting's own list (no STARTTLS since).
        self.caps_from_greeting = False

    # ------------------------------------------------------------------ wire

    def _read(self, until: float) -> str:
        """One response line with its literals inlined (as quoted strings).

        Every read ends by ``until``; a literal larger than
        :attr:`literal_limit`, or one that does not arrive in time, is the
        server misbehaving, and it is not read.
        """
        raw = self.chan.read_line(record=False, until=until)
        parts = [raw]
        shown = [raw]
        while True:
            m = _LITERAL.search(parts[-1].encode("utf-8", "replace"))
            if not m:
                break
            size = int(m.group(1))
            if size > self.literal_limit:
                self.chan.transcript.server("".join(shown))
                where = ("before any login worked, where no mail server sends one"
                         if self.literal_limit == 0 else
                         f"larger than the {self.literal_limit // 1024} KB any answer the "
                         "doctor asks for needs")
                raise ServerMisbehaved(f"the server announced a {size:,}-byte literal {where}")
            try:
                data = self.chan.read_exact(size, until=until).decode("utf-8", "replace")
            except ReadTimeout as exc:
                self.chan.transcript.server("".join(shown))
                raise ServerMisbehaved(f"the server announced a {size:,}-byte literal and did "
                                       "not send it") from exc
            rest = self.chan.read_line(record=False, until=until)
            head = parts[-1][: m.start()]
            parts[-1] = head + quote(data)
            shown[-1] = head + f"{{{size}}} {quote(data)}"
            parts.append(rest)
            shown.append(rest)
        self.chan.transcript.server("".join(shown))
        return "".join(parts)

    def _next_tag(self) -> str:
        self._tag += 1
        return f"M{self._tag:03d}"

    def _response(self, tag: str, continuation: list[bytes] | None = None) -> Response:
        return self._responses([tag], continuation)[0]

    def _responses(self, tags: list[str], continuation: list[bytes] | None = None,
                   ) -> list[Response]:
        """Read until every tag in ``tags`` is answered; their responses, in ``tags``' order.

        One deadline for them all, as for one response. A response's
        ``untagged`` are the untagged lines read since the previous
        completion (a server may interleave those of pipelined commands, so
        a caller that pipelines judges them by kind, not by position).
        Tagged completions may come in any order.
        """
        done: dict[str, Response] = {}
        untagged: list[str] = []
        pending = list(continuation or [])
        until = self.chan.deadline()  # the whole response, not each line
        stray = 0
        while True:
            line = self._read(until)
            if line.startswith("+"):
                if not pending:
                    # Unexpected: answer with an empty line so the server ends it.
                    self.chan.send_line("", secret=True, shown="")
                    continue
                data = pending.pop(0)
                self.chan.transcript.client(data.decode("utf-8", "replace"), secret=True,
                                            shown="***")
                self.chan.send_bytes(data + b"\r\n")
                continue
            tag, _, rest = line.partition(" ")
            if tag in tags and tag not in done:
                status, _, text = rest.partition(" ")
                done[tag] = Response(status.upper(), text, untagged)
                if len(done) == len(tags):
                    return [done[t] for t in tags]
                untagged = []
                continue
            if not line.startswith("*"):
                stray += 1
                if stray > MAX_STRAY_LINES:
                    sample = printable(line.encode("utf-8", "replace"), 60)
                    raise ServerMisbehaved(f"the server sent {stray} lines that are not IMAP "
                                           f"in one answer, such as {sample!r}")
                continue
            untagged.append(line)
            if line.upper().startswith("* CAPABILITY "):
                # Servers announce new capabilities after login (UIDPLUS ...).
                self.caps = {w.upper() for w in line.split()[2:]}

    def command(self, text: str) -> Response:
        """Send ``TAG text`` and read to the tagged reply (no secret goes through here)."""
        tag = self._next_tag()
        self.chan.send_line(f"{tag} {text}")
        return self._response(tag)

    def pipeline(self, commands: list[str]) -> list[Response]:
        """Send ``commands`` in one write and read their replies (RFC 3501 5.5).

        Only for commands that carry no credentials and need no continuation,
        and whose results do not depend on one another.
        """
        tags = [self._next_tag() for _ in commands]
        self.chan.send_lines([f"{tag} {text}" for tag, text in zip(tags, commands, strict=True)])
        return self._responses(tags)

    def _note_caps(self, text: str) -> bool:
        """Take the capabilities from a ``[CAPABILITY ...]`` code; True when ``text`` had one."""
        m = _CAP_CODE.search(text)
        if m:
            self.caps = {w.upper() for w in m.group(1).split()}
        return m is not None

    # ---------------------------------------------------------------- layers

    def greeting(self, timeout: float) -> str:  # noqa: D102 - see Session
        line = self.chan.read_line(timeout=timeout)
        upper = line.upper()
        if upper.startswith("* OK") or upper.startswith("* PREAUTH"):
            self.caps_from_greeting = self._note_caps(line)
            return line[:160]
        if upper.startswith("* BYE"):
            raise Diagnosed("server_disconnected", f"the server refused the session: {line[:160]}")
        raise wrong_protocol(line, "IMAP")

    def capabilities(self) -> str:  # noqa: D102 - see Session
        if self.caps_from_greeting:
            self.chan.transcript.note("capabilities as the greeting lists them (RFC 3501 7.1): "
                                      "CAPABILITY not sent")
            return self.caps_detail() + " (listed in the greeting)"
        resp = self.command("CAPABILITY")  # its untagged answer sets the caps (_responses)
        if not resp.ok:
            raise Diagnosed("wrong_protocol", f"CAPABILITY failed: {resp.status} {resp.text}")
        return self.caps_detail()

    def starttls(self) -> None:  # noqa: D102
        if "STARTTLS" not in self.caps:
            raise Diagnosed("starttls_unavailable", "the server does not list STARTTLS")
        resp = self.command("STARTTLS")
        if not resp.ok:
            raise starttls_refused(f"{resp.status} {resp.text}")
        # What was said before TLS no longer counts (RFC 3501 6.2.1): ask again.
        self.caps, self.caps_from_greeting = set(), False

    def _password_mechanisms(self) -> list[str]:
        """SASL mechanisms listed that carry a password as it is (PLAIN, LOGIN)."""
        return [m for m in ("PLAIN", "LOGIN") if f"AUTH={m}" in self.caps]

    def plaintext_offer(self, username: str) -> str:  # noqa: D102 - see Session
        mechanisms = self._password_mechanisms()
        if "LOGINDISABLED" in self.caps and not mechanisms:
            raise Diagnosed("plaintext_auth_disabled",
                            "the server lists LOGINDISABLED (and no AUTHENTICATE PLAIN) on this "
                            "unencrypted connection; no password was sent")
        offers = [] if "LOGINDISABLED" in self.caps else ["LOGIN"]
        offers += [f"AUTHENTICATE {m}" for m in mechanisms]
        return f"it offers {', '.join(offers)}"

    def authenticate(self, username: str, password: Secret) -> str:  # noqa: D102 - see Session
        mechanisms = self._password_mechanisms()
        if "LOGINDISABLED" in self.caps and "PLAIN" not in mechanisms and not self.encrypted:
            raise Diagnosed("plaintext_auth_disabled",
                            "the server lists LOGINDISABLED on this unencrypted connection; "
                            "no password was sent")
        if "PLAIN" in mechanisms:
            how = "AUTHENTICATE PLAIN"
            payload = sasl_plain(username, password)
            tag = self._next_tag()
            if "SASL-IR" in self.caps:  # RFC 4959: the login in one round trip
                self.chan.send_line(f"{tag} AUTHENTICATE PLAIN {payload}", secret=True,
                                    shown=f"{tag} AUTHENTICATE PLAIN ***")
                resp = self._response(tag)
            else:
                self.chan.send_line(f"{tag} AUTHENTICATE PLAIN")
                resp = self._response(tag, continuation=[payload.encode("ascii")])
        elif "LOGIN" in mechanisms and "LOGINDISABLED" in self.caps:
            # Over TLS (see above): no LOGIN command, but SASL LOGIN (Dovecot without
            # PLAIN, whose LOGIN command is PLAIN underneath): the username, then the
            # password, each asked for by the server.
            how = "AUTHENTICATE LOGIN"
            tag = self._next_tag()
            self.chan.send_line(f"{tag} AUTHENTICATE LOGIN")
            resp = self._response(tag, continuation=[b64(username).encode("ascii"),
                                                     b64(password.reveal()).encode("ascii")])
        else:
            how = "LOGIN"
            resp = self._login(username, password)
        if resp.ok:
            self._note_caps(resp.text)
            self.literal_limit = MAX_LITERAL
            return f"logged in as {username} with {how}"
        code = classify_auth_reply(f"{resp.status} {resp.text}")
        if how == "LOGIN" and code == "auth_failed" and not password.reveal().isascii():
            raise Diagnosed("password_not_ascii",
                            "the server offers only LOGIN, which cannot reliably carry a "
                            f"non-ASCII password; it answered "
                            f"{self.said(f'{resp.status} {resp.text[:120]}')}")
        raise Diagnosed(code, f"{how} rejected: {self.said(f'{resp.status} {resp.text[:160]}')}")

    def _login(self, username: str, password: Secret) -> Response:
        tag = self._next_tag()
        pw = password.reveal()
        if not _needs_literal(pw) and not _needs_literal(username):
            self.chan.send_line(f"{tag} LOGIN {quote(username)} {quote(pw)}", secret=True,
                                shown=f"{tag} LOGIN {quote(username)} ***")
            return self._response(tag)
        if _needs_literal(username):
            raise Diagnosed("unknown", "the username contains non-ASCII characters; "
                            "use the ASCII form of the address")
        # A literal carries UTF-8 bytes; LITERAL+ saves a round trip.
        plus = "+" if "LITERAL+" in self.caps else ""
        data = pw.encode("utf-8")
        self.chan.send_line(f"{tag} LOGIN {quote(username)} {{{len(data)}{plus}}}")
        if plus:
            self.chan.transcript.client("<password literal>", secret=True)
            self.chan.send_bytes(data + b"\r\n")
            return self._response(tag)
        return self._response(tag, continuation=[data])

    def mailbox(self) -> str:  # noqa: D102 - see Session
        # One write for all three (see the module docstring); NAMESPACE only
        # where the capabilities (the login's answer's, when it sent them) list it.
        commands = {"LIST": 'LIST "" "*"', "NAMESPACE": "NAMESPACE", "EXAMINE": "EXAMINE INBOX"}
        if "NAMESPACE" not in self.caps:
            del commands["NAMESPACE"]
        replies = dict(zip(commands, self.pipeline(list(commands.values())), strict=True))
        listed = replies["LIST"]
        if not listed.ok:
            raise Diagnosed("mailbox_unavailable",
                            f"LIST failed: {self.said(f'{listed.status} {listed.text}')}")
        untagged = [line for reply in replies.values() for line in reply.untagged]
        folders = [m for m in (_LIST.match(line) for line in untagged) if m]
        delimiters = {m.group(2).strip('"') for m in folders if m.group(2).upper() != "NIL"}
        prefix = next((m.group(1) for m in map(_NAMESPACE.match, reversed(untagged)) if m), "")
        exists = self._inbox_count(replies["EXAMINE"], untagged)
        where = "delimiter " + self.said(repr("/".join(sorted(delimiters)) or "?"))
        if prefix:
            where += ", namespace prefix " + self.said(repr(prefix))
        return (f"{len(folders)} folders ({where}); INBOX: {self.said(str(exists))} messages "
                "(opened read-only)")

    def examine_inbox(self, select: bool = False) -> int:
        """EXAMINE (or SELECT) INBOX; return its message count."""
        resp = self.command(("SELECT" if select else "EXAMINE") + " INBOX")
        return self._inbox_count(resp, resp.untagged)

    def _inbox_count(self, resp: Response, untagged: list[str]) -> int:
        """The message count an EXAMINE/SELECT of INBOX (``resp``) reported in ``untagged``.

        Raises
        ------
        Diagnosed
            ``mailbox_unavailable`` when the server refused to open INBOX.
        """
        if not resp.ok:
            raise Diagnosed("mailbox_unavailable", "INBOX could not be opened: "
                            + self.said(f"{resp.status} {resp.text}"))
        return next((int(parts[1]) for parts in map(str.split, untagged)
                     if len(parts) >= 3 and parts[2].upper() == "EXISTS" and parts[1].isdigit()),
                    0)

    def wait_for(self, token: str, timeout: float, poll: float = 0.1) -> tuple[int, float] | None:
        """Poll INBOX for a message whose X-Mailhat-Test header is ``token``.

        Returns ``(uid, time.monotonic() when first seen)``, or None when it did
        not arrive within ``timeout`` seconds.
        """
        start = time.monotonic()
        while True:
            resp = self.command(f"UID SEARCH HEADER X-Mailhat-Test {quote(token)}")
            for line in resp.untagged:
                if line.upper().startswith("* SEARCH"):
                    uids = [int(w) for w in line.split()[2:] if w.isdigit()]
                    if uids:
                        return uids[-1], time.monotonic()
            if time.monotonic() - start > timeout:
                return None
            time.sleep(poll)
            self.command("NOOP")

    def remove(self, uid: int) -> bool:
        """Delete exactly message ``uid`` (needs UIDPLUS); True when done."""
        return ("UIDPLUS" in self.caps
                and self.command(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)").ok
                and self.command(f"UID EXPUNGE {uid}").ok)

    def _goodbye(self) -> None:
        self.chan.send_line(f"{self._next_tag()} LOGOUT")
