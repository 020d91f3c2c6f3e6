"""The Webhooks API (registration) and the verification of webhook callbacks.

`WebhooksClient` manages the one registration a partner tenant has (spec §4.1): list the
event names, register a URL for events, show and update the registration, and send a
validation event (throttled by Partner Center to 2 per minute) and read its result. It shares
the Referrals client's retries and error mapping, with the Partner Center REST headers
(`MS-RequestId` stable across retries, `MS-CorrelationId`, `MS-Contract-Version: v1`).

`SignatureVerifier.verify(raw_body, headers)` decides whether a callback really comes from
Partner Center (spec §4.4). The order is the invariant: nothing in the body is parsed until
every check below has passed, and each failure is its own `WebhookVerificationError`
subclass carrying the status to answer with.

1. The body is at most 1 MiB (callbacks are a few hundred bytes).
2. `Authorization: Signature <base64>` (or `x-ms-signature: Signature <base64>` for
   registrations that asked for it), `X-MS-Certificate-Url` and `X-MS-Signature-Algorithm`
   are present; the algorithm is exactly `rsa-sha256`; the base64 is strict.
3. The certificate URL is on the allow-list: same scheme, host and port as an allowed
   entry, the entry's path as a prefix, no userinfo, query, fragment, dot segments,
   backslashes or escapes. By default only Microsoft's documented location
   `https://3psostorageacct.blob.core.windows.net/cert/` is allowed. An `http://` entry is
   accepted only because someone configured it explicitly, and exists for the sandbox
   (`http://127.0.0.1:PORT/cert/`); never configure one in production.
4. The certificate is downloaded without following redirects (a 3xx is refused) and with a
   size bound, then cached until `cache_seconds` have passed on the clock. A download or
   check that failed is cached too, for `failure_cache_seconds`, so forged callbacks naming
   the same certificate cannot make cosell download it again; concurrent callbacks naming
   one URL share one download (single flight); and at most `max_downloads_per_minute`
   distinct URLs are downloaded per minute (more is answered 429: forged callbacks naming
   ever new paths on the allowed host cannot make cosell download each one). It may be DER or
   PEM; further certificates in a PEM bundle are used as intermediates. Microsoft serves the
   leaf alone, so when it does not chain by itself the issuing certificates named in its
   Authority Information Access are downloaded too (bounded, cached); they gain no trust of
   their own, the chain check below decides.
5. The chain is verified to a trusted root (certifi's bundle by default; the sandbox's CA in
   tests) for the DNS name `pcnotifications-dispatch.microsoft.com` at the clock's time, and
   the leaf's subject organisation must be `Microsoft Corporation`.
6. The signature is RSA PKCS#1 v1.5 with SHA-256 over the raw bytes of the body.
7. Only then is the JSON parsed into a `VerifiedEvent`; its `referral_id` is the last path
   segment of `ResourceUri`, which the receiver re-reads with its own credentials.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import re
import uuid
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import certifi
import httpx
import pydantic
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from cosell.clock import Clock, SystemClock
from cosell.partnercenter.auth import TokenProvider
from cosell.partnercenter.client import ApiRequester, RetryPolicy, response_json
from cosell.partnercenter.defaults import (
    MAX_BODY_BYTES,
    MICROSOFT_CERTIFICATE_URL_PREFIX,
    WEBHOOKS_BASE_URL,
)
from cosell.partnercenter.errors import (
    BodyTooLargeError,
    CertificateFetchError,
    CertificateUrlRejectedError,
    InvalidSignatureError,
    MalformedEventError,
    MalformedSignatureError,
    MissingHeaderError,
    NotFoundError,
    RegistrationExistsError,
    UnexpectedResponseError,
    UnsupportedAlgorithmError,
    UnsupportedSignatureSchemeError,
    UntrustedCertificateError,
    WebhookVerificationError,
)

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = WEBHOOKS_BASE_URL
DISPATCH_DNS_NAME = "pcnotifications-dispatch.microsoft.com"
MICROSOFT_ORGANIZATION = "Microsoft Corporation"
MAX_CERTIFICATE_BYTES = 64 * 1024  # a certificate with its chain is a few KiB
# An hour: a rotated certificate is picked up within the hour, and the download happens once
# an hour instead of once per callback.
DEFAULT_CACHE_SECONDS = 3600.0
# Downloading a certificate must not hold a callback for long; Partner Center will retry.
_CERTIFICATE_TIMEOUT = httpx.Timeout(10.0)
_ALGORITHM = "rsa-sha256"
# Microsoft's chains have one intermediate (sometimes a cross-signed second); three bounds a loop.
_MAX_INTERMEDIATES = 3
# A failed download is not tried again for a minute: Partner Center retries a refused callback
# over hours, and a certificate host that was down is asked again soon enough.
DEFAULT_FAILURE_CACHE_SECONDS = 60.0
# Microsoft signs with one certificate at a time (a new URL at rotation): ten new URLs a minute
# is far more than it needs and bounds what forged callbacks can make cosell download.
DEFAULT_MAX_DOWNLOADS_PER_MINUTE = 10
_MINUTE = 60.0


# ---------------------------------------------------------------------------------------------
# Registration


class Registration(pydantic.BaseModel):
    """The tenant's webhook registration; keys are matched case-insensitively (docs use PascalCase)."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    subscriber_id: str | None = None
    webhook_url: str | None = None
    webhook_events: tuple[str, ...] = ()
    signature_token_to_ms_signature_header: bool | None = None
    last_modified_timestamp: datetime | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _case_insensitive(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        wanted = {name.replace("_", ""): name for name in cls.model_fields}
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = wanted.get(str(key).replace("_", "").lower())
            if name is not None:
                out[name] = [] if value is None and name == "webhook_events" else value
        return out


class ValidationResultItem(pydantic.BaseModel):
    """One delivery attempt of a validation event."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    response_code: str | None = pydantic.Field(None, alias="responseCode")
    response_message: str | None = pydantic.Field(None, alias="responseMessage")
    system_error: bool | None = pydantic.Field(None, alias="systemError")
    date_time_utc: str | None = pydantic.Field(None, alias="dateTimeUtc")


class ValidationResult(pydantic.BaseModel):
    """The outcome of a validation event."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)

    correlation_id: str | None = pydantic.Field(None, alias="correlationId")
    status: str | None = None
    callback_url: str | None = pydantic.Field(None, alias="callbackUrl")
    results: tuple[ValidationResultItem, ...] = ()

    @pydantic.field_validator("results", mode="before")
    @classmethod
    def _null_results(cls, value: object) -> object:
        return () if value is None else value


class WebhooksClient:
    """Client of the Webhooks API (app-only or App+User tokens for `api.partnercenter.microsoft.com`).

    Args:
        http: the HTTP client.
        tokens: bearer tokens for the Webhooks API audience.
        base_url: the API base.
        clock: what retries sleep on.
        retry: the retry policy.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenProvider,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._requester = ApiRequester(
            http,
            tokens,
            clock=clock or SystemClock(),
            retry=retry or RetryPolicy(),
            call_headers=lambda: {
                "MS-RequestId": str(uuid.uuid4()),
                "MS-CorrelationId": str(uuid.uuid4()),
                "MS-Contract-Version": "v1",
            },
            attempt_headers=dict,
        )

    async def events(self) -> list[str]:
        """The event names Partner Center can send."""
        response = await self._requester.send("GET", f"{self._base}/registration/events")
        body = response_json(response)
        if not isinstance(body, list) or not all(isinstance(e, str) for e in body):
            raise UnexpectedResponseError("the events list is not a JSON array of names")
        return list(body)

    async def register(
        self,
        url: str,
        events: Sequence[str],
        *,
        overwrite: bool = False,
        signature_in_ms_signature_header: bool = False,
    ) -> Registration:
        """Register `url` for `events`.

        Args:
            url: the https URL of our webhook endpoint.
            events: event names, e.g. `referral-created`.
            overwrite: replace an existing registration (PUT) when one exists.
            signature_in_ms_signature_header: ask for the signature in `x-ms-signature`
                instead of `Authorization` (for hosts that consume `Authorization` themselves).

        Raises:
            RegistrationExistsError: a registration exists and `overwrite` is False.
        """
        body = _registration_body(url, events, signature_in_ms_signature_header)
        try:
            response = await self._requester.send(
                "POST", f"{self._base}/registration", json_body=body, ok=frozenset({200, 201})
            )
        except UnexpectedResponseError as exc:
            if exc.status != 409:
                raise
            if not overwrite:
                raise RegistrationExistsError(
                    "a webhook registration already exists for this tenant (Partner Center "
                    "allows one URL per event): pass --overwrite (overwrite=True) to replace it",
                    status=exc.status,
                    code=exc.code,
                ) from exc
            return await self.update(
                url, events, signature_in_ms_signature_header=signature_in_ms_signature_header
            )
        return _registration(response)

    async def update(
        self,
        url: str,
        events: Sequence[str],
        *,
        signature_in_ms_signature_header: bool = False,
    ) -> Registration:
        """Replace the registration (PUT); arguments as for `register`."""
        body = _registration_body(url, events, signature_in_ms_signature_header)
        response = await self._requester.send("PUT", f"{self._base}/registration", json_body=body)
        return _registration(response)

    async def show(self) -> Registration | None:
        """The current registration, or None when there is none."""
        try:
            response = await self._requester.send("GET", f"{self._base}/registration")
        except NotFoundError:
            return None
        if not response.content:
            return None
        return _registration(response)

    async def send_validation_event(self) -> str:
        """Ask Partner Center to send a `test-created` event; returns its correlation id.

        Needs `test-created` in the registration; Partner Center allows 2 per minute.
        """
        response = await self._requester.send(
            "POST", f"{self._base}/registration/validationEvents", json_body={}
        )
        body = response_json(response)
        cid = body.get("correlationId") if isinstance(body, dict) else None
        if not isinstance(cid, str) or not cid:
            raise UnexpectedResponseError("the validation event answer has no correlationId")
        return cid

    async def validation_result(self, correlation_id: str) -> ValidationResult:
        """The delivery results of a validation event."""
        if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", correlation_id):
            raise ValueError(f"not a correlation id: {correlation_id!r}")
        response = await self._requester.send(
            "GET", f"{self._base}/registration/validationEvents/{correlation_id}"
        )
        try:
            return ValidationResult.model_validate(response_json(response))
        except pydantic.ValidationError as exc:
            raise UnexpectedResponseError(
                f"the validation result cannot be read: {exc.errors()[0]['msg']}"
            ) from exc


def _registration_body(
    url: str, events: Sequence[str], signature_in_ms_signature_header: bool = False
) -> dict[str, Any]:
    if not url.startswith("https://") and not url.startswith("http://"):
        raise ValueError(f"the webhook URL must be an absolute https URL, got {url!r}")
    names = [e.strip() for e in events if e.strip()]
    if not names:
        raise ValueError("name at least one event to register, e.g. referral-created")
    body: dict[str, Any] = {"WebhookUrl": url, "WebhookEvents": names}
    if signature_in_ms_signature_header:
        body["SignatureTokenToMsSignatureHeader"] = True
    return body


def _registration(response: httpx.Response) -> Registration:
    try:
        return Registration.model_validate(response_json(response))
    except pydantic.ValidationError as exc:
        raise UnexpectedResponseError(
            f"the webhook registration cannot be read: {exc.errors()[0]['msg']}"
        ) from exc


# ---------------------------------------------------------------------------------------------
# Callback verification


@dataclass(frozen=True)
class VerifiedEvent:
    """A callback whose signature checked out.

    Attributes:
        event_name: e.g. `referral-updated`.
        resource_uri: the resource as Partner Center names it (its host is not to be trusted
            for fetching; use `referral_id` with the configured client).
        resource_name: e.g. `referral`.
        referral_id: the last path segment of `resource_uri` for referral events, else None.
        resource_change_utc_date: when the resource changed, if given and readable.
        audit_uri: the audit record, if any.
    """

    event_name: str
    resource_uri: str | None
    resource_name: str | None
    referral_id: str | None
    resource_change_utc_date: datetime | None
    audit_uri: str | None


@dataclass(frozen=True)
class _AllowedPrefix:
    scheme: str
    host: str
    port: int | None
    path: str


@dataclass(frozen=True)
class _CachedCertificate:
    public_key: rsa.RSAPublicKey
    expires_at: float


@dataclass(frozen=True)
class _CachedFailure:
    error: WebhookVerificationError
    expires_at: float


_DOT_SEGMENT = re.compile(r"(^|/)\.{1,2}(/|$)")


def _parse_allowed(entry: str) -> _AllowedPrefix:
    parts = urlsplit(entry)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"an allowed certificate URL must be an absolute https URL: {entry!r}")
    if parts.username or parts.password or parts.query or parts.fragment or "?" in entry:
        raise ValueError(
            f"an allowed certificate URL must not have userinfo, query or fragment: {entry!r}"
        )
    path = parts.path or "/"
    if not path.endswith("/"):
        raise ValueError(f"an allowed certificate URL must end with '/' (a folder): {entry!r}")
    return _AllowedPrefix(parts.scheme, parts.hostname.lower(), parts.port, path)


class SignatureVerifier:
    """Verifies Partner Center webhook callbacks (see the module docstring for the checks).

    Args:
        http: the client certificates are downloaded with (redirects are never followed).
        allowed_certificate_urls: URL prefixes certificates may come from. An `http://`
            entry is for the sandbox only.
        trusted_roots: the roots a certificate must chain to; None uses certifi's bundle.
        clock: the time certificates are checked at and cached by.
        cache_seconds: how long a downloaded, verified certificate is reused.
        failure_cache_seconds: how long a failed download or check is answered from memory.
        max_downloads_per_minute: most distinct certificate URLs downloaded in a minute.
        dns_name: the name the leaf must be issued for.
        organization: the organisation the leaf's subject must name.
        fetch_intermediates: when the downloaded certificate does not chain on its own,
            download the issuing certificates its Authority Information Access names (as
            browsers do; Microsoft serves the leaf alone). They are trusted only through the
            chain check, so any http(s) location is acceptable.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        allowed_certificate_urls: Sequence[str] = (MICROSOFT_CERTIFICATE_URL_PREFIX,),
        trusted_roots: Sequence[x509.Certificate] | None = None,
        clock: Clock | None = None,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        failure_cache_seconds: float = DEFAULT_FAILURE_CACHE_SECONDS,
        max_downloads_per_minute: int = DEFAULT_MAX_DOWNLOADS_PER_MINUTE,
        dns_name: str = DISPATCH_DNS_NAME,
        organization: str = MICROSOFT_ORGANIZATION,
        fetch_intermediates: bool = True,
    ) -> None:
        if not allowed_certificate_urls:
            raise ValueError("allow at least one certificate URL prefix")
        self._http = http
        self._allowed = tuple(_parse_allowed(u) for u in allowed_certificate_urls)
        for allowed in self._allowed:
            if allowed.scheme == "http":
                log.warning(
                    "partnercenter.insecure_certificate_location",
                    location=f"http://{allowed.host}{allowed.path}",
                    note="plain-http certificate locations are for the sandbox only",
                )
        roots = list(trusted_roots) if trusted_roots is not None else list(certifi_roots())
        if not roots:
            raise ValueError("trusted_roots is empty: no certificate could ever be trusted")
        self._store = Store(roots)
        self._clock = clock or SystemClock()
        self._cache_seconds = cache_seconds
        self._dns_name = dns_name
        self._organization = organization
        self._fetch_intermediates = fetch_intermediates
        if max_downloads_per_minute < 1:
            raise ValueError("max_downloads_per_minute must be at least 1")
        self._failure_cache_seconds = failure_cache_seconds
        self._max_downloads = max_downloads_per_minute
        self._cache: dict[str, _CachedCertificate] = {}
        self._failures: dict[str, _CachedFailure] = {}
        self._in_flight: dict[str, asyncio.Future[rsa.RSAPublicKey]] = {}  # single flight
        self._recent_downloads: deque[float] = deque()
        self._intermediates: dict[str, x509.Certificate] = {}
        self.downloads = 0

    async def verify(self, raw_body: bytes, headers: Mapping[str, str]) -> VerifiedEvent:
        """Verify a callback and only then parse it.

        Args:
            raw_body: the request body exactly as received.
            headers: the request headers (any mapping; names are matched case-insensitively).

        Returns:
            The event.

        Raises:
            WebhookVerificationError: a subclass per failed check; `.status_hint` is the answer.
        """
        if len(raw_body) > MAX_BODY_BYTES:
            raise BodyTooLargeError(
                f"the callback body is {len(raw_body)} bytes; at most {MAX_BODY_BYTES} are accepted"
            )
        lower = {k.lower(): v for k, v in headers.items()}
        signature = self._signature(lower)
        url = lower.get("x-ms-certificate-url")
        if not url:
            raise MissingHeaderError(
                "the callback has no X-MS-Certificate-Url header", status_hint=400
            )
        algorithm = lower.get("x-ms-signature-algorithm")
        if not algorithm:
            raise MissingHeaderError(
                "the callback has no X-MS-Signature-Algorithm header", status_hint=400
            )
        if algorithm.strip().lower() != _ALGORITHM:
            raise UnsupportedAlgorithmError(
                f"signature algorithm {algorithm[:40]!r} is refused; only rsa-sha256 is accepted"
            )
        self.check_certificate_url(url)
        public_key = await self._public_key(url)
        try:
            public_key.verify(signature, raw_body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise InvalidSignatureError(
                "the signature does not match the body (altered in transit, or not from Partner Center)"
            ) from exc
        return _parse_event(raw_body)

    @staticmethod
    def _signature(lower: Mapping[str, str]) -> bytes:
        candidates = [v for v in (lower.get("authorization"), lower.get("x-ms-signature")) if v]
        if not candidates:
            raise MissingHeaderError(
                "the callback has no Authorization (or x-ms-signature) header with its signature",
                status_hint=401,
            )
        # A proxy may add its own Authorization; the signature is whichever says `Signature`.
        value = next(
            (v for v in candidates if v.strip().lower().startswith("signature ")), candidates[0]
        )
        scheme, _, encoded = value.strip().partition(" ")
        if scheme.lower() != "signature" or not encoded.strip():
            # Name a scheme word, never echo a value that might be someone's credential.
            shown = scheme if re.fullmatch(r"[A-Za-z-]{1,20}", scheme) else "something else"
            raise UnsupportedSignatureSchemeError(
                f"the signature header must read 'Signature <base64>', not {shown!r} ..."
            )
        try:
            return base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedSignatureError("the signature is not valid base64") from exc

    def check_certificate_url(self, url: str) -> None:
        """Refuse a certificate URL that is not under an allowed prefix.

        Raises:
            CertificateUrlRejectedError: why the URL is refused.
        """

        def refuse(why: str) -> CertificateUrlRejectedError:
            return CertificateUrlRejectedError(f"certificate URL {url[:200]!r} refused: {why}")

        if len(url) > 2048 or any(c.isspace() or ord(c) < 0x20 for c in url):
            raise refuse("it is too long or contains whitespace or control characters")
        if "\\" in url or "%" in url:
            raise refuse("backslashes and %-escapes are not allowed")
        if "?" in url or "#" in url:
            raise refuse("a query or fragment is not allowed")
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. an unclosed IPv6 literal: `http://[::1/cert/x`
            raise refuse("it is not a well-formed URL") from exc
        if "@" in parts.netloc:
            raise refuse("userinfo (user@host) is not allowed")
        try:
            port = parts.port
        except ValueError as exc:
            raise refuse("the port is not a number") from exc
        if _DOT_SEGMENT.search(parts.path):
            raise refuse("'.' and '..' path segments are not allowed")
        host = (parts.hostname or "").lower()
        for allowed in self._allowed:
            if (
                parts.scheme == allowed.scheme
                and host == allowed.host
                and port == allowed.port
                and parts.path.startswith(allowed.path)
                and len(parts.path) > len(allowed.path)
            ):
                return
        if parts.scheme != "https":
            raise refuse("only https is allowed")
        raise refuse(
            "it is not under an allowed location ("
            + ", ".join(f"{a.scheme}://{a.host}{a.path}" for a in self._allowed)
            + ")"
        )

    async def _public_key(self, url: str) -> rsa.RSAPublicKey:
        now = self._clock.monotonic()
        cached = self._cache.get(url)
        if cached is not None and now < cached.expires_at:
            return cached.public_key
        failed = self._failures.get(url)
        if failed is not None and now < failed.expires_at:
            raise failed.error.with_traceback(
                None
            )  # the same answer, without growing its traceback
        flight = self._in_flight.get(url)
        if flight is None:
            self._admit_download(now)
            # A task of its own: a caller that goes away does not cancel the others' download.
            flight = asyncio.ensure_future(self._download_once(url))
            self._in_flight[url] = flight
            flight.add_done_callback(functools.partial(self._landed, url))
        return await asyncio.shield(flight)

    def _landed(self, url: str, flight: asyncio.Future[rsa.RSAPublicKey]) -> None:
        self._in_flight.pop(url, None)
        if not flight.cancelled():
            flight.exception()  # retrieved here, so a download nobody awaits any more is quiet

    async def _download_once(self, url: str) -> rsa.RSAPublicKey:
        try:
            public_key = await self._download(url)
        except WebhookVerificationError as exc:
            expires_at = self._clock.monotonic() + self._failure_cache_seconds
            self._failures[url] = _CachedFailure(exc, expires_at)
            raise
        self._failures.pop(url, None)
        self._cache[url] = _CachedCertificate(
            public_key, self._clock.monotonic() + self._cache_seconds
        )
        return public_key

    def _admit_download(self, now: float) -> None:
        recent = self._recent_downloads
        while recent and recent[0] <= now - _MINUTE:
            recent.popleft()
        if len(recent) >= self._max_downloads:
            raise CertificateFetchError(
                f"more than {self._max_downloads} certificate URLs were downloaded in the last "
                "minute; this one is not (Partner Center retries the callback later)",
                status_hint=429,
            )
        recent.append(now)

    async def _download(self, url: str) -> rsa.RSAPublicKey:
        self.downloads += 1
        certificates = _load_certificates(await self._fetch(url, "certificate"))
        public_key = self._check_leaf(certificates[0])
        problem = self._chain_problem(certificates)
        if problem is not None and self._fetch_intermediates:
            more = await self._issuers(certificates[-1])
            if more:
                problem = self._chain_problem(certificates + more)
        if problem is not None:
            raise UntrustedCertificateError(
                f"the certificate does not chain to a trusted root for {self._dns_name} ({problem})"
            )
        log.info(
            "partnercenter.certificate_trusted",
            url=url,
            intermediates_fetched=len(self._intermediates),
        )
        return public_key

    async def _issuers(self, certificate: x509.Certificate) -> list[x509.Certificate]:
        """Intermediates named by the chain's Authority Information Access, as TLS clients fetch them."""
        found: list[x509.Certificate] = []
        current = certificate
        for _ in range(_MAX_INTERMEDIATES):
            urls = _ca_issuer_urls(current)
            if not urls or current.subject == current.issuer:
                break
            issuer = self._intermediates.get(urls[0])
            if issuer is None:
                issuer = _load_certificates(await self._fetch(urls[0], "issuing certificate"))[0]
                self._intermediates[urls[0]] = issuer
            found.append(issuer)
            current = issuer
        return found

    async def _fetch(self, url: str, what: str) -> bytes:
        if urlsplit(url).scheme not in ("http", "https"):
            raise CertificateFetchError(f"the {what} URL {url[:200]!r} is not http(s)")
        try:
            async with self._http.stream(
                "GET", url, follow_redirects=False, timeout=_CERTIFICATE_TIMEOUT
            ) as response:
                if 300 <= response.status_code < 400:
                    raise CertificateFetchError(
                        f"the {what} URL redirected ({response.status_code}); redirects are refused"
                    )
                if response.status_code != 200:
                    raise CertificateFetchError(
                        f"the {what} could not be downloaded ({response.status_code})",
                        status_hint=503 if response.status_code >= 500 else 401,
                    )
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) > MAX_CERTIFICATE_BYTES:
                        raise CertificateFetchError(
                            f"the {what} is larger than {MAX_CERTIFICATE_BYTES} bytes"
                        )
        except httpx.HTTPError as exc:
            raise CertificateFetchError(
                f"the {what} host could not be reached ({type(exc).__name__}); "
                "Partner Center will retry the callback",
                status_hint=503,
            ) from exc
        return bytes(data)

    def _check_leaf(self, leaf: x509.Certificate) -> rsa.RSAPublicKey:
        organizations = [
            str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        ]
        if organizations != [self._organization]:
            raise UntrustedCertificateError(
                f"the certificate's organisation is {organizations!r}, not {self._organization!r}"
            )
        key = leaf.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise UntrustedCertificateError("the certificate's key is not an RSA key")
        return key

    def _chain_problem(self, certificates: list[x509.Certificate]) -> str | None:
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(self._clock.now())
            .build_server_verifier(x509.DNSName(self._dns_name))
        )
        try:
            verifier.verify(certificates[0], certificates[1:])
        except VerificationError as exc:
            return str(exc)
        return None


