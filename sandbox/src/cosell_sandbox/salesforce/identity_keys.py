"""The RSA key and certificate of the Salesforce sandbox's JWT bearer flow.

In a real org, an admin uploads a certificate to the connected app and the integration signs
its JWT assertions with the matching private key; Salesforce verifies each assertion against the
certificate's public key. The sandbox plays both parts: it owns a key pair in `key_dir`, hands
the private key's path to whoever runs the integration, and verifies assertions against the
public key of the certificate.

Invariants:
- Files are written atomically (a temporary file in the same folder, then `os.replace`), so a
  crash never leaves half a PEM behind; the private key is created with mode 0600 from the
  start, so it is never readable by others, not even for a moment.
- An existing private key is never overwritten: a restart with the same `key_dir` reuses it, so
  integrations configured with its path keep working. A missing or mismatched certificate is
  re-issued for that key. A private key file that cannot be read is an error, not a reason to
  replace it.
- Certificate validity is not checked when verifying assertions (the sandbox's clock may be far
  from real time); only the public key matters.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PRIVATE_KEY_FILE = "jwt-private-key.pem"
CERTIFICATE_FILE = "jwt-certificate.pem"

# Salesforce rejects connected-app certificates with RSA keys shorter than 2048 bits.
_KEY_BITS = 2048
# The standard RSA public exponent (F4); every other value is unusual and slower.
_PUBLIC_EXPONENT = 65537
# Salesforce's own self-signed certificates default to one year; ten keep a long-lived
# sandbox folder working without attention (validity is not checked anyway, see above).
_CERTIFICATE_DAYS = 3650
# Start validity a day early so a certificate made "now" is valid for peers whose clock lags.
_BACKDATE = timedelta(days=1)
# The private key's permissions: owner read/write only, like ssh keys.
_PRIVATE_MODE = 0o600
# The key folder's permissions when the sandbox creates it.
_DIR_MODE = 0o700


@dataclass(frozen=True)
class JwtKeyPair:
    """The sandbox's JWT signing material: where it lives and the key to verify with."""

    private_key_path: Path
    certificate_path: Path
    public_key: rsa.RSAPublicKey


def load_or_create_key_pair(key_dir: Path, *, now: datetime) -> JwtKeyPair:
    """Reuse the key pair in `key_dir`, or create one there.

    Args:
        key_dir: the folder holding `jwt-private-key.pem` and `jwt-certificate.pem`; created
            (mode 0700) when missing.
        now: the time a new certificate's validity starts from (the sandbox clock's now).

    Returns:
        The paths of both files and the certificate's public key.

    Raises:
        ValueError: the private key file exists but is not an unencrypted RSA key in PEM.
    """
    key_dir.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    key_path = key_dir / PRIVATE_KEY_FILE
    cert_path = key_dir / CERTIFICATE_FILE
    if key_path.exists():
        private_key = _read_private_key(key_path)
    else:
        private_key = rsa.generate_private_key(public_exponent=_PUBLIC_EXPONENT, key_size=_KEY_BITS)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_atomically(key_path, pem, _PRIVATE_MODE)
    public_key = private_key.public_key()
    if not _certificate_matches(cert_path, public_key):
        _write_atomically(cert_path, _self_signed_certificate(private_key, now), 0o644)
    return JwtKeyPair(private_key_path=key_path, certificate_path=cert_path, public_key=public_key)


def _read_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{path} is not an unencrypted PEM private key; remove it to let the sandbox "
            f"create a new key pair ({exc})"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        # A file with the wrong contents is a bad value, as in the branch above.
        raise ValueError(  # noqa: TRY004
            f"{path} holds a {type(key).__name__}, but the JWT bearer flow signs with RS256 and "
            "needs an RSA key; remove it to let the sandbox create a new key pair"
        )
    return key


def _certificate_matches(path: Path, public_key: rsa.RSAPublicKey) -> bool:
    if not path.exists():
        return False
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        return False
    cert_key = certificate.public_key()
    return isinstance(cert_key, rsa.RSAPublicKey) and (
        cert_key.public_numbers() == public_key.public_numbers()
    )


def _self_signed_certificate(private_key: rsa.RSAPrivateKey, now: datetime) -> bytes:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "cosell Salesforce sandbox JWT"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cosell sandbox"),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=_CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
