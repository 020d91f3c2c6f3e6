"""The Salesforce sandbox's org schema: standard objects plus the custom metadata XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosell_sandbox.salesforce.orgschema import (
    MetadataError,
    build_schema,
    custom_key_prefix,
    load_custom_metadata,
)
from cosell_sandbox.salesforce.schema import Schema, SObjectSchema
from cosell_sandbox.salesforce.standard_objects import (
    CURRENCIES,
    DEFAULT_CURRENCY,
    LEAD_STATUSES,
    OPPORTUNITY_STAGES,
)

NS = "http://soap.sforce.com/2006/04/metadata"

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "User": "005",
    "OpportunityContactRole": "00K",
    "OpportunityTeamMember": "00q",
    "ContentDocument": "069",
    "ContentNote": "069",
    "ContentVersion": "068",
    "ContentDocumentLink": "06A",
    "Note": "002",
}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return build_schema()


def sobject(schema: Schema, name: str) -> SObjectSchema:
    obj = schema.sobject(name)
    assert obj is not None, name
    return obj


def test_standard_objects_have_their_key_prefixes(schema: Schema) -> None:
    for name, prefix in KEY_PREFIXES.items():
        assert sobject(schema, name).key_prefix == prefix
    by_prefix = schema.by_key_prefix("069")
    assert by_prefix is not None
    assert by_prefix.name == "ContentDocument"
    assert sobject(schema, "OpportunityStage").createable is False


def test_names_are_case_insensitive_and_canonical(schema: Schema) -> None:
    assert sobject(schema, "opportunity").name == "Opportunity"
    field = sobject(schema, "OPPORTUNITY").field("stagename")
    assert field is not None
    assert field.name == "StageName"


@pytest.mark.parametrize(
    ("name", "required"),
    [
        ("Opportunity", {"Name", "StageName", "CloseDate"}),
        ("Account", {"Name"}),
        ("Contact", {"LastName"}),
        ("Lead", {"LastName", "Company"}),
        ("OpportunityContactRole", {"OpportunityId", "ContactId"}),
        ("OpportunityTeamMember", {"OpportunityId", "UserId", "OpportunityAccessLevel"}),
        ("Note", {"ParentId", "Title"}),
        ("ContentNote", {"Title"}),
        ("ContentDocumentLink", {"ContentDocumentId", "LinkedEntityId", "ShareType"}),
        ("Microsoft_Solution__c", {"Opportunity__c"}),
    ],
)
def test_required_on_create(schema: Schema, name: str, required: set[str]) -> None:
    got = {f.name for f in sobject(schema, name).iter_fields() if f.required_on_create}
    assert got == required


def test_system_fields_are_read_only_everywhere(schema: Schema) -> None:
    system = {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate"}
    system |= {"LastModifiedById", "SystemModstamp"}
    for obj in schema.objects():
        assert obj.field("Id") is not None, obj.name
        assert obj.field("SystemModstamp") is not None, obj.name
        for name in system:
            field = obj.field(name)
            if field is not None:
                assert not field.createable, f"{obj.name}.{name}"
                assert not field.updateable, f"{obj.name}.{name}"


def test_objects_without_is_deleted_in_a_real_org_have_none(schema: Schema) -> None:
    assert sobject(schema, "User").field("IsDeleted") is None
    assert sobject(schema, "OpportunityStage").field("IsDeleted") is None
    assert sobject(schema, "Opportunity").field("IsDeleted") is not None


def test_derived_fields_are_read_only(schema: Schema) -> None:
    opportunity = sobject(schema, "Opportunity")
    lead = sobject(schema, "Lead")
    for field in (
        opportunity.field("IsClosed"),
        opportunity.field("IsWon"),
        opportunity.field("ExpectedRevenue"),
        lead.field("IsConverted"),
        lead.field("ConvertedOpportunityId"),
        sobject(schema, "Contact").field("Name"),
        sobject(schema, "ContentNote").field("TextPreview"),
    ):
        assert field is not None
        assert (field.createable, field.updateable) == (False, False), field.name
    for name in ("OpportunityId", "UserId"):
        member_field = sobject(schema, "OpportunityTeamMember").field(name)
        assert member_field is not None
        assert (member_field.createable, member_field.updateable) == (True, False)


def test_opportunity_field_types(schema: Schema) -> None:
    opportunity = sobject(schema, "Opportunity")
    expect = {
        "Amount": ("currency", 18, 2),
        "Probability": ("percent", 3, 0),
        "CloseDate": ("date", 0, 0),
        "Description": ("textarea", 0, 0),
        "AccountId": ("reference", 0, 0),
    }
    for name, (kind, precision, scale) in expect.items():
        field = opportunity.field(name)
        assert field is not None
        assert (field.type, field.precision, field.scale) == (kind, precision, scale), name
    description = opportunity.field("Description")
    name_field = opportunity.field("Name")
    account = opportunity.field("AccountId")
    assert description is not None
    assert name_field is not None
    assert account is not None
    assert description.length == 32000
    assert name_field.length == 120
    assert account.reference_to == ("Account",)
    assert account.relationship_name == "Account"


def test_stage_picklist_follows_the_stage_table(schema: Schema) -> None:
    stage = sobject(schema, "Opportunity").field("StageName")
    assert stage is not None
    assert [v.value for v in stage.picklist_values] == [s.name for s in OPPORTUNITY_STAGES]
    assert stage.restricted_picklist
    won = next(s for s in OPPORTUNITY_STAGES if s.name == "Closed Won")
    lost = next(s for s in OPPORTUNITY_STAGES if s.name == "Closed Lost")
    assert (won.default_probability, won.is_closed, won.is_won) == (100, True, True)
    assert (lost.default_probability, lost.is_closed, lost.is_won) == (0, True, False)
    assert (won.forecast_category, lost.forecast_category) == ("Closed", "Omitted")
    assert all(s.forecast_category == "Pipeline" for s in OPPORTUNITY_STAGES if not s.is_closed)
    assert [s.sort_order for s in OPPORTUNITY_STAGES] == list(range(1, 11))
    forecast = sobject(schema, "Opportunity").field("ForecastCategoryName")
    assert forecast is not None
    values = {v.value for v in forecast.picklist_values}
    assert {s.forecast_category for s in OPPORTUNITY_STAGES} <= values
    assert won.forecast_category_api == "Closed"


def test_lead_status_defaults_to_open(schema: Schema) -> None:
    status = sobject(schema, "Lead").field("Status")
    assert status is not None
    assert [v.value for v in status.picklist_values] == list(LEAD_STATUSES)
    assert status.default_value == "Open - Not Contacted"
    assert [v.value for v in status.picklist_values if v.default] == ["Open - Not Contacted"]
    assert status.defaulted_on_create
    assert not status.required_on_create


def test_multi_currency_adds_currency_iso_code() -> None:
    on = build_schema(multi_currency=True)
    off = build_schema(multi_currency=False)
    for name in ("Opportunity", "Account", "Contact", "Lead", "Microsoft_Solution__c"):
        currency = sobject(on, name).field("CurrencyIsoCode")
        assert currency is not None, name
        assert currency.restricted_picklist
        assert currency.default_value == DEFAULT_CURRENCY
        assert {v.value for v in currency.picklist_values} == set(CURRENCIES)
        assert sobject(off, name).field("CurrencyIsoCode") is None
    assert {"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "INR"} <= set(CURRENCIES)
    detail = sobject(on, "Microsoft_Solution__c").field("CurrencyIsoCode")
    assert detail is not None
    assert not detail.createable, "a detail record takes its master's currency"
    assert sobject(on, "OpportunityContactRole").field("CurrencyIsoCode") is None


def test_custom_fields_on_opportunity_and_lead(schema: Schema) -> None:
    opportunity = sobject(schema, "Opportunity")
    ref = opportunity.field("referral_identifier__c")
    assert ref is not None
    assert (ref.type, ref.length, ref.external_id, ref.unique, ref.custom) == (
        "string",
        100,
        True,
        True,
        True,
    )
    assert ref in opportunity.external_id_fields()
    sync = opportunity.field("Sync_with_Partner_Center__c")
    assert sync is not None
    assert (sync.type, sync.nillable, sync.defaulted_on_create, sync.default_value) == (
        "boolean",
        False,
        True,
        False,
    )
    audit = opportunity.field("Audit__c")
    assert audit is not None
    assert (audit.type, audit.length, audit.filterable) == ("textarea", 100000, False)
    link = opportunity.field("Referral_Link__c")
    assert link is not None
    assert (link.type, link.length) == ("url", 255)
    lead = sobject(schema, "Lead")
    assert lead.field("Referral_Identifier__c") is not None
    assert lead.field("Referral_Visibility__c") is None


def test_microsoft_solution_is_a_detail_of_opportunity(schema: Schema) -> None:
    solution = sobject(schema, "Microsoft_Solution__c")
    assert solution.custom
    assert solution.key_prefix.startswith("a0")
    assert solution.field("OwnerId") is None
    master = solution.field("Opportunity__c")
    assert master is not None
    assert master.type == "reference"
    assert master.reference_to == ("Opportunity",)
    assert master.relationship_name == "Opportunity__r"
    assert (master.nillable, master.cascade_delete, master.updateable) == (False, True, False)
    children = {r.relationship_name: r for r in sobject(schema, "Opportunity").child_relationships}
    rel = children["Microsoft_Solutions__r"]
    assert (rel.child_object, rel.field, rel.cascade_delete) == (
        "Microsoft_Solution__c",
        "Opportunity__c",
        True,
    )
    solution_type = solution.field("Solution_Type__c")
    assert solution_type is not None
    assert [v.value for v in solution_type.picklist_values] == ["Name", "Category"]
    assert solution_type.defaulted_on_create
    assert solution_type.default_value == "Name"


def test_the_soql_catalog_sees_relationships(schema: Schema) -> None:
    info = schema.object("Opportunity")
    assert info is not None
    assert "microsoft_solutions__r" in info.child_relationships
    assert "opportunitycontactroles" in info.child_relationships
    child = schema.object("Microsoft_Solution__c")
    assert child is not None
    parent = child.parent_relationship("opportunity__r")
    assert parent is not None
    assert parent.name == "Opportunity__c"


def test_every_reference_and_child_relationship_resolves(schema: Schema) -> None:
    for obj in schema.objects():
        for field in obj.iter_fields():
            if field.type == "reference":
                assert field.reference_to, f"{obj.name}.{field.name}"
                assert field.relationship_name, f"{obj.name}.{field.name}"
                for target in field.reference_to:
                    assert schema.sobject(target) is not None, f"{obj.name}.{field.name}"
        for rel in obj.child_relationships:
            child = schema.sobject(rel.child_object)
            assert child is not None, rel
            pointer = child.field(rel.field)
            assert pointer is not None, rel
            assert obj.name in pointer.reference_to, rel
    names = [r.relationship_name for r in sobject(schema, "Account").child_relationships]
    assert {"Opportunities", "Contacts"} <= set(names)
    assert len(names) == len(set(names))


def test_address_fields_name_their_compound_field(schema: Schema) -> None:
    account = sobject(schema, "Account")
    city = account.field("BillingCity")
    compound = account.field("BillingAddress")
    assert city is not None
    assert compound is not None
    assert city.compound_field_name == "BillingAddress"
    assert (compound.type, compound.createable) == ("address", False)


def test_each_build_is_independent() -> None:
    first = build_schema()
    second = build_schema()
    sobject(first, "Opportunity").fields.pop("name")
    sobject(first, "Opportunity").child_relationships.clear()
    assert sobject(second, "Opportunity").field("Name") is not None
    assert sobject(second, "Opportunity").child_relationships


def test_custom_key_prefix_is_stable_and_unique() -> None:
    prefix = custom_key_prefix("Thing__c", set())
    assert prefix == custom_key_prefix("Thing__c", {"001"})
    assert prefix.startswith("a0")
    assert len(prefix) == 3
    other = custom_key_prefix("Thing__c", {prefix})
    assert other != prefix
    assert other.startswith("a0")
    every = {"a0" + c for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}
    with pytest.raises(MetadataError, match="62 custom objects"):
        custom_key_prefix("Thing__c", every)


# --- custom metadata from a project of the test's own ------------------------------------------


def write_field(root: Path, obj: str, name: str, body: str) -> Path:
    path = root / "force-app/main/default/objects" / obj / "fields" / f"{name}.field-meta.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomField xmlns="{NS}">\n'
        f"<fullName>{name}</fullName>\n<label>{name}</label>\n{body}\n</CustomField>\n"
    )
    return path


def write_object(root: Path, name: str, body: str = "") -> None:
    folder = root / "force-app/main/default/objects" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.object-meta.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomObject xmlns="{NS}">\n'
        f"<label>Widget</label><pluralLabel>Widgets</pluralLabel>{body}"
        "<sharingModel>ReadWrite</sharingModel></CustomObject>\n"
    )


def test_every_supported_field_type_maps_to_its_describe_type(tmp_path: Path) -> None:
    auto_number = (
        "<nameField><label>No</label><type>AutoNumber</type>"
        "<displayFormat>W-{0000}</displayFormat></nameField>"
    )
    write_object(tmp_path, "Widget__c", auto_number)
    cases = {
        "Num__c": ("<type>Number</type><precision>18</precision><scale>2</scale>", "double"),
        "Money__c": ("<type>Currency</type><precision>16</precision><scale>2</scale>", "currency"),
        "Pct__c": ("<type>Percent</type><precision>5</precision><scale>1</scale>", "percent"),
        "Day__c": ("<type>Date</type>", "date"),
        "At__c": ("<type>DateTime</type>", "datetime"),
        "Mail__c": ("<type>Email</type><externalId>true</externalId>", "email"),
        "Tel__c": ("<type>Phone</type>", "phone"),
        "Short__c": ("<type>TextArea</type>", "textarea"),
        "Rich__c": (
            "<type>Html</type><length>32768</length><visibleLines>5</visibleLines>",
            "textarea",
        ),
        "Tags__c": (
            "<type>MultiselectPicklist</type><valueSet><valueSetDefinition>"
            "<value><fullName>A</fullName><default>false</default><label>A</label></value>"
            "</valueSetDefinition></valueSet><visibleLines>4</visibleLines>",
            "multipicklist",
        ),
        "Account__c": (
            "<type>Lookup</type><referenceTo>Account</referenceTo>"
            "<relationshipName>Widgets</relationshipName><deleteConstraint>SetNull"
            "</deleteConstraint>",
            "reference",
        ),
        "Required__c": ("<type>Text</type><length>10</length><required>true</required>", "string"),
    }
    for name, (body, _) in cases.items():
        write_field(tmp_path, "Widget__c", name, body)
    schema = build_schema(metadata=load_custom_metadata(tmp_path))
    widget = sobject(schema, "Widget__c")
    for name, (_, kind) in cases.items():
        field = widget.field(name)
        assert field is not None, name
        assert field.type == kind, name
        assert field.custom
    money = widget.field("Money__c")
    rich = widget.field("Rich__c")
    lookup = widget.field("Account__c")
    name_field = widget.field("Name")
    required = widget.field("Required__c")
    mail = widget.field("Mail__c")
    assert money is not None
    assert rich is not None
    assert lookup is not None
    assert name_field is not None
    assert required is not None
    assert mail is not None
    assert (money.precision, money.scale) == (16, 2)
    assert (rich.length, rich.html_formatted, rich.filterable) == (32768, True, False)
    assert (lookup.nillable, lookup.cascade_delete, lookup.relationship_name) == (
        True,
        False,
        "Account__r",
    )
    account_children = {r.relationship_name for r in sobject(schema, "Account").child_relationships}
    assert "Widgets__r" in account_children
    assert (name_field.auto_number, name_field.createable) == (True, False)
    assert required.required_on_create
    assert mail.external_id
    assert widget.field("OwnerId") is not None, "not a detail object, so it has an owner"
    referral = sobject(schema, "Opportunity").field("Referral_Identifier__c")
    assert referral is None, "only the test's own metadata is applied"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<type>Geolocation</type>", "field type 'Geolocation' is not emulated"),
        ("<type>Text</type>", "<length> is required"),
        ("<type>Text</type><length>ten</length>", "must be a whole number"),
        ("<type>Text</type><length>10</length><formula>1</formula>", "formula fields"),
        ("<type>Text</type><length>10</length><defaultValue>'x'</defaultValue>", "default value"),
        (
            "<type>Picklist</type><valueSet><valueSetName>Global</valueSetName></valueSet>",
            "global value sets",
        ),
        ("<type>Picklist</type><valueSet><valueSetDefinition/></valueSet>", "no values"),
        ("<type>MasterDetail</type><referenceTo>Opportunity</referenceTo>", "relationshipName"),
        (
            "<type>Lookup</type><referenceTo>Campaign</referenceTo>"
            "<relationshipName>X</relationshipName>",
            "referenceTo Campaign",
        ),
    ],
)
def test_unusable_fields_are_refused_naming_the_file(
    tmp_path: Path, body: str, message: str
) -> None:
    path = write_field(tmp_path, "Opportunity", "Bad__c", body)
    with pytest.raises(MetadataError, match=message) as caught:
        build_schema(metadata=load_custom_metadata(tmp_path))
    assert str(path) in str(caught.value)


def test_a_doctype_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "force-app/main/default/objects/Opportunity/fields/X__c.field-meta.xml"
    path.parent.mkdir(parents=True)
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
        f'<CustomField xmlns="{NS}"><fullName>X__c</fullName><type>Text</type></CustomField>'
    )
    with pytest.raises(MetadataError, match="DOCTYPE"):
        load_custom_metadata(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<CustomField", "not well-formed"),
        ('<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata"/>', "expected CustomField"),
        ("<CustomField><fullName>X__c</fullName></CustomField>", "namespace"),
        (f'<CustomField xmlns="{NS}"><fullName>Y__c</fullName></CustomField>', "does not match"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "force-app/main/default/objects/Opportunity/fields/X__c.field-meta.xml"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(MetadataError, match=message):
        load_custom_metadata(tmp_path)


def test_a_standard_field_name_without_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "force-app/main/default/objects/Opportunity/fields/Name.field-meta.xml"
    path.parent.mkdir(parents=True)
    path.write_text(f'<CustomField xmlns="{NS}"><fullName>Name</fullName></CustomField>')
    with pytest.raises(MetadataError, match="end in __c"):
        load_custom_metadata(tmp_path)


def test_a_custom_object_needs_its_object_file(tmp_path: Path) -> None:
    write_field(tmp_path, "Widget__c", "A__c", "<type>Date</type>")
    with pytest.raises(MetadataError, match=r"has no Widget__c\.object-meta\.xml"):
        load_custom_metadata(tmp_path)


def test_fields_on_objects_the_sandbox_does_not_describe_are_refused(tmp_path: Path) -> None:
    write_field(tmp_path, "Campaign", "A__c", "<type>Date</type>")
    with pytest.raises(MetadataError, match="object Campaign is not described"):
        build_schema(metadata=load_custom_metadata(tmp_path))


def test_a_project_without_objects_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="no objects folder"):
        load_custom_metadata(tmp_path)
