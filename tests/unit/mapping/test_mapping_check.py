"""check_mapping against the Salesforce sandbox's org schema and the referral model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cosell.mapping import MappingError, load_mapping, new_salesforce_records, parse_mapping
from cosell.mapping.check import check_mapping
from cosell.mapping.loader import default_mapping_path, default_mapping_text
from cosell.salesforce.schema import ObjectDescription
from cosell_sandbox.salesforce.describe import describe_sobject
from cosell_sandbox.salesforce.orgschema import build_schema

SCHEMA = build_schema()


def describe(name: str) -> ObjectDescription:
    """What `GET /sobjects/{name}/describe` answers in the sandbox org."""
    obj = SCHEMA.sobject(name)
    if obj is None:
        raise KeyError(name)
    return ObjectDescription.model_validate(describe_sobject(obj, api_version="62.0"))


def test_the_default_mapping_fits_the_org() -> None:
    assert check_mapping(load_mapping(), describe) == []


BROKEN = """\
version: 1
opportunity:
  referral_id: Microsoft_CRM_Identifier__c
  audit: Audit_Trail__c
stages:
  on_hold_stage: On Hold
  active_stage: Qualification
  won_stage: Closed Won
  lost_stage: Closed Lost
  other_lost_stages: [Closed - Duplicate]
fields:
  - name: name
    partner_center: name
    salesforce: Opportunity.Name
    direction: both
    owner: salesforce
  - name: deal_value
    partner_center: details/dealValu
    salesforce: Opportunity.Ammount
    direction: both
    owner: salesforce
    transform: amount
  - name: close_date
    partner_center: details/closingDateTime
    salesforce: Opportunity.CloseDate
    direction: both
    owner: salesforce
    transform: amount
  - name: stage
    partner_center: status
    salesforce: Opportunity.StageName
    direction: both
    owner: partner_center
    transform: stage
  - name: help
    partner_center: inviteContext/assistanceRequestCode
    salesforce: Opportunity.How_can_Microsoft_help__c
    direction: to_partner_center
    owner: salesforce
    transform:
      type: picklist
      values:
        Unknown: null
        GeneralOrOther: General or Other
        FreeLunch: Free lunch
      salesforce_default: Nothing
  - name: probability
    partner_center: trackingInfo/microsoftMsxId
    salesforce: Opportunity.IsWon
    direction: to_salesforce
    owner: partner_center
  - name: customer_name
    partner_center: customerProfile/name
    salesforce: Account.Name
    direction: both
    owner: partner_center
    read_only_after_create: true
  - name: team
    partner_center: team
    salesforce: Opportunity.NextStep
    direction: to_salesforce
    owner: partner_center
  - name: currency
    partner_center: details/currency
    salesforce: Opportunity.CurrencyIsoCode
    direction: both
    owner: salesforce
    transform: currency
    default: XYZ
