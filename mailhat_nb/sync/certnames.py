"""What a sync says when the server's certificate fails verification.

"Not trusted: pass the CA with --ca-file" is the remedy for one cause only,
an issuer the system does not trust (a private CA). For a certificate that a
trusted authority issued to *another name* it sends the user to trust a CA
that is already trusted, and the sync fails again. So on a failed check the
certificate is read once more (a second connection with verification off,
over which nothing but the greeting and STARTTLS is sent: no credential),
and the advice follows the cause:

* another name: the names it covers, and one to use instead once that name
  is shown to lead to the same server (:func:`~mailhat_nb.diagnose.certificate.vet`,
  as the doctor does): a name that does not resolve, or resolves elsewhere,
  would trade a certificate error for a DNS error or another server;
* expired: the host must renew it (no setting fixes it);
* an untrusted issuer: ``--ca-file``, if it is a private CA.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any

from mailhat_nb.diagnose.certificate import (
    classify_verify,
    describe,
    unverified_context,
    vet,
)

#: How the advice names the option that sets the server (the CLI's, also an
#: accounts file's ``server``).
SERVER_OPTION = "--server"


def explain(exc: ssl.SSLCertVerificationError, where: str, *, host: str, port: int,
            starttls: bool, address: str | None, dns_server: str | None,
            timeout: float) -> str:
    """The sentence for a failed certificate check, by its cause.

    Parameters
    ----------
    exc:
        What the TLS handshake raised.
    where:
        How the message names the connection ("connecting to h:993 (ssl)").
    host, port, starttls:
        The server as the sync reaches it (the name the certificate was checked on).
    address:
        Where the sync connected (``--dns-server``'s answer), or None for the
        system's resolution of ``host``.
    dns_server:
        The nameserver that vets a covered name (``--dns-server``), or None
        for the system's.
    timeout:
        Seconds for the second connection and for each lookup.
    """
    if _cause(exc) != "cert_hostname_mismatch":
        return brief(exc, where)
    cert = read(host, port, starttls=starttls, address=address, timeout=timeout)
    if cert is None:
        return brief(exc, where)
    peer = cert.pop("peer")
    cert = vet(cert, {peer}, lambda name: addresses(name, dns_server, timeout))
    names = ", ".join(cert["names"][:6]) or "no name"
    text = f"{where}: the server's certificate is valid for {names}, not for {host}"
    name = cert.get("recommended_host")
    if name:
        return (f"{text}; {name} leads to the same server: use it as the server name "
                f"({SERVER_OPTION} {name})")
    if cert.get("not_here"):
        return (f"{text}; no name it covers leads to this server ({cert['not_here']}): ask "
                f"the host for a certificate that covers {host}, or for the name to use")
    return (f"{text}; use the server's own name that it covers (the host's welcome email "
            "names it)")


def brief(exc: ssl.SSLCertVerificationError, where: str) -> str:
    """The sentence for a failed certificate check from the error alone (nothing read).

    >>> err = ssl.SSLCertVerificationError(1, "certificate verify failed")
    >>> err.verify_code, err.verify_message = 18, "self-signed certificate"
    >>> brief(err, "h:993").split("; ")
    ["h:993: the server's certificate is not trusted (self-signed certificate)", \
'pass the CA with --ca-file if it is a private one']
    >>> err.verify_code, err.verify_message = 62, "Hostname mismatch"
    >>> "--ca-file" in brief(err, "h")
    False
    """
    code = _cause(exc)
    said = exc.verify_message or "certificate verify failed"
    if code == "cert_expired":
        return (f"{where}: the server's certificate has expired or is not valid yet ({said}); "
                "the host must renew it (no setting here fixes it)")
    if code == "cert_hostname_mismatch":
        return (f"{where}: the server's certificate is not valid for this server name "
                f"({said}); use the name it is issued for (the host's welcome email names it)")
    return (f"{where}: the server's certificate is not trusted ({said}); "
            "pass the CA with --ca-file if it is a private one")


def read(host: str, port: int, *, starttls: bool, address: str | None,
         timeout: float) -> dict[str, Any] | None:
    """The server's certificate, unverified, with ``peer``: the address it came from.

    Only the greeting and STARTTLS cross this connection. None when it cannot
    be read: the failure is already known, this only adds facts.
    """
    from mailhat_nb.sync import borrowed

    with contextlib.suppress(Exception):
        from imapclient import SocketTimeout

        client = borrowed.connect(host, port, ssl_context=None if starttls
                                  else unverified_context(),
                                  timeout=SocketTimeout(connect=timeout, read=timeout),
                                  address=address)
        try:
            if starttls:
                client.starttls(unverified_context())
            sock = client.socket()
            der = sock.getpeercert(binary_form=True)
            peer = str(sock.getpeername()[0])
        finally:
            with contextlib.suppress(Exception):
                client.shutdown()
        if der:
            return {**describe(der, host), "peer": peer}
    return None


def addresses(name: str, dns_server: str | None, timeout: float) -> set[str]:
    """Where ``name`` leads, through the nameserver the sync uses; empty when nowhere."""
    from mailhat_nb.diagnose.dns import Resolver, resolves_to

    try:
        return resolves_to(Resolver(dns_server, lifetime=timeout), name)
    except OSError:
        return set()


def _cause(exc: ssl.SSLCertVerificationError) -> str:
    """The doctor's code for the failed check (``cert_hostname_mismatch`` ...)."""
    return classify_verify(exc.verify_code, getattr(exc, "reason", None) or "")
