"""The Salesforce sandbox's SOAP `convertLead()`: the envelope, the result, the faults, the rules."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest
from sf_sandbox_helpers import V, create, error_of

from cosell.clock import ManualClock
from cosell_sandbox.salesforce.app import SalesforceSandbox

ENV = "{http://schemas.xmlsoap.org/soap/envelope/}"
NS = "{urn:partner.soap.sforce.com}"
HEADERS = {"content-type": "text/xml; charset=UTF-8", "SOAPAction": "convertLead"}


def envelope(session: str | None, *converts: str) -> bytes:
    header = (
        f"<urn:SessionHeader><urn:sessionId>{session}</urn:sessionId></urn:SessionHeader>"
        if session is not None
        else ""
    )
    items = "".join(f"<urn:leadConverts>{c}</urn:leadConverts>" for c in converts)
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:partner.soap.sforce.com">'
        f"<soapenv:Header>{header}</soapenv:Header>"
        f"<soapenv:Body><urn:convertLead>{items}</urn:convertLead></soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def lead_convert(lead_id: str, status: str = "Closed - Converted", **more: str) -> str:
    extra = "".join(f"<urn:{k}>{v}</urn:{k}>" for k, v in more.items())
    return f"<urn:leadId>{lead_id}</urn:leadId><urn:convertedStatus>{status}</urn:convertedStatus>{extra}"


async def post(
    client: httpx.AsyncClient, body: bytes, path: str = "/services/Soap/u/59.0"
) -> httpx.Response:
    return await client.post(path, content=body, headers=HEADERS)


def results(response: httpx.Response) -> list[ET.Element]:
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    found = root.findall(f"{ENV}Body/{NS}convertLeadResponse/{NS}result")
    assert found
    return found


def fault_code(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 500, response.text
    root = ET.fromstring(response.content)
    fault = root.find(f"{ENV}Body/{ENV}Fault")
    assert fault is not None
    return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


async def new_lead(sf: httpx.AsyncClient, company: str = "Contoso") -> str:
    return await create(
        sf,
        "Lead",
        {
            "Company": company,
            "LastName": "Lovelace",
            "FirstName": "Ada",
            "Street": "1 Way",
            "Country": "US",
        },
    )


async def test_result_children_keep_the_wsdl_order_and_the_lead_is_converted(
    sf: httpx.AsyncClient, sf_token: str, sandbox: SalesforceSandbox, sf_clock: ManualClock
) -> None:
    today = sf_clock.now().date()
    quarter_end = {3: "03-31", 6: "06-30", 9: "09-30", 12: "12-31"}[
        ((today.month - 1) // 3 + 1) * 3
    ]
    lead_id = await new_lead(sf)
    org15 = sandbox.info()["org_id"][:15]
    response = await post(
        sf, envelope(sf_token, lead_convert(lead_id)), f"/services/Soap/u/59.0/{org15}"
    )
    (result,) = results(response)
    names = [child.tag.removeprefix(NS) for child in result]
    assert names == ["accountId", "contactId", "leadId", "opportunityId", "success"]
    assert result.findtext(f"{NS}success") == "true"
    lead = (await sf.get(f"{V}/sobjects/Lead/{lead_id}")).json()
    assert lead["IsConverted"] is True
    assert lead["ConvertedDate"] == today.isoformat()
    assert lead["ConvertedOpportunityId"] == result.findtext(f"{NS}opportunityId")
    opportunity = (
        await sf.get(f"{V}/sobjects/Opportunity/{lead['ConvertedOpportunityId']}")
    ).json()
    assert (opportunity["StageName"], opportunity["CloseDate"]) == (
        "Prospecting",
        f"{today.year}-{quarter_end}",
    )
    account = (await sf.get(f"{V}/sobjects/Account/{lead['ConvertedAccountId']}")).json()
    assert (account["Name"], account["BillingStreet"], account["BillingCountry"]) == (
        "Contoso",
        "1 Way",
        "US",
    )
    contact = (await sf.get(f"{V}/sobjects/Contact/{lead['ConvertedContactId']}")).json()
    assert (contact["FirstName"], contact["MailingStreet"]) == ("Ada", "1 Way")


async def test_do_not_create_opportunity(sf: httpx.AsyncClient, sf_token: str) -> None:
    lead_id = await new_lead(sf)
    body = envelope(sf_token, lead_convert(lead_id, doNotCreateOpportunity="true"))
    (result,) = results(await post(sf, body))
    assert (
        result.find(f"{NS}opportunityId").get("{http://www.w3.org/2001/XMLSchema-instance}nil")
        == "true"
    )  # type: ignore[union-attr]
    assert result.findtext(f"{NS}accountId")


async def test_failures_are_per_lead_and_leave_no_trace(
    sf: httpx.AsyncClient, sf_token: str
) -> None:
    converted = await new_lead(sf, "Converted Co")
    await post(sf, envelope(sf_token, lead_convert(converted)))
    fresh = await new_lead(sf, "Fresh Co")
    body = envelope(
        sf_token,
        lead_convert(converted),
        lead_convert("00Q000000000000AAA"),
        lead_convert(fresh, "Working - Contacted"),
        lead_convert(fresh),
    )
    found = results(await post(sf, body))
    codes = [r.findtext(f"{NS}errors/{NS}statusCode") for r in found]
    assert codes == [
        "CANNOT_UPDATE_CONVERTED_LEAD",
        "INVALID_CROSS_REFERENCE_KEY",
        "INVALID_STATUS",
        None,
    ]
    assert [r.findtext(f"{NS}success") for r in found] == ["false", "false", "false", "true"]
    accounts = (
        await sf.get(f"{V}/query/", params={"q": "SELECT Name FROM Account ORDER BY Name"})
    ).json()
    assert [r["Name"] for r in accounts["records"]] == ["Converted Co", "Fresh Co"]


async def test_a_converted_lead_is_read_only_over_rest(
    sf: httpx.AsyncClient, sf_token: str
) -> None:
    lead_id = await new_lead(sf)
    await post(sf, envelope(sf_token, lead_convert(lead_id)))
    item = await error_of(
        await sf.patch(f"{V}/sobjects/Lead/{lead_id}", json={"Company": "X"}), 400
    )
    assert item["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


async def test_conversion_is_a_change_event_of_the_api_user(
    sf: httpx.AsyncClient, sf_token: str, sandbox: SalesforceSandbox
) -> None:
    lead_id = await new_lead(sf)
    await post(sf, envelope(sf_token, lead_convert(lead_id)))
    events = (await sf.get("/control/changes", params={"entity": "Lead"})).json()
    headers = [e["payload"]["ChangeEventHeader"] for e in events["events"]]
    updates = [h for h in headers if h["changeType"] == "UPDATE"]
    assert "IsConverted" in updates[-1]["changedFields"]
    assert updates[-1]["recordIds"] == [lead_id]


@pytest.mark.parametrize(
    ("session", "code"),
    [(None, "sf:INVALID_SESSION_ID"), ("00Dbogus!token", "sf:INVALID_SESSION_ID")],
)
async def test_a_missing_or_unknown_session_is_a_fault(
    sf: httpx.AsyncClient, session: str | None, code: str
) -> None:
    lead_id = await new_lead(sf)
    faultcode, message = fault_code(await post(sf, envelope(session, lead_convert(lead_id))))
    assert faultcode == code
    assert "Invalid Session ID" in message


async def test_malformed_requests_are_client_faults(sf: httpx.AsyncClient, sf_token: str) -> None:
    assert fault_code(await post(sf, envelope(sf_token)))[0] == "soapenv:Client"
    bad = envelope(sf_token, "<urn:colour>red</urn:colour>")
    faultcode, message = fault_code(await post(sf, bad))
    assert (faultcode, "colour" in message) == ("soapenv:Client", True)
