"""The sandbox's webhook signing certificates: a local root CA and Microsoft-named leaf.

Partner Center signs every webhook callback with the key of a certificate for
`pcnotifications-dispatch.microsoft.com` (organisation Microsoft Corporation) and names the
certificate's URL in `X-MS-Certificate-Url` (spec §4.3, §4.4). The sandbox does the same with
a certificate it makes itself: a self-signed root CA ("cosell sandbox root CA", O "cosell
sandbox") issues the leaf (CN and SAN `pcnotifications-dispatch.microsoft.com`, O "Microsoft
Corporation"). A receiver that trusts the sandbox CA (and only then) can verify the chain with
`cryptography.x509.verification`, check the organisation, and verify each body's RSA-SHA256
PKCS#1 v1.5 signature with the leaf's public key.

Invariants:
- The extensions are what a strict verifier asks for: the CA has critical BasicConstraints
  (ca, path length 0) and KeyUsage keyCertSign/cRLSign; the leaf has critical BasicConstraints
  (not a CA), KeyUsage digitalSignature, ExtendedKeyUsage serverAuth + clientAuth, the SAN, and
  both carry SubjectKeyIdentifier / AuthorityKeyIdentifier.
- Keys are 2048-bit RSA from the OS; they and the certificates round-trip through `to_json` /
  `from_json`, so a restarted sandbox keeps signing with the certificate receivers cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cosell.clock import Clock

DISPATCH_HOST = "pcnotifications-dispatch.microsoft.com"
LEAF_ORGANIZATION = "Microsoft Corporation"
CA_COMMON_NAME = "cosell sandbox root CA"
CA_ORGANIZATION = "cosell sandbox"

# 2048 bits: the smallest RSA size strict verifiers (and Microsoft's own certificates) accept.
_KEY_SIZE = 2048
# Valid from a year back: test clocks (ManualClock) and receivers' real clocks may disagree by months.
_BACKDATE = timedelta(days=365)
_CA_VALIDITY = timedelta(days=3650)  # ten years: longer than any sandbox lives
_LEAF_VALIDITY = timedelta(days=825)  # the CA/Browser Forum's former maximum for leaf certificates


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


@dataclass(frozen=True)
class DispatchCertificates:
    """The sandbox root CA and the leaf certificate that signs webhook callbacks.

    Attributes:
        ca_certificate: the self-signed root.
        ca_key: the root's private key.
        leaf_certificate: the `pcnotifications-dispatch.microsoft.com` certificate.
        leaf_key: the leaf's private key; it signs callback bodies.
    """

    ca_certificate: x509.Certificate
    ca_key: rsa.RSAPrivateKey
    leaf_certificate: x509.Certificate
    leaf_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, clock: Clock) -> DispatchCertificates:
        """Make a new root CA and a leaf issued by it, valid around `clock.now()`."""
        now = clock.now()
        ca_key, leaf_key = _new_key(), _new_key()
        ca_name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_ORGANIZATION),
            ]
        )
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_certificate = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        leaf_name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "WA"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, "Redmond"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, LEAF_ORGANIZATION),
                x509.NameAttribute(NameOID.COMMON_NAME, DISPATCH_HOST),
            ]
        )
        leaf_certificate = (
            x509.CertificateBuilder()
            .subject_name(leaf_name)
            .issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(DISPATCH_HOST)]), critical=False
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca_certificate=ca_certificate,
            ca_key=ca_key,
            leaf_certificate=leaf_certificate,
            leaf_key=leaf_key,
        )

    def sign(self, body: bytes) -> bytes:
        """The RSA-SHA256 PKCS#1 v1.5 signature of `body` with the leaf key."""
        return self.leaf_key.sign(body, padding.PKCS1v15(), hashes.SHA256())

    def leaf_der(self) -> bytes:
        """The leaf certificate in DER, as Microsoft serves its `.cer`."""
        return self.leaf_certificate.public_bytes(serialization.Encoding.DER)

    def ca_der(self) -> bytes:
        """The root CA certificate in DER."""
        return self.ca_certificate.public_bytes(serialization.Encoding.DER)

    def ca_pem(self) -> bytes:
        """The root CA certificate in PEM, for trust stores and `--cacert`-style options."""
        return self.ca_certificate.public_bytes(serialization.Encoding.PEM)

    def to_json(self) -> dict[str, Any]:
        """Keys and certificates as PEM strings, for persistence."""

        def key_pem(key: rsa.RSAPrivateKey) -> str:
            return key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii")

        return {
            "ca_certificate": self.ca_pem().decode("ascii"),
            "ca_key": key_pem(self.ca_key),
            "leaf_certificate": self.leaf_certificate.public_bytes(
                serialization.Encoding.PEM
            ).decode("ascii"),
            "leaf_key": key_pem(self.leaf_key),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DispatchCertificates:
        """Load what `to_json` wrote.

        Raises:
            TypeError: a saved key is not an RSA key.
        """

        def load_key(pem: str) -> rsa.RSAPrivateKey:
            key = serialization.load_pem_private_key(pem.encode("ascii"), None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise TypeError("the saved webhook signing key is not an RSA key")
            return key

        return cls(
            ca_certificate=x509.load_pem_x509_certificate(data["ca_certificate"].encode("ascii")),
            ca_key=load_key(data["ca_key"]),
            leaf_certificate=x509.load_pem_x509_certificate(
                data["leaf_certificate"].encode("ascii")
            ),
            leaf_key=load_key(data["leaf_key"]),
        )
