"""The key pair and certificate of the JWT bearer flow (`cosell salesforce keys --out DIR`).

Salesforce's JWT bearer flow (spec §1.2) checks an RS256 assertion against a certificate
uploaded to the external client app (or connected app), "Use digital signatures". This makes
both halves: a 2048-bit RSA private key, written with mode 0600 for cosell
(`[salesforce] private_key_file`), and a self-signed X.509 certificate to upload. Salesforce
accepts self-signed certificates here; the certificate only carries the public key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PRIVATE_KEY_FILE = "cosell-jwt-private-key.pem"
CERTIFICATE_FILE = "cosell-jwt-certificate.crt"
# Two years: long enough not to surprise an admin, short enough to be rotated on purpose.
CERTIFICATE_LIFETIME = timedelta(days=730)
_KEY_BITS = 2048  # what Salesforce's own guide generates; RS256 needs at least 2048


class KeysExistError(Exception):
    """The output folder already holds a key or certificate; nothing was overwritten."""


@dataclass(frozen=True)
class JwtKeys:
    """Where the key pair was written."""

    private_key: Path
    certificate: Path


def write_jwt_keys(out: Path, *, now: datetime, common_name: str = "cosell") -> JwtKeys:
    """Write a new private key (mode 0600) and its self-signed certificate into `out`.

    Raises:
        KeysExistError: `out` already has either file (a key in use is never replaced).
    """
    key_path, cert_path = out / PRIVATE_KEY_FILE, out / CERTIFICATE_FILE
    existing = [p for p in (key_path, cert_path) if p.exists()]
    if existing:
        raise KeysExistError(
            f"{existing[0]} already exists: move it away, or choose another --out folder "
            "(an uploaded certificate keeps working until you replace it in Salesforce)"
        )
    out.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + CERTIFICATE_LIFETIME)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return JwtKeys(private_key=key_path, certificate=cert_path)
