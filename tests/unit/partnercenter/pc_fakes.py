"""Test helpers for the Partner Center client: token providers, certificates, payloads."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID


@dataclass
class StaticTokens:
    """A TokenProvider handing out numbered tokens; `invalidate` moves to the next one."""

    issued: int = 1
    invalidations: int = 0

    async def token(self) -> str:
        return f"token-{self.issued}"

    def invalidate(self) -> None:
        self.invalidations += 1
        self.issued += 1


# A captured-style referral: nulls where objects are expected, empty enum strings, unknown
# fields, a quoted eTag, 7 fractional digits (spec §3.14).
REAL_REFERRAL: dict[str, Any] = {
    "@odata.context": "https://api.partner.microsoft.com/v1.0/$metadata#Referrals/$entity",
    "id": "2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11",
    "engagementId": "9d3a0c2b-3ad8-4b54-9e4c-2f5e5a7f1b22",
    "organizationId": "b2a1f0e9-1111-2222-3333-444455556666",
    "organizationName": "Contoso Partner",
    "name": "Contoso - Azure migration",
    "externalReferenceId": "006000000000001AAA",
    "createdDateTime": "2019-02-23T02:05:23.2931817Z",
    "updatedDateTime": "2019-02-24T10:00:00.1234567Z",
    "expirationDateTime": None,
    "acceptedDateTime": "2019-02-23T02:05:23.2931817Z",
    "closedDateTime": "",
    "status": "Active",
    "substatus": "Accepted",
    "statusReason": None,
    "type": "Shared",
    "qualification": "SalesQualified",
    "direction": "Outgoing",
    "mpnId": "1234567",
    "salesStage": "100",
    "quality": "Unknown",
    "isSpam": False,
    "favorite": None,
    "dealSensitivity": "None",
    "tags": None,
    "registrations": [],
    "customerProfile": {
        "name": "Fabrikam",
        "address": {
            "addressLine1": "1 Main St",
            "addressLine2": None,
            "city": "Redmond",
            "state": "WA",
            "postalCode": "98052",
            "country": "US",
            "region": None,
        },
        "size": "",
        "team": [
            {
                "firstName": "Ann",
                "lastName": "Lee",
                "email": "ann@fabrikam.example",
                "phoneNumber": "",
                "contactPreference": None,
            }
        ],
        "ids": [{"profileType": "External", "id": "6-ABCDEFG23XB"}],
        "isMatchingComplete": None,
    },
    "consent": {
        "consentToToShareInfoWithOthers": True,
        "consentToContact": True,
        "consentToShareReferralWithMicrosoftSellers": True,
        "consentToMicrosoftToContactSpecificPartners": None,
    },
    "details": {
        "notes": "Needs a PoC",
        "dealValue": 12500.5,
        "currency": "USD",
        "closingDateTime": "2019-06-30T00:00:00Z",
        "requirements": {
            "industries": None,
            "products": [],
            "services": [{"id": "ManagedServices"}],
            "solutions": [{"id": "SOL-34104-EBB", "name": "Fabrikam Cloud", "type": "Name"}],
            "offers": [],
            "additionalRequirements": None,
        },
        "customerRequestedContact": None,
        "incentiveLevel": "",
    },
    "team": None,
    "inviteContext": {
        "notes": "",
        "invitedBy": None,
        "assistanceRequestCode": "ProofOfConceptOrDemo",
        "invitedMpnId": None,
    },
    "target": [{"id": "msft", "type": "BusinessProfileLocation"}],
    "eTag": '"00006d10-0000-0000-0000-5c70aa630000"',
    "trackingInfo": {
        "microsoftMsxId": "7-2XXXXXX",
        "microsoftUSFedOpportunityId": None,
        "migratedPSCDealId": "",
    },
    "links": {
        "relatedReferrals": {
            "uri": "https://api.partner.microsoft.com/v1.0/engagments/referrals?$filter=engagementId eq 9d3a0c2b",
            "method": "GET",
        },
        "self": {
            "uri": "https://api.partner.microsoft.com/v1.0/engagements/referrals/x",
            "method": "GET",
        },
    },
}


def referral_payload(**overrides: Any) -> dict[str, Any]:
    body = copy.deepcopy(REAL_REFERRAL)
    body.update(overrides)
    return body


@dataclass
class CertificateKit:
    """A test CA with a Microsoft-named leaf, plus a self-signed and a wrong-organisation leaf."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __post_init__(self) -> None:
        self.ca_key = _key()
        self.ca = _certificate(
            subject=_name("Test Root CA", "Test Trust Services"),
            issuer=_name("Test Root CA", "Test Trust Services"),
            key=self.ca_key,
            signer=self.ca_key,
            ca=True,
            now=self.now,
            path_length=1,
        )
        self.leaf_key = _key()
        self.leaf = self.issue("Microsoft Corporation", self.leaf_key)
        self.wrong_org_key = _key()
        self.wrong_org = self.issue("Evil Corp", self.wrong_org_key)
        self.self_signed_key = _key()
        name = _name("pcnotifications-dispatch.microsoft.com", "Microsoft Corporation")
        self.self_signed = _certificate(
            subject=name,
            issuer=name,
            key=self.self_signed_key,
            signer=self.self_signed_key,
            ca=False,
            now=self.now,
            san="pcnotifications-dispatch.microsoft.com",
        )

        self.intermediate_key = _key()
        self.intermediate = _certificate(
            subject=_name("Test Issuing CA 01", "Test Trust Services"),
            issuer=self.ca.subject,
            key=self.intermediate_key,
            signer=self.ca_key,
            ca=True,
            now=self.now,
        )
        self.aia_leaf_key = _key()
        self.aia_leaf = _certificate(
            subject=_name("pcnotifications-dispatch.microsoft.com", "Microsoft Corporation"),
            issuer=self.intermediate.subject,
            key=self.aia_leaf_key,
            signer=self.intermediate_key,
            ca=False,
            now=self.now,
            san="pcnotifications-dispatch.microsoft.com",
            aia="http://pki.test.example/certs/issuing-ca-01.crt",
        )

    def issue(
        self, organization: str, key: rsa.RSAPrivateKey, *, expired: bool = False
    ) -> x509.Certificate:
        now = self.now - timedelta(days=800) if expired else self.now
        return _certificate(
            subject=_name("pcnotifications-dispatch.microsoft.com", organization),
            issuer=self.ca.subject,
            key=key,
            signer=self.ca_key,
            ca=False,
            now=now,
            san="pcnotifications-dispatch.microsoft.com",
            ca_key_for_aki=self.ca_key,
        )


def sign(key: rsa.RSAPrivateKey, body: bytes) -> bytes:
    return key.sign(body, padding.PKCS1v15(), hashes.SHA256())


def sign_sha1(key: rsa.RSAPrivateKey, body: bytes) -> bytes:
    return key.sign(body, padding.PKCS1v15(), hashes.SHA1())


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    signer: rsa.RSAPrivateKey,
    ca: bool,
    now: datetime,
    san: str | None = None,
    ca_key_for_aki: rsa.RSAPrivateKey | None = None,
    aia: str | None = None,
    path_length: int | None = 0,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                (ca_key_for_aki or signer).public_key()
            ),
            critical=False,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if aia:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(aia),
                    )
                ]
            ),
            critical=False,
        )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())
