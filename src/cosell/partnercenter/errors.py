"""Errors of the Partner Center side, sorted by what the caller must do.

Every failure of the Referrals API, the Webhooks API, the token endpoint or a webhook
callback's signature surfaces as one `PartnerCenterError`. Callers branch on the three
middle classes, never on HTTP status codes:

```
PartnerCenterError                      root; .status, .code, .target, .request_id
├── RetriableError                      try again later; .retry_after (seconds) or None
│   ├── ThrottledError                  429: Retry-After honoured
│   ├── ServiceUnavailableError         500/502/503/504
│   └── PartnerCenterTransportError     the request never got an answer (timeout, reset, DNS)
├── ConflictError                       412 preconditionFailed: re-read the referral, re-merge, retry
└── TerminalError                       retrying the same request cannot help
    ├── InvalidRequestError             400 invalidRequest: a rule refused the change; .target names the field
    ├── NotFoundError                   404 itemNotFound
    ├── AccessDeniedError               403 accessDenied: the user lacks a Referrals role
    ├── AuthenticationError             401 after a fresh token was also refused
    │   └── MfaRequiredError            401 code 900421: the token was issued without MFA
    ├── AuthConfigurationError          the token endpoint refused our credentials (invalid_grant, ...)
    │   └── SignInRefusedError          the sign-in is refused (expired, revoked, no MFA): calls stop,
    │                                   one probe a minute, until `cosell connect partner-center`
    ├── RegistrationExistsError         409 on webhook registration without overwrite (raised by
    │                                   the webhooks client; elsewhere a 409 is unexpected)
    ├── UnexpectedResponseError         any other status, or a body that is not what the API documents
    └── WebhookVerificationError        a callback that must be refused; .status_hint is the answer
        ├── BodyTooLargeError                       413
        ├── MissingHeaderError                      401 (Authorization) / 400 (the others)
        ├── UnsupportedSignatureSchemeError         401
        ├── UnsupportedAlgorithmError               400
        ├── MalformedSignatureError                 401
        ├── CertificateUrlRejectedError             401
        ├── CertificateFetchError                   401, or 503 when the host could not be reached
        ├── UntrustedCertificateError               401
        ├── InvalidSignatureError                   401
        └── MalformedEventError                     400 (the signature was valid)
```

`error_from_response` is the one place an HTTP error response becomes an error. It reads the
documented body `{"error": {"code", "message", "target", "innerError"}}` (spec §2.6), the
throttling body `{"statusCode", "message"}` (spec §2.7) or, failing both, a short excerpt
of the text, and honours `Retry-After` in both of its forms (delay-seconds and HTTP date).

Invariant: no message, repr or attribute of these errors contains a credential. Response
bodies of the APIs carry none, and the auth code builds its messages from error codes only.
"""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

# Partner Center's error code for an App+User token issued without MFA (spec §9).
MFA_REQUIRED_CODE = "900421"
_EXCERPT_CHARS = 300  # enough of an unexpected body to recognise it, short enough for a log line


class PartnerCenterError(Exception):
    """Root of every error of the Partner Center side.

    Attributes:
        message: what happened and what to do, for a human.
        status: the HTTP status, when there was a response.
        code: the API's error code (`invalidRequest`, `preconditionFailed`, ...), when given.
        target: the field or resource the API blamed, when given.
        request_id: the server's `request-id` / `MS-RequestId`, for a support ticket.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        target: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.target = target
        self.request_id = request_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, code={self.code!r})"
        )


class RetriableError(PartnerCenterError):
    """The same request may succeed later.

    Attributes:
        retry_after: seconds the server asked us to wait (`Retry-After`), or None.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ThrottledError(RetriableError):
    """429 Too Many Requests."""


class ServiceUnavailableError(RetriableError):
    """500, 502, 503 or 504: the service failed or is overloaded."""


class PartnerCenterTransportError(RetriableError):
    """The request got no HTTP answer (connection refused, reset, timeout)."""


class ConflictError(PartnerCenterError):
    """412: the referral changed since its eTag was read; re-read it and re-merge."""


class TerminalError(PartnerCenterError):
    """Sending the same request again cannot succeed; something must change first."""


class InvalidRequestError(TerminalError):
    """400: Partner Center refused the request; `target` names the offending field if known."""


class NotFoundError(TerminalError):
    """404: no such referral (or registration) visible to this user."""


class AccessDeniedError(TerminalError):
    """403: the signed-in user may not do this."""


class AuthenticationError(TerminalError):
    """401 even with a freshly acquired token."""


class MfaRequiredError(AuthenticationError):
    """401 with code 900421: App+User calls need a token issued with MFA (spec §9).

    A new token from the same refresh token carries no MFA either, so the client does not
    retry: an admin must sign in again with MFA (`cosell connect partner-center`).
    """


class AuthConfigurationError(TerminalError):
    """The token endpoint refused the configured credentials."""


class SignInRefusedError(AuthConfigurationError):
    """Partner Center refuses the sign-in itself: an expired or revoked refresh token, no MFA.

    Raised for every call while the refusal lasts, mostly without calling anyone (the token
    provider's `RefusalGate` lets one probe through a minute, or at once after `cosell connect
    partner-center` stored a new token). The message is the one a seller sees on each affected
    record: "Partner Center sign-in expired: run cosell connect partner-center".
    """


class RegistrationExistsError(TerminalError):
    """409: a webhook registration exists already and overwrite was not asked for."""