@functools.cache
def certifi_roots() -> tuple[x509.Certificate, ...]:
    """The roots of certifi's bundle (Mozilla's), parsed once.

    A few old roots in the bundle have a non-positive serial number, which cryptography
    still parses but warns about; the warning is for that quirk of the bundle only, so it is
    silenced here instead of failing the parse.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return tuple(x509.load_pem_x509_certificates(certifi.contents().encode("ascii")))


def _ca_issuer_urls(certificate: x509.Certificate) -> list[str]:
    try:
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return []
    return [
        str(d.access_location.value)
        for d in access.value
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def _load_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            certificates = x509.load_pem_x509_certificates(data)
        else:
            try:
                certificates = [x509.load_der_x509_certificate(data)]
            except ValueError:
                certificates = pkcs7.load_der_pkcs7_certificates(data)  # .p7c issuer bundles
    except ValueError as exc:
        raise CertificateFetchError("the downloaded certificate is not DER, PEM or PKCS#7") from exc
    if not certificates:
        raise CertificateFetchError("the downloaded file holds no certificate")
    return certificates


# A callback is one flat object; a few levels leave room for a nested field Microsoft may add,
# and a bound keeps a deeply nested (signed) body from exhausting the parser's recursion.
MAX_JSON_DEPTH: Final = 16
# A string token runs to its closing quote, or to the end when unclosed, so the scan is linear.
_JSON_STRUCTURE = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets in strings skipped).

    It is counted without parsing, so that a body nested thousands deep can be refused before
    `json.loads` recurses into it. Malformed text gets some count; the parser refuses it anyway.
    """
    depth = deepest = 0
    for match in _JSON_STRUCTURE.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _parse_event(raw_body: bytes) -> VerifiedEvent:
    if json_depth(raw_body) > MAX_JSON_DEPTH:
        raise MalformedEventError(
            f"the signed callback body is nested more than {MAX_JSON_DEPTH} levels deep"
        )
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedEventError("the signed callback body is not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedEventError("the signed callback body is not a JSON object")
    fields = {str(k).lower(): v for k, v in body.items()}

    def text(name: str) -> str | None:
        value = fields.get(name)
        if not isinstance(value, str) or not value:
            return None
        if not _is_plain_text(value):
            raise MalformedEventError(
                f"the callback's {name} holds a control character or an unpaired surrogate"
            )
        return value

    event_name = text("eventname")
    if event_name is None:
        raise MalformedEventError("the callback has no EventName")
    resource_uri = text("resourceuri")
    resource_name = text("resourcename")
    referral_id = None
    if resource_uri and (resource_name or "").lower() == "referral":
        try:
            path = urlsplit(resource_uri).path
        except ValueError as exc:  # e.g. an unclosed IPv6 literal in the host
            raise MalformedEventError(
                "the callback's ResourceUri is not a well-formed URL"
            ) from exc
        segments = [s for s in path.split("/") if s]
        referral_id = segments[-1] if segments else None
    changed = text("resourcechangeutcdate")
    changed_at: datetime | None = None
    if changed:
        try:
            changed_at = datetime.fromisoformat(changed)
        except ValueError:
            changed_at = None
        if changed_at is not None and changed_at.tzinfo is None:
            changed_at = changed_at.replace(tzinfo=UTC)
    return VerifiedEvent(
        event_name=event_name,
        resource_uri=resource_uri,
        resource_name=resource_name,
        referral_id=referral_id,
        resource_change_utc_date=changed_at,
        audit_uri=text("audituri") or text("auditurl"),
    )


def _is_plain_text(value: str) -> bool:
    """Whether `value` is encodable as UTF-8 and free of control characters.

    JSON can spell an unpaired surrogate (a lone `ud800` escape) that no database, log file or HTTP
    header can hold; such a value is refused here, at the edge, so it never reaches the
    store's group commit or the metrics' labels.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value)
