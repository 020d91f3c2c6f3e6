"""The SOAP partner API's `convertLead()`: the envelope cosell sends and how the answer reads.

Salesforce has no REST resource for lead conversion (spec §3.4), so `SalesforceClient.
convert_leads` posts a partner API envelope to `/services/Soap/u/{version}` on the instance,
with the REST access token as `SessionHeader/sessionId` (any OAuth session works for SOAP) and
`CallOptions/client` (so change events name cosell, as `Sforce-Call-Options` does for REST):

    <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
                      xmlns:urn="urn:partner.soap.sforce.com">
      <soapenv:Header>
        <urn:SessionHeader><urn:sessionId>00D...!...</urn:sessionId></urn:SessionHeader>
        <urn:CallOptions><urn:client>cosell</urn:client></urn:CallOptions>
      </soapenv:Header>
      <soapenv:Body><urn:convertLead>
        <urn:leadConverts>
          <urn:accountId>001...</urn:accountId>            (optional: an existing account)
          <urn:contactId>003...</urn:contactId>            (optional: a contact of that account)
          <urn:convertedStatus>Closed - Converted</urn:convertedStatus>
          <urn:doNotCreateOpportunity>false</urn:doNotCreateOpportunity>
          <urn:leadId>00Q...</urn:leadId>
          <urn:opportunityId>006...</urn:opportunityId>    (optional: an existing opportunity)
          <urn:opportunityName>Contoso</urn:opportunityName>
          <urn:overwriteLeadSource>false</urn:overwriteLeadSource>
          <urn:sendNotificationEmail>false</urn:sendNotificationEmail>
        </urn:leadConverts>
      </urn:convertLead></soapenv:Body>
    </soapenv:Envelope>

The answer holds one `result` (`LeadConvertResult`: accountId, contactId, errors*, leadId,
opportunityId, success) per leadConverts, in order; a failed conversion's `errors` carry a
`statusCode` and `message` read like a collections item's (`errors.error_from_item`). A call
that fails as a whole is an HTTP 500 `soapenv:Fault` whose `sf:` code maps to the same error
tree as REST errors (`INVALID_SESSION_ID` -> `SessionExpiredError`, ...).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from cosell.salesforce.errors import (
    SalesforceError,
    UnexpectedResponseError,
    classify,
    error_from_item,
)
from cosell.salesforce.values import SalesforceId

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER = "urn:partner.soap.sforce.com"
CONTENT_TYPE = "text/xml; charset=UTF-8"
MAX_CONVERTS = 100  # leadConverts per convertLead() call

_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(frozen=True)
class LeadConvert:
    """One lead to convert (the partner API's `LeadConvert`).

    Attributes:
        lead_id: the lead.
        converted_status: a lead status that marks conversion (e.g. "Closed - Converted").
        account_id: an existing account to convert into (None: Salesforce creates one).
        contact_id: an existing contact of that account (None: Salesforce creates one).
        opportunity_id: an existing opportunity of that account to attach (None: one is
            created unless `do_not_create_opportunity`).
        opportunity_name: the name of a created opportunity (None: the lead's company).
        do_not_create_opportunity: convert into an account and contact only.
    """

    lead_id: str
    converted_status: str
    account_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    opportunity_name: str | None = None
    do_not_create_opportunity: bool = False


@dataclass(frozen=True)
class LeadConvertResult:
    """The outcome of one conversion, in request order.

    Attributes:
        lead_id: the lead converted (None when Salesforce did not name it).
        success: whether the lead was converted.
        account_id: the account it was converted into.
        contact_id: the contact.
        opportunity_id: the opportunity (None when none was created or given).
        errors: why not, when `success` is false.
    """

    lead_id: SalesforceId | None
    success: bool
    account_id: SalesforceId | None = None
    contact_id: SalesforceId | None = None
    opportunity_id: SalesforceId | None = None
    errors: tuple[SalesforceError, ...] = ()


def _element(name: str, value: str | bool | None) -> str:
    if value is None:
        return ""
    text = ("true" if value else "false") if isinstance(value, bool) else escape(value)
    return f"<urn:{name}>{text}</urn:{name}>"


def convert_lead_envelope(session_id: str, converts: Sequence[LeadConvert], client: str) -> bytes:
    """The `convertLead()` request envelope.

    Args:
        session_id: the access token.
        converts: 1 to `MAX_CONVERTS` conversions.
        client: the `CallOptions` client name.

    Returns:
        The UTF-8 envelope.
    """
    items = "".join(
        "<urn:leadConverts>"
        + _element("accountId", c.account_id)
        + _element("contactId", c.contact_id)
        + _element("convertedStatus", c.converted_status)
        + _element("doNotCreateOpportunity", c.do_not_create_opportunity)
        + _element("leadId", c.lead_id)
        + _element("opportunityId", c.opportunity_id)
        + _element("opportunityName", c.opportunity_name)
        + _element("overwriteLeadSource", False)
        + _element("sendNotificationEmail", False)
        + "</urn:leadConverts>"
        for c in converts
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:urn="{PARTNER}">'
        "<soapenv:Header>"
        f"<urn:SessionHeader><urn:sessionId>{escape(session_id)}</urn:sessionId>"
        "</urn:SessionHeader>"
        f"<urn:CallOptions><urn:client>{escape(client)}</urn:client></urn:CallOptions>"
        "</soapenv:Header>"
        f"<soapenv:Body><urn:convertLead>{items}</urn:convertLead></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def _parse(content: bytes, what: str) -> ET.Element:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnexpectedResponseError(f"{what} is not UTF-8") from exc
    if _DECLARATION.search(text):
        raise UnexpectedResponseError(f"{what} declares a DOCTYPE; refusing to parse it")
    try:
        return ET.fromstring(text)  # noqa: S314 - declarations were refused above
    except ET.ParseError as exc:
        raise UnexpectedResponseError(f"{what} is not well-formed XML: {exc}") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            text = (child.text or "").strip()
            return text or None
    return None


def parse_convert_response(content: bytes, expected: int) -> list[LeadConvertResult]:
    """The results of a `convertLeadResponse`, in request order.

    Args:
        content: the response body (HTTP 200).
        expected: how many leadConverts were sent.

    Returns:
        One result per conversion.

    Raises:
        UnexpectedResponseError: the body is not a convertLeadResponse with `expected` results.
    """
    root = _parse(content, "the convertLead() response")
    results = [el for el in root.iter() if _local(el.tag) == "result"]
    if len(results) != expected:
        raise UnexpectedResponseError(
            f"convertLead() answered {len(results)} results for {expected} leads"
        )
    parsed = []
    for result in results:
        errors = tuple(
            error_from_item(
                {
                    "statusCode": _child_text(item, "statusCode"),
                    "message": _child_text(item, "message"),
                    "fields": [(f.text or "").strip() for f in item if _local(f.tag) == "fields"],
                }
            )
            for item in result
            if _local(item.tag) == "errors"
        )
        parsed.append(
            LeadConvertResult(
                lead_id=_id(_child_text(result, "leadId")),
                success=_child_text(result, "success") == "true",
                account_id=_id(_child_text(result, "accountId")),
                contact_id=_id(_child_text(result, "contactId")),
                opportunity_id=_id(_child_text(result, "opportunityId")),
                errors=errors,
            )
        )
    return parsed


def _id(value: str | None) -> SalesforceId | None:
    return SalesforceId(value) if value else None


def fault_error(status: int, content: bytes) -> SalesforceError:
    """The error a SOAP fault (or another failed answer) means.

    Args:
        status: the HTTP status (500 for faults).
        content: the body.

    Returns:
        The error of the REST error tree for the fault's `sf:` code (not raised).
    """
    try:
        root = _parse(content, "the SOAP fault")
    except UnexpectedResponseError:
        return classify(status=status, error_code=None, message=f"HTTP {status} without a fault")
    fault = next((el for el in root.iter() if _local(el.tag) == "Fault"), None)
    if fault is None:
        return classify(status=status, error_code=None, message=f"HTTP {status} without a fault")
    code = _child_text(fault, "faultcode") or ""
    message = _child_text(fault, "faultstring") or "no message"
    exception_code = code.partition(":")[2] if code.startswith("sf:") else None
    if exception_code is None:  # soapenv:Client: the envelope itself was refused
        return classify(status=400, error_code="INVALID_REQUEST", message=message)
    return classify(status=None, error_code=exception_code, message=message)
