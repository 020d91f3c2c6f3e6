import asyncio
import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from pc_fakes import CertificateKit, StaticTokens, der, pem, sign, sign_sha1

from cosell.clock import ManualClock
from cosell.partnercenter.client import RetryPolicy
from cosell.partnercenter.errors import (
    BodyTooLargeError,
    CertificateFetchError,
    CertificateUrlRejectedError,
    InvalidSignatureError,
    MalformedEventError,
    MalformedSignatureError,
    MissingHeaderError,
    RegistrationExistsError,
    UnsupportedAlgorithmError,
    UnsupportedSignatureSchemeError,
    UntrustedCertificateError,
    WebhookVerificationError,
)
from cosell.partnercenter.webhooks import (
    SignatureVerifier,
    VerifiedEvent,
    WebhooksClient,
    _parse_event,
    _registration_body,
)

CERT_BASE = "https://3psostorageacct.blob.core.windows.net/cert/"
GOOD_URL = CERT_BASE + "pcnotifications-dispatch.microsoft.com.cer"
BODY = (
    b'{"EventName":"referral-updated",'
    b'"ResourceUri":"https://api.partnercenter.microsoft.com/engagements/v1/referrals/2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11",'
    b'"ResourceName":"referral","AuditUri":null,'
    b'"ResourceChangeUtcDate":"2018-02-17T00:05:39.5485487+00:00"}'
)


@pytest.fixture(scope="module")
def kit() -> CertificateKit:
    return CertificateKit()


class CertificateHost:
    """Serves the test certificates as Microsoft's blob storage would."""

    def __init__(self, kit: CertificateKit) -> None:
        self.kit = kit
        self.hits: list[str] = []
        self.fail_with: Exception | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.hits.append(str(request.url))
        if self.fail_with is not None:
            raise self.fail_with
        name = request.url.path.rsplit("/", 1)[-1]
        kit = self.kit
        files = {
            "pcnotifications-dispatch.microsoft.com.cer": der(kit.leaf),
            "chain.pem": pem(kit.leaf) + pem(kit.ca),
            "selfsigned.cer": der(kit.self_signed),
            "wrongorg.cer": der(kit.wrong_org),
            "expired.cer": der(kit.issue("Microsoft Corporation", kit.leaf_key, expired=True)),
            "garbage.cer": b"not a certificate",
            "aia-leaf.cer": der(kit.aia_leaf),
            "issuing-ca-01.crt": der(kit.intermediate),
            "huge.cer": b"\x30" * (200 * 1024),
        }
        if name == "redirect.cer":
            return httpx.Response(302, headers={"Location": GOOD_URL})
        if name == "down.cer":
            return httpx.Response(503)
        if name in files:
            return httpx.Response(200, content=files[name])
        return httpx.Response(404)


def make_verifier(
    kit: CertificateKit, host: CertificateHost | None = None, **kwargs: object
) -> tuple[SignatureVerifier, CertificateHost, ManualClock]:
    host = host or CertificateHost(kit)
    clock = ManualClock(kit.now)
    http = httpx.AsyncClient(transport=httpx.MockTransport(host))
    verifier = SignatureVerifier(http, trusted_roots=[kit.ca], clock=clock, **kwargs)  # type: ignore[arg-type]
    return verifier, host, clock


def headers_for(
    signature: bytes, url: str = GOOD_URL, algorithm: str = "rsa-sha256"
) -> dict[str, str]:
    return {
        "Authorization": "Signature " + base64.b64encode(signature).decode(),
        "X-MS-Certificate-Url": url,
        "X-MS-Signature-Algorithm": algorithm,
        "Content-Type": "application/json",
    }


@dataclass
class Case:
    body: bytes
    headers: dict[str, str]


def _valid(kit: CertificateKit) -> Case:
    return Case(BODY, headers_for(sign(kit.leaf_key, BODY)))


def _with(**changes: str | None) -> Callable[[CertificateKit], Case]:
    def build(kit: CertificateKit) -> Case:
        case = _valid(kit)
        for key, value in changes.items():
            name = key.replace("_", "-")
            if value is None:
                case.headers.pop(name)
            else:
                case.headers[name] = value
        return case

    return build


def _url(url: str) -> Callable[[CertificateKit], Case]:
    return _with(**{"X-MS-Certificate-Url": url})


def _signed_by(key_name: str, url: str) -> Callable[[CertificateKit], Case]:
    def build(kit: CertificateKit) -> Case:
        return Case(BODY, headers_for(sign(getattr(kit, key_name), BODY), url=url))

    return build