class UnexpectedResponseError(TerminalError):
    """A status or body that the API does not document."""


class WebhookVerificationError(TerminalError):
    """A webhook callback failed verification and must be refused without being parsed.

    Attributes:
        status_hint: the HTTP status to answer the callback with.
    """

    status_hint = 401

    def __init__(self, message: str, *, status_hint: int | None = None) -> None:
        super().__init__(message)
        if status_hint is not None:
            self.status_hint = status_hint


class BodyTooLargeError(WebhookVerificationError):
    """The callback body is larger than the limit."""

    status_hint = 413


class MissingHeaderError(WebhookVerificationError):
    """A header the signature scheme needs is absent."""


class UnsupportedSignatureSchemeError(WebhookVerificationError):
    """The signature header does not start with `Signature `."""


class UnsupportedAlgorithmError(WebhookVerificationError):
    """`X-MS-Signature-Algorithm` is not `rsa-sha256`."""

    status_hint = 400


class MalformedSignatureError(WebhookVerificationError):
    """The signature is not strict base64."""


class CertificateUrlRejectedError(WebhookVerificationError):
    """`X-MS-Certificate-Url` is not on the allow-list."""


class CertificateFetchError(WebhookVerificationError):
    """The certificate could not be downloaded (redirect, error status, too large, unparseable)."""


class UntrustedCertificateError(WebhookVerificationError):
    """The certificate does not chain to a trusted root or is not Microsoft's."""


class InvalidSignatureError(WebhookVerificationError):
    """The signature does not match the body."""


class MalformedEventError(WebhookVerificationError):
    """The signed body is not a documented event."""

    status_hint = 400


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Turn a `Retry-After` value into seconds to wait.

    Args:
        value: the header, either delay-seconds (`"30"`, `"1.5"`) or an HTTP date.
        now: the reference time for an HTTP date; without it a date cannot be used.

    Returns:
        Seconds (never negative), or None when absent or unusable.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unusable
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


_STATUS_ADVICE = {
    400: "Partner Center refused the request; fix the data named in the message and try again",
    401: "the access token was refused: check that the credentials are for this tenant and that the token is for the right API (Referrals API tokens are App+User only)",
    403: "access denied: writing needs a user with the Referrals admin role, a Referrals user only reaches referrals whose team includes them, and another organisation's referral (Microsoft's side of an engagement) is read-only",
    404: "not found: the referral does not exist or is not visible to this user",
    412: "the referral changed since it was read (eTag mismatch): re-read it and apply the change again",
    429: "Partner Center is throttling this tenant: wait for Retry-After, then retry with fewer parallel calls",
}


def error_from_response(
    response: httpx.Response, *, now: datetime | None = None
) -> PartnerCenterError:
    """Turn an error response of a Partner Center API into the matching error.

    Args:
        response: a response whose status is not a success.
        now: the caller's current time, to resolve a `Retry-After` HTTP date when the response
            carries no `Date` header.

    Returns:
        The error to raise; the caller chains it with `raise ... from`.
    """
    status = response.status_code
    code, message, target = _read_error_body(response)
    request_id = response.headers.get("request-id") or response.headers.get("ms-requestid")
    reference = _response_date(response) or now
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=reference)
    advice = _STATUS_ADVICE.get(status)
    parts = [f"Partner Center answered {status}"]
    if code:
        parts.append(f"({code})")
    text = " ".join(parts)
    if message:
        text += f": {message}"
    if target:
        text += f" [target: {target}]"
    if advice:
        text += f" — {advice}"
    fields: dict[str, Any] = {
        "status": status,
        "code": code,
        "target": target,
        "request_id": request_id,
    }
    if status == 429:
        return ThrottledError(text, retry_after=retry_after, **fields)
    if status in (500, 502, 503, 504):
        return ServiceUnavailableError(text, retry_after=retry_after, **fields)
    if status == 412 or code == "preconditionFailed":
        return ConflictError(text, **fields)
    if status == 400 or status == 422:
        return InvalidRequestError(text, **fields)
    if status == 401 and (code == MFA_REQUIRED_CODE or MFA_REQUIRED_CODE in (message or "")):
        return MfaRequiredError(
            f"Partner Center answered 401 ({MFA_REQUIRED_CODE}): the sign-in behind this "
            "token was made without multi-factor authentication, which Partner Center "
            "requires for App+User calls — run `cosell connect partner-center` and sign in "
            "with MFA",
            **fields,
        )
    if status == 401:
        return AuthenticationError(text, **fields)
    if status == 403:
        return AccessDeniedError(text, **fields)
    if status in (404, 410):
        return NotFoundError(text, **fields)
    return UnexpectedResponseError(text, **fields)


def _read_error_body(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    try:
        body = json.loads(response.content) if response.content else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = _str_or_none(error.get("message"))
            inner = error.get("innerError")
            if isinstance(inner, dict):
                inner_message = _str_or_none(inner.get("message"))
                if inner_message and inner_message != message:
                    message = f"{message} ({inner_message})" if message else inner_message
            return _str_or_none(error.get("code")), message, _str_or_none(error.get("target"))
        if "message" in body:
            return None, _str_or_none(body.get("message")), None
    excerpt = response.text[:_EXCERPT_CHARS].strip() if response.content else ""
    return None, excerpt or None, None


def _str_or_none(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _response_date(response: httpx.Response) -> datetime | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None