"""


HELP_VALUES = (
    "its values are: Workload specific value proposition, Customer technical architecture, "
    "Proof of concept or demo, Quotes or licensing, Post sales customer success, General or other"
)
STAGE_VALUES = (
    "its values are: Prospecting, Qualification, Needs Analysis, Value Proposition, Id. Decision "
    "Makers, Perception Analysis, Proposal/Price Quote, Negotiation/Review, Closed Won, Closed Lost"
)


def test_a_broken_mapping_gets_every_problem_at_its_place() -> None:
    mapping = parse_mapping(BROKEN, "broken.yaml")
    problems = [str(p) for p in check_mapping(mapping, describe)]
    expected = [
        "broken.yaml:19:17: Opportunity has no field 'Ammount' (did you mean Amount, AccountId?); "
        "check the API name (custom fields end in __c) and the field-level security of cosell's "
        "user",
        "broken.yaml:18:21: 'details/dealValu' is not a member of a referral (did you mean "
        "details/dealValue, details/notes?)",
        "broken.yaml:28:16: Opportunity.CloseDate is a date field; the amount transform needs one "
        "of: currency, double, int, long, percent",
        "broken.yaml:28:16: details/closingDateTime holds a datetime; the amount transform needs "
        "one of: decimal",
        f"broken.yaml:44:25: 'General or Other' is not an active picklist value of "
        f"Opportunity.How_can_Microsoft_help__c (did you mean General or other?); {HELP_VALUES}",
        f"broken.yaml:45:20: 'Free lunch' is not an active picklist value of "
        f"Opportunity.How_can_Microsoft_help__c; {HELP_VALUES}",
        f"broken.yaml:46:27: 'Nothing' is not an active picklist value of "
        f"Opportunity.How_can_Microsoft_help__c; {HELP_VALUES}",
        "broken.yaml:45:20: 'FreeLunch' is not a Partner Center value of "
        "inviteContext/assistanceRequestCode; its values are: Unknown, None, GeneralOrOther, "
        "CustomerTechnicalArchitecture, ProofOfConceptOrDemo, QuotesOrLicensing, "
        "PostSalesCustomerSuccess, WorkloadSpecificValueProposition",
        "broken.yaml:49:17: Opportunity.IsWon is not createable by cosell's user, and creates "
        "write every mapped field; grant edit access or map another field",
        "broken.yaml:49:17: Opportunity.IsWon is not updateable, but direction to_salesforce "
        "writes to Salesforce; use direction: to_partner_center, or grant edit access",
        "broken.yaml:47:5: Opportunity.IsWon is a boolean field; the text transform needs one of: "
        "combobox, email, phone, picklist, string, textarea, url",
        "broken.yaml:53:21: Partner Center does not let partners change customerProfile/name "
        "after the referral is created, but direction both writes to it; use direction: "
        "to_salesforce",
        "broken.yaml:59:21: team is a list; map one of its scalar members",
        "broken.yaml:69:14: 'XYZ' is not an active picklist value of Opportunity.CurrencyIsoCode; "
        "its values are: USD, EUR, GBP, JPY, CAD,",
        f"broken.yaml:6:18: 'On Hold' is not an active picklist value of Opportunity.StageName; "
        f"{STAGE_VALUES}",
        f"broken.yaml:10:23: 'Closed - Duplicate' is not an active picklist value of "
        f"Opportunity.StageName; {STAGE_VALUES}",
        "broken.yaml:3:16: Opportunity.Microsoft_CRM_Identifier__c must be an External ID (and "
        "Unique): creates upsert on it, so a retried create never makes a second opportunity",
        "broken.yaml:4:10: Opportunity has no field 'Audit_Trail__c' (did you mean Audit__c?)",
    ]
    assert len(problems) == len(expected), "\n".join(problems)
    for found, wanted in zip(problems, expected, strict=True):
        assert found.startswith(wanted), f"{found}\n!=\n{wanted}"


def test_an_object_the_org_lacks_is_reported() -> None:
    def no_account(name: str) -> ObjectDescription:
        if name == "Account":
            raise KeyError(name)
        return describe(name)

    problems = [str(p) for p in check_mapping(load_mapping(), no_account)]
    assert len(problems) == 6  # the customer name and the five address fields
    assert all("the org has no object 'Account'" in p for p in problems)
    assert problems[0].startswith(f"{default_mapping_path()}:")


@pytest.mark.parametrize(
    ("role", "field", "message"),
    [
        (
            "sync",
            "Amount",
            "Opportunity.Amount is a currency field; the sync field must be one of: boolean",
        ),
        ("audit", "IsWon", "Opportunity.IsWon must be createable and updateable"),
    ],
)
def test_own_fields_are_checked(role: str, field: str, message: str) -> None:
    text = (
        load_mapping_text()
        .replace(
            "  sync: Sync_with_Partner_Center__c\n",
            f"  sync: {field}\n" if role == "sync" else "  sync: Sync_with_Partner_Center__c\n",
        )
        .replace(
            "  audit: Audit__c\n",
            f"  audit: {field}\n" if role == "audit" else "  audit: Audit__c\n",
        )
    )
    problems = [p.message for p in check_mapping(parse_mapping(text), describe)]
    assert any(p.startswith(message) for p in problems), problems


def test_a_required_field_left_unmapped_is_reported() -> None:
    text = load_mapping_text().replace(
        "  - name: close_date\n"
        "    partner_center: details/closingDateTime\n"
        "    salesforce: Opportunity.CloseDate\n",
        "  - name: close_date\n"
        "    partner_center: details/closingDateTime\n"
        "    salesforce: Opportunity.LastActivityDate\n",
    )
    problems = [p.message for p in check_mapping(parse_mapping(text), describe)]
    assert (
        "Opportunity.CloseDate is required when cosell creates a Opportunity, but no field maps "
        "it; add a `defaults` entry (written on create only), e.g. `defaults: "
        "{Opportunity.CloseDate: 2026-01-01}`, or map a field to it (with a default if Partner "
        "Center may not have a value)"
    ) in problems


def load_mapping_text() -> str:
    return default_mapping_text()


def test_a_constant_field_is_checked_on_the_partner_center_side_only() -> None:
    text = load_mapping_text().replace(
        "    salesforce: Opportunity.CurrencyIsoCode\n    direction: both\n",
        "    salesforce: null\n    direction: to_partner_center\n",
    )
    assert check_mapping(parse_mapping(text), describe) == []
    broken = text.replace("partner_center: details/currency", "partner_center: details/curency")
    problems = [p.message for p in check_mapping(parse_mapping(broken), describe)]
    assert problems == [
        "'details/curency' is not a member of a referral (did you mean details/currency, "
        "details/notes?)"
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "    object: Microsoft_Solution__c\n",
            "    object: Solution__c\n",
            "the org has no object 'Solution__c'",
        ),
        (
            "    relationship: Microsoft_Solutions__r\n",
            "    relationship: Solutions__r\n",
            "Opportunity has no child relationship 'Solutions__r' to Microsoft_Solution__c",
        ),
        (
            "    solution_id: Solution_Id__c\n",
            "    solution_id: SolutionId__c\n",
            "Microsoft_Solution__c has no field 'SolutionId__c' (did you mean Solution_Id__c",
        ),
        (
            "    fields: [UserId, OpportunityAccessLevel]\n",
            "    fields: [UserId, Name]\n",
            "OpportunityTeamMember.Name must be createable by cosell's user",
        ),
        (
            "    parent: Opportunity__c\n",
            "    parent: CreatedById\n",
            "Microsoft_Solution__c.CreatedById does not point to Opportunity",
        ),
    ],
)
def test_the_collections_section_is_checked_against_the_org(
    old: str, new: str, message: str
) -> None:
    text = load_mapping_text()
    assert old in text
    mapping = parse_mapping(text.replace(old, new, 1))
    problems = [str(p) for p in check_mapping(mapping, describe)]
    assert any(message in p for p in problems), problems
    assert all(":" in p.split(" ")[0] for p in problems)  # each at its place in the file


def test_a_collections_section_with_a_bad_api_name_is_refused_on_load() -> None:
    text = load_mapping_text().replace(
        "    parent: OpportunityId\n", "    parent: Opportunity Id\n", 1
    )
    with pytest.raises(MappingError, match="not a Salesforce API name"):
        parse_mapping(text)


def test_the_default_lead_section_fits_the_org() -> None:
    assert check_mapping(load_mapping(), describe, lead_sync=True) == []


def test_lead_sync_without_a_lead_section_is_a_problem() -> None:
    text = default_mapping_text()
    without = parse_mapping(text[: text.index("\nlead:")] + "\n")
    (problem,) = check_mapping(without, describe, lead_sync=True)
    assert "no lead section" in problem.message
    assert check_mapping(without, describe) == []


def test_lead_fields_are_checked_at_their_place() -> None:
    text = (
        default_mapping_text()
        .replace("salesforce: Lead.Title", "salesforce: Lead.Titel")
        .replace(
            "partner_center: customerProfile/team/0/email",
            "partner_center: customerProfile/team/0/mail",
        )
        .replace("declined: Closed - Not Converted", "declined: Lost")
    )
    mapping = parse_mapping(text, "mapping.yaml")
    lines = text.splitlines()
    problems = check_mapping(mapping, describe, lead_sync=True)
    found = {p.message.split(" (")[0].split(";")[0]: p.place for p in problems}
    titel = next(n for n, line in enumerate(lines, 1) if "Lead.Titel" in line)
    assert found["Lead has no field 'Titel'"] == f"mapping.yaml:{titel}:19"
    assert any("customerProfile/team/0/mail" in p.message for p in problems)
    assert any(
        "'Lost' is not an active picklist value of Lead.Status" in p.message for p in problems
    )


def test_lead_fields_must_live_on_the_lead() -> None:
    text = default_mapping_text().replace("salesforce: Lead.Company", "salesforce: Account.Name")
    with pytest.raises(MappingError, match="lives on the Lead"):
        parse_mapping(text)
    moved = default_mapping_text().replace(
        "salesforce: Opportunity.Description", "salesforce: Lead.Description"
    )
    with pytest.raises(MappingError, match="Lead fields go in the lead section"):
        parse_mapping(moved)


def _customised_describe() -> tuple[Callable[[str], ObjectDescription], dict[str, Any]]:
    """describe() of an org with the example profile, and its record types' picklist values."""
    from pathlib import Path

    from cosell_sandbox.salesforce.describe import picklist_values
    from cosell_sandbox.salesforce.orgprofile import apply_profile, load_profile

    example = Path(__file__).resolve().parents[3] / "sandbox" / "examples" / "customised-org.yaml"
    schema = build_schema()
    apply_profile(schema, load_profile(example))

    def described(name: str) -> ObjectDescription:
        obj = schema.sobject(name)
        if obj is None:
            raise KeyError(name)
        return ObjectDescription.model_validate(describe_sobject(obj, api_version="62.0"))

    opportunity = schema.sobject("Opportunity")
    assert opportunity is not None
    values = {
        rt.id: {
            k: tuple(v["value"] for v in f["values"])
            for k, f in picklist_values(opportunity, rt.id, api_version="62.0")[
                "picklistFieldValues"
            ].items()
        }
        for rt in opportunity.record_types
    }
    return described, values


