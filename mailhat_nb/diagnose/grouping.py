"""Identical failures said once: the presets that stopped at the same place, in one sentence.

A server name that does not exist fails every preset tried on it: 22 lines
that say one thing. Two results are the same failure when they carry the
same status, code and title, and their details differ only in the host, the
port and the address they name (the detail's *shape*, :func:`shape`). Each
group becomes one sentence naming every host (and port) it covers and how
many presets stopped there::

    gator1234.hostgator.com and mail.customer.com do not exist in DNS: all 22 presets
    stopped there.

The groups depend on what the servers said, never on the order the presets
ran in: the results of a group, its hosts and ports, and the groups
themselves are put in the verdict's canonical order (failures first, the
most telling first, then :func:`~mailhat_nb.diagnose.evidence.preference`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhat_nb.diagnose.evidence import preference, telling_rank
from mailhat_nb.diagnose.results import PresetResult

#: Codes of a name that led to no address: the hosts are the subject, not the ports.
DNS_SENTENCES: dict[str, tuple[str, str]] = {
    "dns_not_found": ("does not exist in DNS", "do not exist in DNS"),
    "dns_no_record": ("has no address in DNS", "have no address in DNS"),
    "dns_servfail": ("cannot be looked up: the domain's DNS is broken (SERVFAIL)",
                     "cannot be looked up: the domain's DNS is broken (SERVFAIL)"),
    "dns_timeout": ("got no answer from DNS in time", "got no answer from DNS in time"),
    "dns_failure": ("could not be looked up", "could not be looked up"),
}
_STATUS_ORDER = {"fail": 0, "warn": 1, "skip": 2, "ok": 3}
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?![\w:])", re.I)
#: What a placeholder left in a shared detail stands for, when its values differ.
_GENERIC = {"{host}": "each server name", "{port}": "each port", "{addr}": "its address"}
#: A detail's opening "127.0.0.1 port 993: " says what the group's "where" already says.
_LEAD = re.compile(r"^(\{addr\}|\{host\})( port \{port\})?: ")


def shape(result: PresetResult, text: str | None = None) -> str:
    """The result's detail (or ``text``) with its host, addresses and port as placeholders.

    >>> from mailhat_nb.diagnose.presets import Preset, Target
    >>> from mailhat_nb.diagnose.results import Step
    >>> p = Preset("x", "IMAP 993", "imap", "h", 993, "ssl")
    >>> r = PresetResult(Target(p, "mail.example.com"), "connect_timeout",
    ...                  [Step("tcp", "fail", detail="192.0.2.7 port 993: no answer")])
    >>> shape(r)
    '{addr} port {port}: no answer'
    """
    text = result.detail if text is None else text
    if result.host:
        text = re.sub(rf"(?<![\w.-]){re.escape(result.host)}(?![\w-]|\.\w)", "{host}", text,
                      flags=re.I)
    text = _IPV6.sub("{addr}", _IPV4.sub("{addr}", text))
    return re.sub(rf"(?<![\w.]){result.port}(?![\w])", "{port}", text)


def _addresses(text: str) -> list[str]:
    return _IPV4.findall(text) + _IPV6.findall(text)


@dataclass(frozen=True)
class Group:
    """Results that failed (or warned) the same way, in canonical order."""

    status: str
    code: str
    title: str
    results: tuple[PresetResult, ...]

    @property
    def hosts(self) -> list[str]:
        """The hosts the group covers, each once, in canonical order."""
        return list(dict.fromkeys(r.host for r in self.results))

    @property
    def about_names(self) -> bool:
        """True when the failure is the names' (DNS): their ports do not matter."""
        return self.code in DNS_SENTENCES

    def where(self) -> str:
        """``a and b`` for names; ``host ports 993 and 143; other port 993`` otherwise."""
        if self.about_names:
            return join(self.hosts)
        parts = []
        for host in self.hosts:
            ports = list(dict.fromkeys(str(r.port) for r in self.results if r.host == host))
            parts.append(f"{host} port{'s' if len(ports) > 1 else ''} {join(ports)}")
        return "; ".join(parts)

    def detail(self) -> str:
        """What happened, once: the shared detail, or its shape with the differences in words.

        A host, port or address that is the same in every member is named;
        one that differs is said in words ("each server name"), the group's
        :meth:`where` naming them all.
        """
        details = list(dict.fromkeys(r.detail for r in self.results))
        if len(details) == 1:
            return details[0].rstrip(". ")
        text = _LEAD.sub("", shape(self.results[0]))
        addresses = {a for r in self.results for a in _addresses(r.detail)}
        for placeholder, values in (("{host}", set(self.hosts)),
                                    ("{port}", {str(r.port) for r in self.results}),
                                    ("{addr}", addresses)):
            text = text.replace(placeholder, next(iter(values)) if len(values) == 1
                                else _GENERIC[placeholder])
        return text.rstrip(". ")

    def once(self, texts: list[str]) -> list[str]:
        """``texts`` (one per member, in order) without those that differ only in host or port.

        For the sentences written per result (the explanation, the remedy):
        the first member's words stand for the others'.
        """
        kept: dict[str, str] = {}
        for r, text in zip(self.results, texts, strict=True):
            kept.setdefault(shape(r, text), text)
        return list(kept.values())

    def count(self, total: int) -> str:
        """``all 22 presets``, ``3 presets`` or ``1 preset``."""
        n = len(self.results)
        if n == total and n > 1:
            return f"all {n} presets"
        return f"{n} preset{'s' if n != 1 else ''}"

    def sentence(self, total: int) -> str:
        """The group in one sentence (``total``: how many presets the sweep tested)."""
        count = self.count(total)
        if self.about_names:
            singular, plural = DNS_SENTENCES[self.code]
            verb = plural if len(self.hosts) > 1 else singular
            return f"{self.where()} {verb}: {count} stopped there."
        stopped = f"{count} stopped there" if self.status == "fail" else count
        detail = self.detail()
        return f"{self.title} on {self.where()} ({stopped})" + (f": {detail}." if detail
                                                                 else ".")


def join(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) < 3:
        return " and ".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def group(results: list[PresetResult], statuses: tuple[str, ...] = ("fail", "warn")
          ) -> list[Group]:
    """The results of ``statuses`` grouped by status, code, title and detail shape.

    Failures first, the most telling code first (the verdict's order), so
    the order of ``results`` never changes the groups or their order.
    """
    found: dict[tuple[str, str, str, str], list[PresetResult]] = {}
    for r in sorted(results, key=preference):
        if r.status in statuses:
            found.setdefault((r.status, r.code, r.title, shape(r)), []).append(r)
    groups = [Group(status, code, title, tuple(members))
              for (status, code, title, _), members in found.items()]
    return sorted(groups, key=lambda g: (_STATUS_ORDER.get(g.status, 9),
                                         telling_rank(g.code),
                                         preference(g.results[0])))
