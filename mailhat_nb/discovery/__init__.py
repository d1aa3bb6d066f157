"""Discovery: from an email address alone to the server an agent should type.

::

    from mailhat_nb.discovery import discover
    found = discover("info@bakery.example", resolver="127.0.9.53", ca_file=ca, timeout=5)
    found.recommended.host, found.recommended.why, found.to_dict()

Sources (all at once, one overall timeout): RFC 6186 SRV records, Mozilla
autoconfig (:mod:`.autoconfig`), the MX hosts and the provider they reveal
(:mod:`.providers`, data in ``providers.toml``), ``mail.<domain>``, and the
server's own names: reverse DNS, SMTP banner, certificate (:mod:`.probes`).
:mod:`.rank` orders the candidates and says why; :mod:`.health` reads SPF,
DMARC and DKIM for the outgoing-mail notes. No password is ever involved.
"""

from mailhat_nb.discovery.model import Candidate, Discovery, Problem, ProviderMatch, Setting
from mailhat_nb.discovery.run import DEFAULT_TIMEOUT, discover

__all__ = ["DEFAULT_TIMEOUT", "Candidate", "Discovery", "Problem", "ProviderMatch", "Setting",
           "discover"]