def test_defaults_fill_required_fields_and_are_checked() -> None:
    customised, values = _customised_describe()
    text = load_mapping_text().replace(
        "\nfields:\n",
        "\ndefaults:\n  Opportunity.Region__c: EMEA\n  Opportunity.Type: Nope\nfields:\n",
        1,
    )
    mapping = parse_mapping(text)
    problems = [p.message for p in check_mapping(mapping, customised, record_type_values=values)]
    assert not any("Region__c is required" in p for p in problems)
    assert any("'Nope' is not an active picklist value of Opportunity.Type" in p for p in problems)
    records = new_salesforce_records(mapping, {}, referral_id="r", referral_link="l")
    assert records["Opportunity"]["Region__c"] == "EMEA"
    assert records["Account"] is None  # no account from defaults alone


def test_defaults_keys_are_salesforce_fields_no_field_maps() -> None:
    with pytest.raises(MappingError, match=r"must be Opportunity\.<Field> or Account\.<Field>"):
        parse_mapping(
            load_mapping_text().replace("\nfields:\n", "\ndefaults:\n  Region: EMEA\nfields:\n", 1)
        )
    with pytest.raises(MappingError, match="give that field a default instead"):
        parse_mapping(
            load_mapping_text().replace(
                "\nfields:\n", "\ndefaults:\n  Opportunity.Amount: 1\nfields:\n", 1
            )
        )


