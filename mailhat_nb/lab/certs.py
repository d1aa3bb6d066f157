"""TLS material for the lab: a small CA, a good leaf, and the broken ones.

The lab must show every certificate failure a customer's server can have, with
real certificates rather than a client told to misbehave:

* ``server``      signed by the lab CA, valid now, names ``localhost``, the
                  loopback addresses and ``mail.localhost`` (the good case);
* ``wrong-host``  signed by the lab CA, valid, but for a shared-hosting name
                  (what HostGator's ``gator1234.hostgator.com`` certificate
                  looks like to a customer who typed ``mail.theirdomain.com``);
* ``expired``     signed by the lab CA for the right names, expired last month;
* ``self-signed`` right names, valid dates, but issued by itself.

Python's strict verification (3.13 ``VERIFY_X509_STRICT``) wants a real CA
(``CA:TRUE``, critical) and a leaf with ``CA:FALSE``, key usage, extended key
usage and the subject alternative names, so we build exactly that.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mailhat_nb.errors import LabError

#: Names every good lab certificate covers.
LAB_NAMES: tuple[str, ...] = ("localhost", "mail.localhost", "127.0.0.1", "127.0.0.2")
#: Names the ``wrong-host`` certificate covers: a shared-hosting server name.
WRONG_HOST_NAMES: tuple[str, ...] = ("gator4321.hostgator.com", "*.hostgator.com")
#: The names each server certificate covers, by file stem. The first is the
#: host name of a server that serves it (Exim's banner names it).
CERT_NAMES: dict[str, tuple[str, ...]] = {
    "server": LAB_NAMES, "wrong-host": WRONG_HOST_NAMES, "expired": LAB_NAMES,
    "self-signed": LAB_NAMES,
}

_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertFiles:
    """Paths of one PEM certificate chain and its key."""

    cert: Path
    key: Path


def _key() -> _Key:
    # P-256 keys are generated in microseconds, so `lab up` stays fast.
    return ec.generate_private_key(ec.SECP256R1())


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailhat lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a leaf's EC key signs and agrees keys (ECDHE)."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=not ca, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


def _ca(now: dt.datetime) -> tuple[x509.Certificate, _Key]:
    key = _key()
    name = _name("mailhat lab CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    names: tuple[str, ...],
    issuer: tuple[x509.Certificate, _Key] | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> tuple[x509.Certificate, _Key]:
    key = _key()
    subject = _name(names[0])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_san(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is None:
        # Self-signed: its own issuer, and it is not a CA, so nothing trusts it.
        return builder.issuer_name(subject).sign(key, hashes.SHA256()), key
    ca_cert, ca_key = issuer
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = builder.issuer_name(ca_cert.subject).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: _Key) -> CertFiles:
    cert_path = directory / f"{stem}.pem"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return CertFiles(cert_path, key_path)


def make_tls_material(directory: Path) -> dict[str, CertFiles]:
    """Create the CA and the four server certificates under ``directory``.

    Returns
    -------
    dict
        ``{"ca": ..., "server": ..., "wrong-host": ..., "expired": ...,
        "self-signed": ...}``. ``ca.pem`` is what clients pass as
        ``--ca-file``; the others are what Dovecot serves in each scenario.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca = _ca(now)
    files = {"ca": _write(directory, "ca", *ca)}
    day = dt.timedelta(days=1)
    plan: dict[str, tuple[bool, dt.datetime, dt.datetime]] = {
        "server": (True, now - day, now + 825 * day),
        "wrong-host": (True, now - day, now + 825 * day),
        "expired": (True, now - 400 * day, now - 30 * day),
        "self-signed": (False, now - day, now + 825 * day),
    }
    for stem, (signed, start, end) in plan.items():
        cert, key = _leaf(CERT_NAMES[stem], ca if signed else None, start, end)
        files[stem] = _write(directory, stem, cert, key)
    return files


def issue(directory: Path, stem: str, names: tuple[str, ...]) -> CertFiles:
    """Issue (once) a certificate for ``names`` from the lab CA in ``directory``.

    For the world's web hosts (:mod:`mailhat_nb.lab.world`); an existing
    ``<stem>.pem`` is kept.
    """
    existing = CertFiles(directory / f"{stem}.pem", directory / f"{stem}.key")
    if existing.cert.exists() and existing.key.exists():
        return existing
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise LabError(f"{directory / 'ca.key'} is not the lab CA's key")
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    cert, key = _leaf(names, (ca_cert, ca_key), now - day, now + 825 * day)
    return _write(directory, stem, cert, key)