def _body(body: bytes) -> Callable[[CertificateKit], Case]:
    def build(kit: CertificateKit) -> Case:
        return Case(body, headers_for(sign(kit.leaf_key, BODY)))

    return build


def _signature_text(text: Callable[[str], str]) -> Callable[[CertificateKit], Case]:
    def build(kit: CertificateKit) -> Case:
        case = _valid(kit)
        encoded = case.headers["Authorization"].removeprefix("Signature ")
        case.headers["Authorization"] = "Signature " + text(encoded)
        return case

    return build


def _sha1(kit: CertificateKit) -> Case:
    return Case(BODY, headers_for(sign_sha1(kit.leaf_key, BODY), algorithm="rsa-sha1"))


def _reserialised(kit: CertificateKit) -> Case:
    body = json.dumps(json.loads(BODY), indent=1).encode()
    return Case(body, headers_for(sign(kit.leaf_key, BODY)))


def _one_byte(kit: CertificateKit) -> Case:
    body = BODY.replace(b"referral-updated", b"referral-updatee")
    return Case(body, headers_for(sign(kit.leaf_key, BODY)))


def _unsigned_json(kit: CertificateKit) -> Case:
    body = b"not json at all"
    return Case(body, headers_for(sign(kit.leaf_key, body)))


def _too_large(kit: CertificateKit) -> Case:
    body = BODY + b" " * (1024 * 1024)
    return Case(body, headers_for(sign(kit.leaf_key, body)))


def _signed_body(body: bytes) -> Callable[[CertificateKit], Case]:
    def build(kit: CertificateKit) -> Case:
        return Case(body, headers_for(sign(kit.leaf_key, body)))

    return build


def _signed_event(**fields: object) -> Callable[[CertificateKit], Case]:
    event = {**json.loads(BODY), **fields}
    return _signed_body(json.dumps(event).encode())