def test_record_type_sales_process_against_the_stage_table() -> None:
    customised, values = _customised_describe()
    default = parse_mapping(load_mapping_text())
    problems = [p.message for p in check_mapping(default, customised, record_type_values=values)]
    (stage,) = [p for p in problems if "sales process" in p]
    assert "stage 'Qualification' is not in the sales process of record type Partner_Deal" in stage
    assert "the integration user's default record type" in stage
    assert "(Enterprise_Deal allows it)" in stage
    enterprise = parse_mapping(
        load_mapping_text().replace("\nfields:\n", "\nrecord_type: Enterprise_Deal\nfields:\n", 1)
    )
    found = check_mapping(enterprise, customised, record_type_values=values)
    assert not any("sales process" in p.message for p in found)
    unknown = parse_mapping(
        load_mapping_text().replace("\nfields:\n", "\nrecord_type: Enterprise\nfields:\n", 1)
    )
    (problem,) = [
        p.message
        for p in check_mapping(unknown, customised, record_type_values=values)
        if "record type" in p.message
    ]
    assert "no record type 'Enterprise'" in problem
    assert "did you mean Enterprise_Deal" in problem
    clean = [p.message for p in check_mapping(enterprise, describe)]
    assert any("the org has no Opportunity record types: remove record_type" in p for p in clean)


def test_a_sync_status_picklist_without_paused_is_reported() -> None:
    def without_paused(name: str) -> ObjectDescription:
        obj = SCHEMA.sobject(name)
        if obj is None:
            raise KeyError(name)
        raw = describe_sobject(obj, api_version="62.0")
        for found in raw["fields"]:
            if found["name"] == "Partner_Center_Sync_Status__c":
                found["picklistValues"] = [
                    v for v in found["picklistValues"] if v["value"] != "Paused"
                ]
        return ObjectDescription.model_validate(raw)

    assert check_mapping(load_mapping(), describe) == []  # the shipped metadata has it
    problems = [p.message for p in check_mapping(load_mapping(), without_paused)]
    assert problems == [
        "Opportunity.Partner_Center_Sync_Status__c lacks the picklist value(s) Paused: cosell "
        "writes Synced, Pending, Error, Paused there (Paused for a deal paused by hand); deploy "
        "cosell's metadata again (`cosell salesforce metadata`) or add them"
    ]
