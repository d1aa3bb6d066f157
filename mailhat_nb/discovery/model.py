"""What a discovery found: candidates with their evidence, settings, problems.

Its JSON (:meth:`Discovery.to_dict`) is DESIGN.md's "JSON of a discovery".
Nothing here can hold a password: discovery never has one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    """One piece of evidence for a host name."""

    kind: str
    detail: str


@dataclass
class Candidate:
    """A host name an agent might type, with what speaks for (and against) it.

    Attributes
    ----------
    certificate:
        What the TLS port (993, else 465) of the host's address served:
        ``names`` and whether it is ``valid`` for this host (trusted chain,
        in date, covering the name); None when no certificate was read.
    """

    host: str
    sources: list[Source] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    resolves: bool | None = None
    certificate: dict[str, Any] | None = None
    recommended: bool = False
    why: str = ""
    score: float = 0.0
    #: The provider's own IMAP server (``providers.toml``): vouched for like SRV.
    vouched: bool = False

    def add(self, kind: str, detail: str) -> None:
        """Record evidence (once per kind and detail)."""
        source = Source(kind, detail)
        if source not in self.sources:
            self.sources.append(source)

    def kinds(self) -> set[str]:
        """The kinds of evidence for this host."""
        return {s.kind for s in self.sources}

    def to_dict(self) -> dict[str, Any]:  # noqa: D102 - the JSON object
        return {"host": self.host, "recommended": self.recommended, "why": self.why,
                "sources": [asdict(s) for s in self.sources], "addresses": self.addresses}


@dataclass(frozen=True)
class Setting:
    """A complete setting a source stated (or the discovery concluded)."""

    protocol: str
    host: str
    port: int
    security: str
    source: str


@dataclass(frozen=True)
class Problem:
    """Something wrong found on the way, as a diagnosis code and a sentence.

    ``subject`` is the name concerned (the domain itself, or ``mail.<domain>``).
    """

    code: str
    detail: str
    subject: str = ""

    def to_dict(self) -> dict[str, str]:  # noqa: D102 - the JSON object
        return {"code": self.code, "detail": self.detail}


@dataclass(frozen=True)
class ProviderMatch:
    """The provider the evidence reveals."""

    id: str
    name: str
    evidence: str
    presets: str = ""
    advice: str = ""
    imap: str = ""

    def to_dict(self) -> dict[str, str]:  # noqa: D102 - the JSON object
        return {"id": self.id, "name": self.name, "evidence": self.evidence}


@dataclass
class DnsFacts:
    """The domain's mail DNS, for the outgoing-mail health notes."""

    mx: list[str] = field(default_factory=list)
    spf: str | None = None
    dmarc: str | None = None
    dkim_default: bool | None = None


@dataclass
class Discovery:
    """The outcome of discovering an address's mail server."""

    email: str
    domain: str
    provider: ProviderMatch | None = None
    candidates: list[Candidate] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    dns: DnsFacts = field(default_factory=DnsFacts)
    notes: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0

    @property
    def recommended(self) -> Candidate | None:
        """The host an agent should type (the first recommended candidate)."""
        return next((c for c in self.candidates if c.recommended), None)

    def problem(self, code: str) -> Problem | None:
        """The first problem with ``code``."""
        return next((p for p in self.problems if p.code == code), None)

    def to_dict(self) -> dict[str, Any]:
        """DESIGN.md's JSON of a discovery (plus ``elapsed_ms`` and ``notes``)."""
        return {"email": self.email, "domain": self.domain,
                "provider": self.provider.to_dict() if self.provider else None,
                "candidates": [c.to_dict() for c in self.candidates],
                "settings": [asdict(s) for s in self.settings],
                "problems": [p.to_dict() for p in self.problems],
                "dns": asdict(self.dns), "notes": self.notes,
                "elapsed_ms": round(self.elapsed_ms, 1)}
