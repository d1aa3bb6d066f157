"""Ranking the candidates, and saying why, from their evidence alone.

A host earns points for each kind of evidence (the domain publishing it in
SRV or autoconfig counts most; the server's own names, in reverse DNS, the
SMTP banner and the certificate, next; the MX and the ``mail.<domain>``
convention least), and for a certificate valid for it; it loses them for
not resolving and for a certificate that does not cover it (the password
would go to a host that cannot prove its name). A candidate is recommended
when it resolves and nothing speaks against it. The order of the evidence
as it arrived never matters (the tests check every order).
"""

from __future__ import annotations

from mailhat_nb.discovery.model import Candidate
from mailhat_nb.discovery.probes import valid_for

WEIGHTS = {"srv": 6.0, "autoconfig": 6.0, "ptr": 3.0, "banner": 3.0, "certificate": 3.0,
           "mx": 2.0, "convention": 1.0}
_PHRASES = {
    "srv": "the domain's SRV records name it",
    "autoconfig": "the domain's autoconfig names it",
}


def score(candidate: Candidate) -> float:
    """Points for ``candidate`` (see the module docstring)."""
    points = sum(WEIGHTS[k] for k in candidate.kinds())
    if candidate.resolves is False:
        points -= 20
    cert = candidate.certificate
    if cert is not None:
        points += 5 if valid_for(cert, candidate.host) else -4
    return points


def _phrase(candidate: Candidate, kind: str) -> str:
    return _PHRASES.get(kind) or next(s.detail for s in candidate.sources if s.kind == kind)


def explain(candidate: Candidate) -> str:
    """One sentence of why (or why not) ``candidate``."""
    order = ("srv", "autoconfig", "ptr", "banner", "certificate", "mx", "convention")
    cert = candidate.certificate
    valid = cert is not None and valid_for(cert, candidate.host)
    # A valid certificate is said once, in the verdict part.
    reasons = [_phrase(candidate, k) for k in order if k in candidate.kinds()
               and not (k == "certificate" and valid)]
    if candidate.resolves is False:
        verdict = "but it does not resolve"
    elif cert is not None and valid_for(cert, candidate.host):
        verdict = f"and the certificate on port {cert['port']} is valid for it"
    elif cert is not None:
        names = ", ".join(cert.get("names", [])[:4]) or "no names"
        if not cert.get("trusted"):
            problem = "is not from a trusted authority"
        elif cert.get("expired"):
            problem = "has expired"
        else:
            problem = f"covers {names}, not this name"
        verdict = (f"but the certificate on port {cert['port']} {problem}: SSL/TLS to this "
                   "name fails, so it gets no password")
    else:
        verdict = "(no certificate could be read on 993 or 465)"
    text = "; ".join(dict.fromkeys(reasons)) or "seen"
    return f"{candidate.host}: {text}, {verdict}."


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Score, explain and order ``candidates``; mark the recommended ones.

    Ties break on the host name, so the result does not depend on the
    order the evidence arrived in.
    """
    for c in candidates:
        c.score = score(c)
        c.why = explain(c)
        cert_ok = c.certificate is None or valid_for(c.certificate, c.host)
        published = bool(c.kinds() & {"srv", "autoconfig"}) or c.vouched
        c.recommended = bool(c.resolves) and cert_ok and (
            c.certificate is not None or published) and c.score > 0
    return sorted(candidates, key=lambda c: (not c.recommended, -c.score, c.host))
