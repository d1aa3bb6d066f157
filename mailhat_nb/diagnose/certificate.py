"""TLS contexts, certificate facts, and which code a verification failure is.

The certificate helper exists because "certificate error" helps nobody: on a
verification failure the doctor reads the certificate anyway (a second
connection with verification off, over which no credential is ever sent) and
reports the names it covers, its issuer and its dates, then recommends a
host name it does cover, once that name is shown to lead to the same server
(:func:`vet`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailhat_nb.diagnose.normalise import is_ip
from mailhat_nb.errors import UsageError

if TYPE_CHECKING:
    from cryptography import x509

# OpenSSL X509_V_ERR_* codes we name.
_EXPIRED = {9, 10}  # not yet valid, has expired
_HOSTNAME = {62, 64}  # hostname mismatch, IP address mismatch
_UNTRUSTED = {2, 18, 19, 20, 21, 24, 27, 28, 30, 31, 32, 79}


def verified_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """Build a verifying client context: the system store, plus ``ca_file`` when given.

    The one context every verified connection starts from (the doctor's, the
    discovery's, the sync's), so ``--ca-file`` means the same to each.

    Raises
    ------
    UsageError
        When ``ca_file`` is missing or not a PEM file.
    """
    ctx = system_trust()
    if ca_file:
        # Given as --ca-file, or as an accounts file's ca_file: the message names both.
        which = f"cannot use the CA file {ca_file} (--ca-file, ca_file)"
        if Path(ca_file).is_dir():
            raise UsageError(f"{which}: it is a directory; give a PEM file of CA certificates")
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"{which}: {exc}") from exc
    return ctx


def system_trust() -> ssl.SSLContext:
    """A verifying TLS client context that trusts the system's CAs.

    :func:`ssl.create_default_context` parses the whole CA bundle (some 140
    certificates) each time, a noticeable share of a re-sync that has
    nothing to fetch. Where the system keeps the same CAs in OpenSSL's
    hashed directory (Debian's ``/etc/ssl/certs``), that directory is given
    instead: OpenSSL reads from it only the issuer a handshake needs. Where
    there is no such directory, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    point somewhere else than the system's own, the default loading is kept.
    Either way the context is :func:`ssl.create_default_context`'s, with its
    hardening.
    """
    paths = ssl.get_default_verify_paths()  # SSL_CERT_FILE / SSL_CERT_DIR applied

    def system(given: str | None, default: str) -> bool:
        return given is None or os.path.realpath(given) == os.path.realpath(default)

    if paths.capath and system(paths.cafile, paths.openssl_cafile) \
            and system(paths.capath, paths.openssl_capath):
        try:
            hashed = any(name.endswith(".0") for name in os.listdir(paths.capath))
        except OSError:
            hashed = False
        if hashed:
            return ssl.create_default_context(capath=paths.capath)
    return ssl.create_default_context()


def unverified_context() -> ssl.SSLContext:
    """Build a context that accepts any certificate: only to *read* one, never to log in."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def classify_verify(verify_code: int | None, reason: str = "") -> str:
    """Diagnosis code for an OpenSSL verification failure.

    >>> classify_verify(10), classify_verify(62), classify_verify(18)
    ('cert_expired', 'cert_hostname_mismatch', 'cert_untrusted')
    """
    if verify_code in _EXPIRED:
        return "cert_expired"
    if verify_code in _HOSTNAME:
        return "cert_hostname_mismatch"
    if verify_code in _UNTRUSTED or reason == "CERTIFICATE_VERIFY_FAILED":
        return "cert_untrusted"
    return "unknown"


def _name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


def describe(der: bytes, host: str | None = None,
             now: dt.datetime | None = None) -> dict[str, Any]:
    """Facts about a DER certificate, JSON-ready.

    Returns
    -------
    dict
        ``subject``, ``names`` (DNS and IP subject alternative names, else the
        common name), ``issuer``, ``not_before``, ``not_after`` (ISO UTC),
        ``expired``, ``self_signed``, ``sha256``, and when ``host`` is given
        ``covers_host`` and ``recommended_host``.
    """
    # cryptography loads here, not with the module: the sync shares this
    # module's TLS context and reads a certificate only when one fails.
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    now = now or dt.datetime.now(dt.UTC)
    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    subject_cn = _name_attr(cert.subject, NameOID.COMMON_NAME)
    if not names and subject_cn:
        names = [subject_cn]
    issuer = (_name_attr(cert.issuer, NameOID.COMMON_NAME)
              or _name_attr(cert.issuer, NameOID.ORGANIZATION_NAME) or cert.issuer.rfc4514_string())
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    info: dict[str, Any] = {
        "subject": subject_cn or cert.subject.rfc4514_string(),
        "names": names,
        "issuer": issuer,
        "not_before": start.isoformat(),
        "not_after": end.isoformat(),
        "expired": not (start <= now <= end),
        "self_signed": cert.issuer == cert.subject,
        "sha256": hashlib.sha256(der).hexdigest(),
    }
    if host is not None:
        info["covers_host"] = covers(names, host)
        info["recommended_host"] = recommend(names, host)
    return info


def covers(names: list[str], host: str) -> bool:
    """Tell whether a certificate for ``names`` is valid for ``host`` (RFC 6125 wildcards).

    >>> covers(["*.hostgator.com"], "gator1.hostgator.com"), covers(["*.a.com"], "x.y.a.com")
    (True, False)
    """
    host = host.lower().rstrip(".")
    wanted = [name.lower().rstrip(".") for name in names]
    if is_ip(host):  # only the same address covers an address
        return any(is_ip(n) and ipaddress.ip_address(n) == ipaddress.ip_address(host)
                   for n in wanted)
    head, _, tail = host.partition(".")
    return any(n == host or (n.startswith("*.") and "." in host and bool(head) and n[2:] == tail)
               for n in wanted)


def recommend(names: list[str], host: str) -> str | None:
    """Pick a host name the certificate covers, to suggest instead of ``host``.

    An exact (non-wildcard) DNS name wins, preferring one that shares the most
    trailing labels with ``host``; a wildcard alone yields ``None`` (we cannot
    invent the server's name; the remedy text says where to find it).
    """
    if covers(names, host):
        return host
    exact = [n for n in names if not n.startswith("*.") and not is_ip(n)]
    if not exact:
        return None
    host_labels = host.lower().split(".")[::-1]

    def shared(name: str) -> int:
        count = 0
        for a, b in zip(name.lower().split(".")[::-1], host_labels, strict=False):
            if a != b:
                break
            count += 1
        return count

    return max(exact, key=lambda n: (shared(n), -exact.index(n)))


def vet(cert: dict[str, Any], here: set[str],
        addresses_of: Callable[[str], set[str]]) -> dict[str, Any]:
    """Keep the certificate's ``recommended_host`` only if it leads to this server.

    A name the certificate covers is only a guess at the name to type: one
    that does not resolve (a hosting company's internal name) would send the
    agent from a certificate error to a DNS error, and one that resolves
    elsewhere to another server. So the recommendation stands only when the
    name resolves to one of ``here`` (the addresses the probe reached);
    otherwise it goes, and ``not_here`` says why in a sentence.

    >>> cert = {"names": ["shared42.hosting.example"], "covers_host": False,
    ...         "recommended_host": "shared42.hosting.example"}
    >>> vet(cert, {"192.0.2.7"}, lambda name: set())["not_here"]
    'shared42.hosting.example does not resolve'
    >>> vet(cert, {"192.0.2.7"}, lambda name: {"192.0.2.7"})["recommended_host"]
    'shared42.hosting.example'
    """
    name = cert.get("recommended_host")
    if not name or cert.get("covers_host"):
        return cert
    found = addresses_of(name)
    if found & here:
        return cert
    out = {k: v for k, v in cert.items() if k != "recommended_host"}
    out["not_here"] = (f"{name} does not resolve" if not found else
                       f"{name} leads to {', '.join(sorted(found)[:4])}, not to this server "
                       f"({', '.join(sorted(here)[:4])})")
    return out