REFUSED: list[tuple[str, Callable[[CertificateKit], Case], type[WebhookVerificationError], int]] = [
    ("missing authorization", _with(Authorization=None), MissingHeaderError, 401),
    ("missing certificate url", _with(**{"X-MS-Certificate-Url": None}), MissingHeaderError, 400),
    ("missing algorithm", _with(**{"X-MS-Signature-Algorithm": None}), MissingHeaderError, 400),
    ("bearer scheme", _with(Authorization="Bearer abc"), UnsupportedSignatureSchemeError, 401),
    (
        "scheme without value",
        _with(Authorization="Signature "),
        UnsupportedSignatureSchemeError,
        401,
    ),
    (
        "bare token",
        _with(Authorization="c2VjcmV0LXRva2VuLXZhbHVl"),
        UnsupportedSignatureSchemeError,
        401,
    ),
    ("rsa-sha1", _sha1, UnsupportedAlgorithmError, 400),
    (
        "unknown algorithm",
        _with(**{"X-MS-Signature-Algorithm": "hmac-sha256"}),
        UnsupportedAlgorithmError,
        400,
    ),
    (
        "http url",
        _url("http://3psostorageacct.blob.core.windows.net/cert/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    ("another host", _url("https://evil.example/cert/x.cer"), CertificateUrlRejectedError, 401),
    (
        "another blob account",
        _url("https://attacker.blob.core.windows.net/cert/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    (
        "lookalike suffix host",
        _url("https://3psostorageacct.blob.core.windows.net.evil.example/cert/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    (
        "userinfo",
        _url("https://user:pw@3psostorageacct.blob.core.windows.net/cert/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    (
        "host as userinfo",
        _url("https://3psostorageacct.blob.core.windows.net@evil.example/cert/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    (
        "explicit port",
        _url("https://3psostorageacct.blob.core.windows.net:443/cert/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    (
        "odd port",
        _url("https://3psostorageacct.blob.core.windows.net:8443/cert/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    ("query", _url(GOOD_URL + "?sv=2020"), CertificateUrlRejectedError, 401),
    ("empty query", _url(GOOD_URL + "?"), CertificateUrlRejectedError, 401),
    ("fragment", _url(GOOD_URL + "#x"), CertificateUrlRejectedError, 401),
    (
        "outside the folder",
        _url("https://3psostorageacct.blob.core.windows.net/other/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    (
        "folder prefix lookalike",
        _url("https://3psostorageacct.blob.core.windows.net/certs/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    ("dot segments", _url(CERT_BASE + "../other/x.cer"), CertificateUrlRejectedError, 401),
    (
        "escaped dot segments",
        _url(CERT_BASE + "%2e%2e/other/x.cer"),
        CertificateUrlRejectedError,
        401,
    ),
    ("backslash", _url(CERT_BASE + "..\\other\\x.cer"), CertificateUrlRejectedError, 401),
    ("the folder itself", _url(CERT_BASE), CertificateUrlRejectedError, 401),
    ("redirect", _url(CERT_BASE + "redirect.cer"), CertificateFetchError, 401),
    ("certificate missing", _url(CERT_BASE + "gone.cer"), CertificateFetchError, 401),
    ("certificate host down", _url(CERT_BASE + "down.cer"), CertificateFetchError, 503),
    ("not a certificate", _url(CERT_BASE + "garbage.cer"), CertificateFetchError, 401),
    ("oversized certificate", _url(CERT_BASE + "huge.cer"), CertificateFetchError, 401),
    (
        "self-signed certificate",
        _signed_by("self_signed_key", CERT_BASE + "selfsigned.cer"),
        UntrustedCertificateError,
        401,
    ),
    (
        "wrong organisation",
        _signed_by("wrong_org_key", CERT_BASE + "wrongorg.cer"),
        UntrustedCertificateError,
        401,
    ),
    ("expired certificate", _url(CERT_BASE + "expired.cer"), UntrustedCertificateError, 401),
    ("one byte changed", _one_byte, InvalidSignatureError, 401),
    ("re-serialised json", _reserialised, InvalidSignatureError, 401),
    ("signed by another key", _signed_by("wrong_org_key", GOOD_URL), InvalidSignatureError, 401),
    ("truncated base64", _signature_text(lambda s: s[:-3]), MalformedSignatureError, 401),
    (
        "base64 with junk",
        _signature_text(lambda s: s[:10] + "!*" + s[10:]),
        MalformedSignatureError,
        401,
    ),
    ("valid base64, cut signature", _signature_text(lambda s: s[:-4]), InvalidSignatureError, 401),
    ("body over 1 MiB", _too_large, BodyTooLargeError, 413),
    ("signed body not json", _unsigned_json, MalformedEventError, 400),
    # Found by an attack run, each once a 500 with a traceback:
    ("unclosed IPv6 literal", _url("http://[::1/cert/x"), CertificateUrlRejectedError, 401),
    ("unclosed IPv6 over https", _url("https://[::1/cert/x.cer"), CertificateUrlRejectedError, 401),
    ("bad IPv6 literal", _url("https://[not-v6]/cert/x.cer"), CertificateUrlRejectedError, 401),
    (
        "signed body nested 1,000 deep",
        _signed_body(b'{"EventName":"referral-updated","x":' + b"[" * 1000 + b"]" * 1000 + b"}"),
        MalformedEventError,
        400,
    ),
    (
        "signed body of 100,000 open brackets",
        _signed_body(b"[" * 100_000),
        MalformedEventError,
        400,
    ),
    (
        "ResourceUri with an unclosed IPv6 literal",
        _signed_event(ResourceUri="https://[::1/engagements/v1/referrals/r1"),
        MalformedEventError,
        400,
    ),
    (
        "ResourceUri with a lone surrogate",
        _signed_event(ResourceUri="https://api.partnercenter.microsoft.com/referrals/\ud800"),
        MalformedEventError,
        400,
    ),
    (
        "EventName with a lone surrogate",
        _signed_event(EventName="\udfff"),
        MalformedEventError,
        400,
    ),
    ("EventName with a newline", _signed_event(EventName="a\nb"), MalformedEventError, 400),
]


@pytest.mark.parametrize(
    ("build", "kind", "status"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
async def test_refused(
    kit: CertificateKit, build: Callable[[CertificateKit], Case], kind: type[Exception], status: int
) -> None:
    verifier, _, _ = make_verifier(kit)
    case = build(kit)
    with pytest.raises(kind) as caught:
        await verifier.verify(case.body, case.headers)
    assert type(caught.value) is kind
    assert caught.value.status_hint == status
    assert str(caught.value)
    assert "c2VjcmV0" not in str(caught.value)  # header values are never echoed


def _expected_event() -> VerifiedEvent:
    return VerifiedEvent(
        event_name="referral-updated",
        resource_uri="https://api.partnercenter.microsoft.com/engagements/v1/referrals/2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11",
        resource_name="referral",
        referral_id="2e6fd4a4-56fe-4a3f-9a6f-6e4c7f3e0a11",
        resource_change_utc_date=datetime(2018, 2, 17, 0, 5, 39, 548548, tzinfo=UTC),
        audit_uri=None,
    )


async def test_valid_callback_is_accepted(kit: CertificateKit) -> None:
    verifier, _, _ = make_verifier(kit)
    case = _valid(kit)
    assert await verifier.verify(case.body, case.headers) == _expected_event()


async def test_valid_callback_with_x_ms_signature_and_lowercase_headers(
    kit: CertificateKit,
) -> None:
    verifier, _, _ = make_verifier(kit)
    case = _valid(kit)
    headers = {k.lower(): v for k, v in case.headers.items()}
    headers["x-ms-signature"] = headers.pop("authorization")
    assert (await verifier.verify(case.body, headers)).referral_id == _expected_event().referral_id


async def test_pem_bundle_with_chain_is_accepted(kit: CertificateKit) -> None:
    verifier, _, _ = make_verifier(kit)
    case = Case(BODY, headers_for(sign(kit.leaf_key, BODY), url=CERT_BASE + "chain.pem"))
    assert (await verifier.verify(case.body, case.headers)).event_name == "referral-updated"


async def test_certificate_is_cached_until_expiry_on_the_clock(kit: CertificateKit) -> None:
    verifier, host, clock = make_verifier(kit, cache_seconds=600)
    case = _valid(kit)
    for _ in range(3):
        await verifier.verify(case.body, case.headers)
    assert len(host.hits) == 1
    clock.advance(601)
    await verifier.verify(case.body, case.headers)
    assert len(host.hits) == 2


async def test_concurrent_callbacks_naming_one_certificate_share_one_download(
    kit: CertificateKit,
) -> None:
    verifier, host, _ = make_verifier(kit)
    case = _valid(kit)
    events = await asyncio.gather(*(verifier.verify(case.body, case.headers) for _ in range(50)))
    assert {e.event_name for e in events} == {"referral-updated"}
    assert len(host.hits) == 1


async def test_a_failed_download_is_cached_on_the_clock(kit: CertificateKit) -> None:
    # Failures were not cached: every forged callback naming a missing file downloaded again.
    verifier, host, clock = make_verifier(kit, failure_cache_seconds=60)
    case = _url(CERT_BASE + "gone.cer")(kit)
    outcomes = await asyncio.gather(
        *(verifier.verify(case.body, case.headers) for _ in range(20)), return_exceptions=True
    )
    assert all(type(o) is CertificateFetchError and o.status_hint == 401 for o in outcomes)
    for _ in range(5):
        with pytest.raises(CertificateFetchError, match="could not be downloaded"):
            await verifier.verify(case.body, case.headers)
    assert len(host.hits) == 1
    clock.advance(61)
    with pytest.raises(CertificateFetchError):
        await verifier.verify(case.body, case.headers)
    assert len(host.hits) == 2


async def test_forged_callbacks_naming_ever_new_certificates_cannot_make_it_download_each(
    kit: CertificateKit,
) -> None:
    # The attack run: 200 forged callbacks with distinct certificate paths on the allowed host
    # made 200 downloads.
    verifier, host, clock = make_verifier(kit, max_downloads_per_minute=10)
    cases = [_url(f"{CERT_BASE}forged-{n}.cer")(kit) for n in range(200)]
    outcomes = await asyncio.gather(
        *(verifier.verify(c.body, c.headers) for c in cases), return_exceptions=True
    )
    assert len(host.hits) == 10
    statuses = sorted(o.status_hint for o in outcomes if isinstance(o, CertificateFetchError))
    assert statuses == [401] * 10 + [429] * 190
    # The genuine certificate waits for the window too, then is fetched as usual.
    good = _valid(kit)
    with pytest.raises(CertificateFetchError, match="more than 10 certificate URLs"):
        await verifier.verify(good.body, good.headers)
    clock.advance(60)
    assert (await verifier.verify(good.body, good.headers)).event_name == "referral-updated"
    assert len(host.hits) == 11


def test_the_download_rate_must_allow_one(kit: CertificateKit) -> None:
    with pytest.raises(ValueError, match="max_downloads_per_minute"):
        make_verifier(kit, max_downloads_per_minute=0)


async def test_nothing_is_downloaded_before_the_url_is_checked(kit: CertificateKit) -> None:
    verifier, host, _ = make_verifier(kit)
    case = _url("https://evil.example/cert/x.cer")(kit)
    with pytest.raises(CertificateUrlRejectedError):
        await verifier.verify(case.body, case.headers)
    assert host.hits == []


async def test_unreachable_certificate_host_asks_for_a_retry(kit: CertificateKit) -> None:
    host = CertificateHost(kit)
    host.fail_with = httpx.ConnectError("down")
    verifier, _, _ = make_verifier(kit, host)
    case = _valid(kit)
    with pytest.raises(CertificateFetchError) as caught:
        await verifier.verify(case.body, case.headers)
    assert caught.value.status_hint == 503


async def test_certifi_roots_do_not_trust_a_private_ca(kit: CertificateKit) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(CertificateHost(kit)))
    verifier = SignatureVerifier(http, clock=ManualClock(kit.now))
    case = _valid(kit)
    with pytest.raises(UntrustedCertificateError):
        await verifier.verify(case.body, case.headers)


async def test_sandbox_http_location_only_when_configured(kit: CertificateKit) -> None:
    sandbox_url = "http://127.0.0.1:8610/cert/pcnotifications-dispatch.microsoft.com.cer"
    default, _, _ = make_verifier(kit)
    with pytest.raises(CertificateUrlRejectedError, match="only https"):
        default.check_certificate_url(sandbox_url)
    configured, _, _ = make_verifier(kit, allowed_certificate_urls=["http://127.0.0.1:8610/cert/"])
    case = Case(BODY, headers_for(sign(kit.leaf_key, BODY), url=sandbox_url))
    assert (await configured.verify(case.body, case.headers)).event_name == "referral-updated"
    with pytest.raises(CertificateUrlRejectedError):
        configured.check_certificate_url("http://127.0.0.1:8611/cert/x.cer")
    with pytest.raises(CertificateUrlRejectedError):
        configured.check_certificate_url("http://127.0.0.1/cert/x.cer")


@pytest.mark.parametrize(
    "entry",
    [
        "ftp://host/cert/",
        "https://host/cert",
        "https://u@host/cert/",
        "https://host/cert/?q",
        "relative/cert/",
    ],
)
def test_bad_allow_list_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed certificate URL"):
        SignatureVerifier(
            httpx.AsyncClient(),
            allowed_certificate_urls=[entry],
            trusted_roots=[CertificateKit().ca],
        )


async def test_intermediates_named_by_aia_are_fetched_once(kit: CertificateKit) -> None:
    verifier, host, clock = make_verifier(kit, cache_seconds=60)
    case = Case(BODY, headers_for(sign(kit.aia_leaf_key, BODY), url=CERT_BASE + "aia-leaf.cer"))
    assert (await verifier.verify(case.body, case.headers)).event_name == "referral-updated"
    assert host.hits == [
        CERT_BASE + "aia-leaf.cer",
        "http://pki.test.example/certs/issuing-ca-01.crt",
    ]
    clock.advance(61)
    await verifier.verify(case.body, case.headers)
    assert host.hits[2:] == [CERT_BASE + "aia-leaf.cer"]  # the issuer stays cached


async def test_without_intermediate_fetching_the_leaf_alone_does_not_chain(
    kit: CertificateKit,
) -> None:
    verifier, host, _ = make_verifier(kit, fetch_intermediates=False)
    case = Case(BODY, headers_for(sign(kit.aia_leaf_key, BODY), url=CERT_BASE + "aia-leaf.cer"))
    with pytest.raises(UntrustedCertificateError, match="chain"):
        await verifier.verify(case.body, case.headers)
    assert len(host.hits) == 1


async def test_signature_header_is_found_next_to_a_proxy_authorization(kit: CertificateKit) -> None:
    verifier, _, _ = make_verifier(kit)
    case = _valid(kit)
    case.headers["x-ms-signature"] = case.headers.pop("Authorization")
    case.headers["Authorization"] = "Bearer proxy-token"
    assert (await verifier.verify(case.body, case.headers)).event_name == "referral-updated"


def test_event_fields_are_read_case_insensitively() -> None:
    event = _parse_event(
        b'{"eventName":"test-created","resourceUri":"https://x/y","resourceName":"test"}'
    )
    assert event.event_name == "test-created"
    assert event.referral_id is None
    with pytest.raises(MalformedEventError, match="EventName"):
        _parse_event(b'{"ResourceUri":"x"}')
    with pytest.raises(MalformedEventError, match="object"):
        _parse_event(b"[1]")


def test_nesting_is_bounded_but_brackets_inside_strings_do_not_count() -> None:
    nested = b'{"EventName":"test-created","x":' + b"[" * 15 + b"]" * 15 + b"}"
    assert _parse_event(nested).event_name == "test-created"
    quoted = b'{"EventName":"test-created","x":"' + b"[{" * 5000 + b'\\"[["}'
    assert _parse_event(quoted).event_name == "test-created"
    with pytest.raises(MalformedEventError, match="nested more than 16"):
        _parse_event(b'{"EventName":"test-created","x":' + b"[" * 16 + b"]" * 16 + b"}")


# --- registration client -----------------------------------------------------------------------

WEBHOOKS = "https://api.partnercenter.microsoft.com/webhooks/v1"


def webhooks_client(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[WebhooksClient, list[httpx.Request], ManualClock]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    clock = ManualClock()
    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    client = WebhooksClient(
        http,
        StaticTokens(),
        base_url=WEBHOOKS,
        clock=clock,
        retry=RetryPolicy(rng=random.Random(0)),
    )
    return client, seen, clock


REGISTRATION = {
    "SubscriberId": "s-1",
    "WebhookUrl": "https://hooks.example/pc",
    "WebhookEvents": ["referral-created"],
}


async def test_register_posts_pascal_case_with_partner_center_headers() -> None:
    client, seen, _ = webhooks_client(lambda _: httpx.Response(200, json=REGISTRATION))
    registration = await client.register("https://hooks.example/pc", ["referral-created"])
    assert registration.subscriber_id == "s-1"
    assert registration.webhook_events == ("referral-created",)
    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == "/webhooks/v1/registration"
    assert json.loads(request.content) == {
        "WebhookUrl": "https://hooks.example/pc",
        "WebhookEvents": ["referral-created"],
    }
    assert request.headers["ms-contract-version"] == "v1"
    assert request.headers["ms-requestid"]
    assert request.headers["ms-correlationid"]


async def test_register_conflict_without_overwrite_says_what_to_do() -> None:
    client, seen, _ = webhooks_client(
        lambda _: httpx.Response(409, json={"error": {"code": "conflict"}})
    )
    with pytest.raises(RegistrationExistsError, match="--overwrite"):
        await client.register("https://hooks.example/pc", ["referral-created"])
    assert len(seen) == 1


async def test_register_conflict_with_overwrite_puts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(409, json={"error": {"code": "conflict"}})
        return httpx.Response(
            200,
            json={
                "subscriberId": "s-2",
                "webhookUrl": "https://new.example",
                "webhookEvents": ["referral-updated"],
            },
        )

    client, seen, _ = webhooks_client(handler)
    registration = await client.register(
        "https://new.example", ["referral-updated"], overwrite=True
    )
    assert registration.webhook_url == "https://new.example"
    assert [r.method for r in seen] == ["POST", "PUT"]


async def test_show_events_and_none_when_unregistered() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(200, json=["referral-created", "test-created"])
        return httpx.Response(404, json={"error": {"code": "itemNotFound"}})

    client, _, _ = webhooks_client(handler)
    assert await client.events() == ["referral-created", "test-created"]
    assert await client.show() is None


async def test_validation_event_is_retried_through_the_throttle() -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                json={"statusCode": 429, "message": "Rate limit"},
                headers={"Retry-After": "30"},
            ),
            httpx.Response(200, json={"correlationId": "c-1"}),
            httpx.Response(
                200,
                json={
                    "correlationId": "c-1",
                    "status": "completed",
                    "results": [{"responseCode": "OK", "systemError": False}],
                },
            ),
        ]
    )
    client, seen, clock = webhooks_client(lambda _: next(answers))
    assert await client.send_validation_event() == "c-1"
    assert 30 <= clock.sleeps[0] <= 31
    assert seen[0].headers["ms-requestid"] == seen[1].headers["ms-requestid"]
    result = await client.validation_result("c-1")
    assert result.status == "completed"
    assert result.results[0].response_code == "OK"
    with pytest.raises(ValueError, match="correlation id"):
        await client.validation_result("../x")


def test_registration_input_is_checked() -> None:
    with pytest.raises(ValueError, match="absolute https"):
        _registration_body("hooks.example", ["referral-created"])
    with pytest.raises(ValueError, match="at least one event"):
        _registration_body("https://hooks.example", [" "])
