"""The SOAP partner API's `convertLead()` call (spec §3.4: Salesforce has no REST resource for it).

A client that is logged in (any flow: the session id is the REST access token) posts an
envelope to `/services/Soap/u/{version}` (or the login's `serverUrl`, which adds the org id)
with `Header/SessionHeader/sessionId` and `Body/convertLead/leadConverts` (1 to 100 of them),
each holding the WSDL's `LeadConvert` members:

    accountId, contactId, convertedStatus, doNotCreateOpportunity, leadId, opportunityId,
    opportunityName, overwriteLeadSource, ownerId, sendNotificationEmail

The answer is a `convertLeadResponse` with one `result` (`LeadConvertResult`) per leadConvert,
in request order, its children in the WSDL's order: `accountId, contactId, errors*, leadId,
opportunityId, success`. Each conversion succeeds or fails alone, as in Salesforce (a failed one
leaves no trace): an unknown or malformed id is `INVALID_CROSS_REFERENCE_KEY`, a lead already
converted `CANNOT_UPDATE_CONVERTED_LEAD`, a `convertedStatus` that is not a converted lead
status `INVALID_STATUS`, a missing one `REQUIRED_FIELD_MISSING`, a contact or opportunity that
is not the account's `INVALID_CROSS_REFERENCE_KEY`. A missing or expired session is a
`sf:INVALID_SESSION_ID` fault (HTTP 500), as are malformed envelopes (`soapenv:Client`).

Conversion (`convert`): the account is the one given, or a new one from the lead (Company, the
address as billing address, Phone, Website, Industry); the contact the one given, or a new one
from the lead (name, title, email, phones, the address as mailing address); the opportunity the
one given, or (unless `doNotCreateOpportunity`) a new one named `opportunityName` (default: the
company) in the org's first open stage, closing on the last day of the current quarter, with the
contact as its primary contact role. Records given keep their values (only the lead's link to
them is set). The lead then gets `IsConverted`, `ConvertedDate`, `ConvertedAccountId`,
`ConvertedContactId`, `ConvertedOpportunityId` and the converted `Status`, and is read-only from
then on (`RecordStore.update` answers `CANNOT_UPDATE_CONVERTED_LEAD`). Custom lead fields are not
copied (an org's lead field mapping is not emulated): the caller writes what it needs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from xml.sax.saxutils import escape

from cosell_sandbox.salesforce.errors import SalesforceSandboxError
from cosell_sandbox.salesforce.soap_login import PARTNER, SOAP_ENV, SoapFaultError
from cosell_sandbox.salesforce.standard_objects import CONVERTED_LEAD_STATUSES
from cosell_sandbox.salesforce.store import RecordStore, Transaction

MAX_CONVERTS = 100  # leadConverts per call (the partner API's limit)
LEAD_PREFIX = "00Q"

_FIELDS = (
    "accountId",
    "contactId",
    "convertedStatus",
    "doNotCreateOpportunity",
    "leadId",
    "opportunityId",
    "opportunityName",
    "overwriteLeadSource",
    "ownerId",
    "sendNotificationEmail",
)
_ADDRESS = ("Street", "City", "State", "PostalCode", "Country")


@dataclass(frozen=True)
class LeadConvert:
    """One `LeadConvert` of the request (empty elements read as None)."""

    lead_id: str | None
    converted_status: str | None
    account_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    opportunity_name: str | None = None
    owner_id: str | None = None
    do_not_create_opportunity: bool = False


@dataclass(frozen=True)
class ConvertError:
    """Why one conversion failed (`Error` of the WSDL)."""

    status_code: str
    message: str
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeadConvertResult:
    """One `LeadConvertResult`: the ids on success, the errors otherwise."""

    lead_id: str | None
    account_id: str | None = None
    contact_id: str | None = None
    opportunity_id: str | None = None
    errors: tuple[ConvertError, ...] = ()

    @property
    def success(self) -> bool:
        """Whether the lead was converted."""
        return not self.errors


class ConvertFailedError(Exception):
    """A conversion that cannot be made; nothing of it was written."""

    def __init__(self, status_code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.error = ConvertError(status_code, message, tuple(fields))


def session_id(header: ET.Element | None) -> str | None:
    """The `SessionHeader/sessionId` of a request, or None."""
    if header is None:
        return None
    text = header.findtext(f"{{{PARTNER}}}SessionHeader/{{{PARTNER}}}sessionId")
    return text.strip() if text and text.strip() else None


def parse_converts(operation: ET.Element) -> list[LeadConvert]:
    """The `leadConverts` of a parsed `convertLead` element.

    Raises:
        SoapFaultError: the operation is not convertLead, it has no leadConverts or more
            than `MAX_CONVERTS`, or an unknown element.
    """
    if operation.tag != f"{{{PARTNER}}}convertLead":
        raise SoapFaultError(
            f"Operation {operation.tag.rsplit('}', 1)[-1]} is not available here: the "
            "sandbox's SOAP endpoint implements login() and convertLead() of the partner API "
            f"({PARTNER})"
        )
    items = operation.findall(f"{{{PARTNER}}}leadConverts")
    if not items:
        raise SoapFaultError("convertLead() needs at least one leadConverts element")
    if len(items) > MAX_CONVERTS:
        raise SoapFaultError(
            f"convertLead() takes at most {MAX_CONVERTS} leadConverts, got {len(items)}",
            exception_code="LIMIT_EXCEEDED",
        )
    return [_one(item) for item in items]


def _one(item: ET.Element) -> LeadConvert:
    values: dict[str, str | None] = {}
    for child in item:
        name = child.tag.rsplit("}", 1)[-1]
        if name not in _FIELDS:
            raise SoapFaultError(
                f"Unexpected element {{{PARTNER}}}{name} in leadConverts; expected one of "
                f"{', '.join(_FIELDS)}"
            )
        text = (child.text or "").strip()
        values[name] = text or None
    return LeadConvert(
        lead_id=values.get("leadId"),
        converted_status=values.get("convertedStatus"),
        account_id=values.get("accountId"),
        contact_id=values.get("contactId"),
        opportunity_id=values.get("opportunityId"),
        opportunity_name=values.get("opportunityName"),
        owner_id=values.get("ownerId"),
        do_not_create_opportunity=(values.get("doNotCreateOpportunity") or "").lower() == "true",
    )


def convert(
    store: RecordStore,
    tx: Transaction,
    request: LeadConvert,
    *,
    today: date,
    first_open_stage: str,
) -> LeadConvertResult:
    """Convert one lead inside `tx`; a failure rolls back only this conversion's writes.

    Args:
        store: the org's records.
        tx: the call's transaction.
        request: what to convert, and into which records.
        today: the conversion date (the sandbox clock's day).
        first_open_stage: the stage a new opportunity starts in.

    Returns:
        The result: the ids, or the error.
    """
    mark = store.savepoint(tx)
    try:
        return _convert(store, tx, request, today=today, first_open_stage=first_open_stage)
    except ConvertFailedError as failed:
        store.rollback_to(tx, mark)
        return LeadConvertResult(request.lead_id, errors=(failed.error,))
    except SalesforceSandboxError as refused:
        store.rollback_to(tx, mark)
        fields = tuple(refused.fields or ())
        return LeadConvertResult(
            request.lead_id, errors=(ConvertError(refused.error_code, refused.message, fields),)
        )


def _record(
    store: RecordStore, object_name: str, record_id: str | None, what: str
) -> dict[str, Any] | None:
    """The live record `record_id` of `object_name` (None when no id was given)."""
    if record_id is None:
        return None
    obj = store.sobject(object_name)
    try:
        return store.get(obj, store.resolve_id(obj, record_id))
    except SalesforceSandboxError as exc:
        raise ConvertFailedError(
            "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {what}", [what]
        ) from exc


def _convert(
    store: RecordStore,
    tx: Transaction,
    request: LeadConvert,
    *,
    today: date,
    first_open_stage: str,
) -> LeadConvertResult:
    if request.lead_id is None:
        raise ConvertFailedError("REQUIRED_FIELD_MISSING", "Required field is missing: leadId")
    if request.converted_status is None:
        raise ConvertFailedError(
            "REQUIRED_FIELD_MISSING", "Required field is missing: convertedStatus"
        )
    lead = _record(store, "Lead", request.lead_id, "leadId")
    assert lead is not None
    if lead.get("IsConverted"):
        raise ConvertFailedError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
    if request.converted_status not in CONVERTED_LEAD_STATUSES:
        raise ConvertFailedError(
            "INVALID_STATUS",
            f"invalid convertedStatus: {request.converted_status}; use a lead status that "
            f"marks conversion ({', '.join(CONVERTED_LEAD_STATUSES)})",
            ["convertedStatus"],
        )
    if request.contact_id is not None and request.account_id is None:
        raise ConvertFailedError(
            "REQUIRED_FIELD_MISSING",
            "accountId must be specified if contactId is not null",
            ["accountId"],
        )
    if request.opportunity_id is not None and request.do_not_create_opportunity:
        raise ConvertFailedError(
            "INVALID_FIELD",
            "opportunityId cannot be set when doNotCreateOpportunity is true",
            ["opportunityId"],
        )
    account = _record(store, "Account", request.account_id, "accountId")
    contact = _record(store, "Contact", request.contact_id, "contactId")
    opportunity = _record(store, "Opportunity", request.opportunity_id, "opportunityId")
    owner = request.owner_id or lead.get("OwnerId")
    create = _creator(store, tx)
    account_id = str(account["Id"]) if account else create("Account", _account_of(lead, owner))
    if contact is not None and contact.get("AccountId") != account_id:
        raise ConvertFailedError(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id: contactId is not a contact of accountId",
            ["contactId"],
        )
    if opportunity is not None and opportunity.get("AccountId") != account_id:
        raise ConvertFailedError(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id: opportunityId is not an opportunity of accountId",
            ["opportunityId"],
        )
    contact_id = (
        str(contact["Id"]) if contact else create("Contact", _contact_of(lead, account_id, owner))
    )
    opportunity_id: str | None = str(opportunity["Id"]) if opportunity else None
    if opportunity is None and not request.do_not_create_opportunity:
        name = request.opportunity_name or lead.get("Company") or lead.get("Name")
        body = {
            "Name": name,
            "AccountId": account_id,
            "StageName": first_open_stage,
            "CloseDate": _end_of_quarter(today).isoformat(),
            "LeadSource": lead.get("LeadSource"),
            "OwnerId": owner,
        }
        opportunity_id = create("Opportunity", body)
        create(
            "OpportunityContactRole",
            {"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": True},
        )
    store.set_read_only_fields(
        tx,
        "Lead",
        str(lead["Id"]),
        {
            "IsConverted": True,
            "ConvertedDate": today.isoformat(),
            "ConvertedAccountId": account_id,
            "ConvertedContactId": contact_id,
            "ConvertedOpportunityId": opportunity_id,
            "Status": request.converted_status,
        },
    )
    return LeadConvertResult(
        str(lead["Id"]),
        account_id=account_id,
        contact_id=contact_id,
        opportunity_id=opportunity_id,
    )


def _creator(store: RecordStore, tx: Transaction) -> Callable[[str, dict[str, Any]], str]:
    def create(object_name: str, body: dict[str, Any]) -> str:
        values = {k: v for k, v in body.items() if v is not None}
        return str(store.create(tx, store.sobject(object_name), values))

    return create


def _account_of(lead: dict[str, Any], owner: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Name": lead.get("Company"),
        "Phone": lead.get("Phone"),
        "Website": lead.get("Website"),
        "Industry": lead.get("Industry"),
        "OwnerId": owner,
    }
    body.update({f"Billing{part}": lead.get(part) for part in _ADDRESS})
    return body


def _contact_of(lead: dict[str, Any], account_id: str, owner: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "AccountId": account_id,
        "FirstName": lead.get("FirstName"),
        "LastName": lead.get("LastName"),
        "Title": lead.get("Title"),
        "Email": lead.get("Email"),
        "Phone": lead.get("Phone"),
        "MobilePhone": lead.get("MobilePhone"),
        "LeadSource": lead.get("LeadSource"),
        "OwnerId": owner,
    }
    body.update({f"Mailing{part}": lead.get(part) for part in _ADDRESS})
    return body


def _end_of_quarter(day: date) -> date:
    last_month = ((day.month - 1) // 3 + 1) * 3
    if last_month == 12:
        return date(day.year, 12, 31)
    return date(day.year, last_month + 1, 1) - timedelta(days=1)


def convert_response(results: Sequence[LeadConvertResult]) -> bytes:
    """The `convertLeadResponse` envelope, one `result` per conversion in request order."""
    body = "".join(_result(result) for result in results)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns="{PARTNER}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><convertLeadResponse>{body}</convertLeadResponse>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


def _id(name: str, value: str | None) -> str:
    if value is None:
        return f'<{name} xsi:nil="true"/>'
    return f"<{name}>{escape(value)}</{name}>"


def _result(result: LeadConvertResult) -> str:
    errors = "".join(
        "<errors>"
        + "".join(f"<fields>{escape(f)}</fields>" for f in error.fields)
        + f"<message>{escape(error.message)}</message>"
        + f"<statusCode>{escape(error.status_code)}</statusCode></errors>"
        for error in result.errors
    )
    return (
        "<result>"
        + _id("accountId", result.account_id)
        + _id("contactId", result.contact_id)
        + errors
        + _id("leadId", result.lead_id)
        + _id("opportunityId", result.opportunity_id)
        + f"<success>{'true' if result.success else 'false'}</success>"
        + "</result>"
    )
