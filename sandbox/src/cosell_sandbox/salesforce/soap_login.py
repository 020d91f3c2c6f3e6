"""The SOAP partner API's `login()` call, as simple-salesforce sends and reads it (spec §5.2).

`login` is emulated here (and `convertLead`, after login, in `soap_convert`): a client posts an envelope to `/services/Soap/u/{version}` holding
`Body/login/username` and `Body/login/password` (the password with the security token appended,
XML-escaped) in the `urn:partner.soap.sforce.com` namespace, under whatever prefixes it likes
(simple-salesforce uses `env`/`n1` or `soapenv`/`urn`). The answer is a `loginResponse` whose
`result` children keep Salesforce's WSDL order - `metadataServerUrl, passwordExpired, sandbox,
serverUrl, sessionId, userId, userInfo` - because some clients read them by position; failures
are HTTP 500 `soapenv:Fault`s with `sf:`-prefixed codes, which simple-salesforce finds by that
literal prefix.

Requests are decoded as UTF-8 (the only encoding the API takes) and parsed as text, so a
declared encoding can neither hide a declaration from the check nor name a codec that does not
exist; any DOCTYPE or entity declaration is rejected before the standard library's XML parser
sees the text, so no entity expansion or external entity can ever be reached.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
FAULT_NS = "urn:fault.partner.soap.sforce.com"
XML_CONTENT_TYPE = "text/xml;charset=UTF-8"
INVALID_LOGIN_MESSAGE = "Invalid username, password, security token; or user locked out."

# A DOCTYPE (and with it any entity declaration) is refused before parsing: SOAP forbids it.
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class LoginRequest:
    """The credentials of one `login()` call."""

    username: str
    password: str  # password and security token, concatenated, unescaped


@dataclass(frozen=True)
class LoginResult:
    """What a successful `login()` returns; rendered by `login_response`."""

    base_url: str
    version: str
    org_id: str
    user_id: str
    username: str
    session_id: str
    session_seconds_valid: int


class SoapFaultError(Exception):
    """A SOAP fault to answer with (HTTP 500).

    `exception_code` set means a Salesforce API fault (`sf:CODE` with a `detail` naming it);
    unset means a malformed request (`soapenv:Client`, no detail), as Salesforce answers those.
    """

    def __init__(self, message: str, *, exception_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exception_code = exception_code

    def xml(self) -> bytes:
        """The fault envelope."""
        if self.exception_code is None:
            faultcode = "soapenv:Client"
            faultstring = self.message
            detail = ""
        else:
            faultcode = f"sf:{self.exception_code}"
            faultstring = f"{self.exception_code}: {self.message}"
            fault_type = (
                "LoginFault" if self.exception_code == "INVALID_LOGIN" else "UnexpectedErrorFault"
            )
            detail = (
                f'<detail><sf:{fault_type} xsi:type="sf:{fault_type}">'
                f"<sf:exceptionCode>{self.exception_code}</sf:exceptionCode>"
                f"<sf:exceptionMessage>{escape(self.message)}</sf:exceptionMessage>"
                f"</sf:{fault_type}></detail>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:sf="{FAULT_NS}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><soapenv:Fault>"
            f"<faultcode>{faultcode}</faultcode><faultstring>{escape(faultstring)}</faultstring>"
            f"{detail}</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ).encode()


def invalid_login() -> SoapFaultError:
    """The fault for a wrong username, password or security token."""
    return SoapFaultError(INVALID_LOGIN_MESSAGE, exception_code="INVALID_LOGIN")


def parse_envelope(body: bytes) -> tuple[ET.Element | None, ET.Element]:
    """Parse a SOAP 1.1 request: its Header (if any) and the operation element in its Body.

    Raises:
        SoapFaultError: the body is not UTF-8 XML, declares a DOCTYPE or entities, is not a
            SOAP envelope, or has no operation in its Body.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SoapFaultError(f"The request is not UTF-8: {exc}") from exc
    if _DECLARATION.search(text):
        raise SoapFaultError("DOCTYPE and entity declarations are not allowed in a SOAP request")
    try:
        root = ET.fromstring(text)  # noqa: S314 - declarations were refused above
    except ET.ParseError as exc:
        raise SoapFaultError(f"The request is not well-formed XML: {exc}") from exc
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise SoapFaultError(f"Expected a SOAP 1.1 Envelope in {SOAP_ENV}, got {_local(root.tag)}")
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    operation = None if soap_body is None else next(iter(soap_body), None)
    if operation is None:
        raise SoapFaultError("The SOAP envelope has no Body with an operation in it")
    return root.find(f"{{{SOAP_ENV}}}Header"), operation


def operation_name(operation: ET.Element) -> str:
    """The partner API operation an element calls (`login`, `convertLead`), or its local name."""
    return _local(operation.tag)


def parse_login_request(body: bytes) -> LoginRequest:
    """Read the username and password out of a `login()` envelope.

    Raises:
        SoapFaultError: the body is not UTF-8 XML, declares a DOCTYPE or entities, is not a
            SOAP envelope, or calls an operation other than `login`.
    """
    _, operation = parse_envelope(body)
    return login_request(operation)


def login_request(operation: ET.Element) -> LoginRequest:
    """The credentials of a parsed `login` operation element.

    Raises:
        SoapFaultError: the element is not `login`, or lacks the username or password.
    """
    if operation.tag != f"{{{PARTNER}}}login":
        raise SoapFaultError(
            f"Operation {_local(operation.tag)} is not available here: the sandbox's SOAP "
            f"endpoint implements login() and convertLead() of the partner API ({PARTNER})"
        )
    username = operation.findtext(f"{{{PARTNER}}}username")
    password = operation.findtext(f"{{{PARTNER}}}password")
    if username is None or password is None:
        raise SoapFaultError("login() needs both a username and a password element")
    return LoginRequest(username=username.strip(), password=password)


def login_response(result: LoginResult) -> bytes:
    """The `loginResponse` envelope, children in the WSDL's order."""
    org15 = result.org_id[:15]
    server_url = f"{result.base_url}/services/Soap/u/{result.version}/{org15}"
    metadata_url = f"{result.base_url}/services/Soap/m/{result.version}/{org15}"
    user_info = "".join(
        f"<{name}>{escape(value)}</{name}>"
        for name, value in (
            ("accessibilityMode", "false"),
            ("currencySymbol", "$"),
            ("orgDefaultCurrencyIsoCode", "USD"),
            ("orgDisallowHtmlAttachments", "false"),
            ("orgHasPersonAccounts", "false"),
            ("organizationId", result.org_id),
            ("organizationName", "cosell sandbox"),
            ("sessionSecondsValid", str(result.session_seconds_valid)),
            ("userEmail", result.username),
            ("userFullName", "Integration User"),
            ("userId", result.user_id),
            ("userLanguage", "en_US"),
            ("userLocale", "en_US"),
            ("userName", result.username),
            ("userTimeZone", "GMT"),
            ("userType", "Standard"),
        )
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns="{PARTNER}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{escape(metadata_url)}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired>"
        "<sandbox>false</sandbox>"
        f"<serverUrl>{escape(server_url)}</serverUrl>"
        f"<sessionId>{escape(result.session_id)}</sessionId>"
        f"<userId>{escape(result.user_id)}</userId>"
        f"<userInfo>{user_info}</userInfo>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
