"""`SalesforceClient.convert_lead(s)` (SOAP partner API) against the Salesforce sandbox."""

from __future__ import annotations

import httpx
import pytest
from sf_harness import expire_sessions

from cosell.salesforce import errors as e
from cosell.salesforce.client import SalesforceClient
from cosell.salesforce.soap import LeadConvert

CONVERTED = "Closed - Converted"


async def _lead(client: SalesforceClient, **fields: str) -> str:
    body = {
        "Company": "Contoso",
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "Email": "ada@contoso.example",
        "City": "Redmond",
        "Country": "US",
        **fields,
    }
    return str(await client.create("Lead", body))


async def test_convert_lead_creates_account_contact_and_opportunity(
    client: SalesforceClient,
) -> None:
    lead_id = await _lead(client)
    result = await client.convert_lead(
        LeadConvert(lead_id, CONVERTED, opportunity_name="Contoso - Azure")
    )
    assert result.success
    assert result.lead_id == lead_id
    assert result.account_id is not None
    assert result.contact_id is not None
    assert result.opportunity_id is not None
    lead = await client.get("Lead", lead_id)
    assert lead["IsConverted"] is True
    assert lead["Status"] == CONVERTED
    assert lead["ConvertedAccountId"] == result.account_id
    assert lead["ConvertedContactId"] == result.contact_id
    assert lead["ConvertedOpportunityId"] == result.opportunity_id
    assert lead["ConvertedDate"] is not None
    account = await client.get("Account", result.account_id)
    assert (account["Name"], account["BillingCity"]) == ("Contoso", "Redmond")
    contact = await client.get("Contact", result.contact_id)
    assert (contact["LastName"], contact["AccountId"]) == ("Lovelace", result.account_id)
    opportunity = await client.get("Opportunity", result.opportunity_id)
    assert opportunity["Name"] == "Contoso - Azure"
    assert opportunity["AccountId"] == result.account_id
    roles = [
        row
        async for row in client.query(
            "SELECT ContactId, IsPrimary FROM OpportunityContactRole "
            f"WHERE OpportunityId = '{result.opportunity_id}'"
        )
    ]
    assert roles == [
        {"attributes": roles[0]["attributes"], "ContactId": result.contact_id, "IsPrimary": True}
    ]


async def test_convert_lead_into_existing_records_keeps_their_values(
    client: SalesforceClient,
) -> None:
    account_id = str(await client.create("Account", {"Name": "Contoso Ltd"}))
    contact_id = str(
        await client.create("Contact", {"LastName": "Existing", "AccountId": account_id})
    )
    opportunity_id = str(
        await client.create(
            "Opportunity",
            {
                "Name": "Kept",
                "StageName": "Qualification",
                "CloseDate": "2026-12-31",
                "AccountId": account_id,
            },
        )
    )
    lead_id = await _lead(client)
    result = await client.convert_lead(
        LeadConvert(
            lead_id,
            CONVERTED,
            account_id=account_id,
            contact_id=contact_id,
            opportunity_id=opportunity_id,
        )
    )
    assert (result.account_id, result.contact_id, result.opportunity_id) == (
        account_id,
        contact_id,
        opportunity_id,
    )
    assert (await client.get("Account", account_id))["Name"] == "Contoso Ltd"
    assert (await client.get("Opportunity", opportunity_id))["Name"] == "Kept"


async def test_a_converted_lead_is_read_only_and_cannot_be_converted_again(
    client: SalesforceClient,
) -> None:
    lead_id = await _lead(client)
    await client.convert_lead(LeadConvert(lead_id, CONVERTED))
    with pytest.raises(e.ValidationError, match="converted lead") as again:
        await client.convert_lead(LeadConvert(lead_id, CONVERTED))
    assert again.value.error_code == "CANNOT_UPDATE_CONVERTED_LEAD"
    with pytest.raises(e.ValidationError) as edit:
        await client.update("Lead", lead_id, {"Company": "Other"})
    assert edit.value.error_code == "CANNOT_UPDATE_CONVERTED_LEAD"


@pytest.mark.parametrize(
    ("convert", "code"),
    [
        (LeadConvert("00Q000000000000AAA", CONVERTED), "INVALID_CROSS_REFERENCE_KEY"),
        (LeadConvert("not-an-id", CONVERTED), "INVALID_CROSS_REFERENCE_KEY"),
        (LeadConvert("{lead}", "Working - Contacted"), "INVALID_STATUS"),
        (
            LeadConvert("{lead}", CONVERTED, account_id="001000000000000AAA"),
            "INVALID_CROSS_REFERENCE_KEY",
        ),
        (
            LeadConvert("{lead}", CONVERTED, contact_id="003000000000000AAA"),
            "REQUIRED_FIELD_MISSING",
        ),
    ],
)
async def test_bad_conversions_fail_alone_with_salesforce_codes(
    client: SalesforceClient, convert: LeadConvert, code: str
) -> None:
    lead_id = await _lead(client)
    good = await _lead(client, Company="Fabrikam")
    bad = LeadConvert(
        convert.lead_id.replace("{lead}", lead_id),
        convert.converted_status,
        account_id=convert.account_id,
        contact_id=convert.contact_id,
    )
    results = await client.convert_leads([bad, LeadConvert(good, CONVERTED)])
    assert not results[0].success
    assert results[0].errors[0].error_code == code
    assert isinstance(results[0].errors[0], e.ValidationError)
    assert results[1].success
    assert (await client.get("Lead", lead_id))["IsConverted"] is False
    accounts = [row async for row in client.query("SELECT Name FROM Account")]
    assert [row["Name"] for row in accounts] == ["Fabrikam"]  # the failed one left nothing


async def test_an_expired_session_is_refreshed_once(
    client: SalesforceClient, http: httpx.AsyncClient
) -> None:
    lead_id = await _lead(client)
    before = client.session.current
    await expire_sessions(http)
    result = await client.convert_lead(LeadConvert(lead_id, CONVERTED))
    assert result.success
    after = client.session.current
    assert before is not None
    assert after is not None
    assert after.access_token != before.access_token


async def test_convert_leads_takes_1_to_100(client: SalesforceClient) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        await client.convert_leads([])
    with pytest.raises(ValueError, match="1 to 100"):
        await client.convert_leads([LeadConvert("00Q", CONVERTED)] * 101)
