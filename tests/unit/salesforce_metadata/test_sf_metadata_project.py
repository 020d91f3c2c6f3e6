"""cosell's Salesforce metadata: well-formed source files, the permission set, and no drift.

The drift check writes the project with `write_project`, parses it back with a parser written
here (independent of the sandbox's `orgschema`), and compares every field and object with what
the sandbox's describe reports for it, in both directions.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cosell.salesforce.metadata import (
    CHANGE_EVENTS_PERMISSION_SET,
    DEPLOY_INSTRUCTIONS,
    PERMISSION_SET,
    SELLER_PERMISSION_SET,
    MetadataWriteError,
    metadata_root,
    project_files,
    write_project,
)
from cosell_sandbox.salesforce.describe import describe_sobject
from cosell_sandbox.salesforce.orgschema import build_schema

NS = "http://soap.sforce.com/2006/04/metadata"
M = f"{{{NS}}}"
ROOT_ELEMENT_BY_SUFFIX = {
    ".field-meta.xml": "CustomField",
    ".object-meta.xml": "CustomObject",
    ".permissionset-meta.xml": "PermissionSet",
}
STANDARD_OBJECTS_COSELL_WRITES = ("Account", "Contact", "Lead", "Opportunity")
API_VERSION = "62.0"


def parse(path: Path) -> ET.Element:
    text = path.read_text(encoding="utf-8")
    assert "<!DOCTYPE" not in text.upper()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text)


def text(element: ET.Element, name: str) -> str | None:
    child = element.find(M + name)
    return None if child is None else child.text


def flag(element: ET.Element, name: str) -> bool:
    return text(element, name) == "true"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("metadata") / "project"
    write_project(out)
    return out


@pytest.fixture(scope="module")
def describes() -> dict[str, dict[str, Any]]:
    schema = build_schema()
    return {obj.name: describe_sobject(obj, api_version=API_VERSION) for obj in schema.objects()}


def xml_files(project: Path) -> list[Path]:
    return sorted(p for p in project.rglob("*.xml"))


def test_the_project_has_the_expected_files(project: Path) -> None:
    names = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    base = "force-app/main/default/"
    expected = {
        "sfdx-project.json",
        "README.md",
        f"{base}objects/Opportunity/fields/Referral_Identifier__c.field-meta.xml",
        f"{base}objects/Lead/fields/Referral_Identifier__c.field-meta.xml",
        f"{base}objects/Microsoft_Solution__c/Microsoft_Solution__c.object-meta.xml",
        f"{base}objects/Microsoft_Solution__c/fields/Opportunity__c.field-meta.xml",
        f"{base}permissionsets/{PERMISSION_SET}.permissionset-meta.xml",
        f"{base}permissionsets/{CHANGE_EVENTS_PERMISSION_SET}.permissionset-meta.xml",
    }
    assert expected <= names
    assert not any(n.endswith((".py", ".pyc")) or "__pycache__" in n for n in names)


def test_every_xml_file_is_well_formed_with_the_right_root_and_namespace(project: Path) -> None:
    files = xml_files(project)
    assert len(files) >= 20
    for path in files:
        suffix = next(s for s in ROOT_ELEMENT_BY_SUFFIX if path.name.endswith(s))
        root = parse(path)
        assert root.tag == M + ROOT_ELEMENT_BY_SUFFIX[suffix], path
        if suffix == ".field-meta.xml":
            assert text(root, "fullName") == path.name.removesuffix(suffix), path
            assert text(root, "description"), f"{path}: admins need a description"
            assert text(root, "inlineHelpText"), f"{path}: users need inline help"
            assert len(text(root, "inlineHelpText") or "") <= 510, "Salesforce's help limit"


def test_sfdx_project_json_points_at_force_app(project: Path) -> None:
    config = json.loads((project / "sfdx-project.json").read_text())
    assert config["packageDirectories"] == [{"path": "force-app", "default": True}]
    assert config["sourceApiVersion"].count(".") == 1


def test_the_readme_quotes_the_deploy_instructions_verbatim() -> None:
    readme = (metadata_root() / "README.md").read_text(encoding="utf-8")
    assert DEPLOY_INSTRUCTIONS in readme
    assert "test.salesforce.com" in DEPLOY_INSTRUCTIONS
    assert "login.salesforce.com" in DEPLOY_INSTRUCTIONS
    assert DEPLOY_INSTRUCTIONS.index("test.salesforce.com") < DEPLOY_INSTRUCTIONS.index(
        "login.salesforce.com"
    ), "sandbox first, then production"


def test_opportunity_fields_match_the_data_model(project: Path) -> None:
    fields_dir = project / "force-app/main/default/objects/Opportunity/fields"
    found = {p.name.removesuffix(".field-meta.xml"): parse(p) for p in fields_dir.iterdir()}
    assert set(found) == {
        "Sync_with_Partner_Center__c",
        "Referral_Identifier__c",
        "Referral_Link__c",
        "How_can_Microsoft_help__c",
        "Referral_Visibility__c",
        "Microsoft_CRM_Identifier__c",
        "Partner_Center_Status__c",
        "Partner_Center_Sync_Status__c",
        "Partner_Center_Sync_Error__c",
        "Audit__c",
        "Deal_Type__c",
        "Partner_Role__c",
        "Solution_Area__c",
        "Solution_Play__c",
        "Marketplace_Purchase_Intent__c",
    }
    ref = found["Referral_Identifier__c"]
    assert (text(ref, "type"), text(ref, "length")) == ("Text", "100")
    assert flag(ref, "externalId")
    assert flag(ref, "unique")
    assert not flag(ref, "caseSensitive")
    assert text(found["Sync_with_Partner_Center__c"], "defaultValue") == "false"
    assert (text(found["Audit__c"], "type"), text(found["Audit__c"], "length")) == (
        "LongTextArea",
        "100000",
    )
    assert text(found["Audit__c"], "visibleLines")
    assert text(found["Partner_Center_Sync_Error__c"], "length") == "255"
    help_values = [
        v.findtext(M + "fullName") for v in found["How_can_Microsoft_help__c"].iter(M + "value")
    ]
    assert help_values == [
        "Workload specific value proposition",
        "Customer technical architecture",
        "Proof of concept or demo",
        "Quotes or licensing",
        "Post sales customer success",
        "General or other",
    ]
    status = found["Partner_Center_Sync_Status__c"]
    assert [v.findtext(M + "fullName") for v in status.iter(M + "value")] == [
        "Synced",
        "Pending",
        "Error",
        "Paused",  # a deal paused by hand (cosell pause KEY, the console)
    ]
    assert status.findtext(f"{M}valueSet/{M}restricted") == "true"
    deal_type = found["Deal_Type__c"]
    assert [v.findtext(M + "fullName") for v in deal_type.iter(M + "value")] == [
        "Private",
        "Partner-led",
        "Co-sell",
    ]
    for name in ("Deal_Type__c", "Partner_Role__c", "Solution_Area__c", "Solution_Play__c"):
        assert found[name].findtext(f"{M}valueSet/{M}restricted") == "true", name
    intent = found["Marketplace_Purchase_Intent__c"]
    assert [v.findtext(M + "fullName") for v in intent.iter(M + "value")] == [
        "Yes",
        "No",
        "Have not decided",
    ]


def test_lead_carries_the_fields_that_apply_to_leads(project: Path) -> None:
    fields_dir = project / "force-app/main/default/objects/Lead/fields"
    names = {p.name.removesuffix(".field-meta.xml") for p in fields_dir.iterdir()}
    assert "Referral_Identifier__c" in names
    assert "Sync_with_Partner_Center__c" in names
    assert "Referral_Visibility__c" not in names
    assert "Microsoft_CRM_Identifier__c" not in names


# --- the drift check: the written project against the sandbox's describe ----------------------


@dataclass(frozen=True)
class Expected:
    type: str
    length: int | None = None


def expected_describe(field_xml: ET.Element) -> Expected:
    """What a real org's describe reports for a CustomField, by its XML type."""
    kind = text(field_xml, "type")
    length = text(field_xml, "length")
    table = {
        "Checkbox": Expected("boolean", 0),
        "Text": Expected("string", int(length or -1)),
        "LongTextArea": Expected("textarea", int(length or -1)),
        "Url": Expected("url", 255),
        "Picklist": Expected("picklist", 255),
        "MasterDetail": Expected("reference", 18),
    }
    assert kind in table, f"the drift check does not know XML type {kind}; extend it"
    return table[kind]


def field_describe(describe: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [f for f in describe["fields"] if f["name"] == name]
    assert len(matches) == 1, f"{describe['name']}.{name} is not in the sandbox's describe"
    return matches[0]


def test_written_fields_match_the_sandbox_describe_field_by_field(
    project: Path, describes: dict[str, dict[str, Any]]
) -> None:
    objects_dir = project / "force-app/main/default/objects"
    checked = 0
    for path in sorted(objects_dir.glob("*/fields/*.field-meta.xml")):
        object_name = path.parent.parent.name
        xml = parse(path)
        name = text(xml, "fullName")
        assert name is not None
        got = field_describe(describes[object_name], name)
        want = expected_describe(xml)
        where = f"{object_name}.{name}"
        assert got["custom"] is True, where
        assert got["label"] == text(xml, "label"), where
        assert got["inlineHelpText"] == text(xml, "inlineHelpText"), where
        assert got["type"] == want.type, where
        assert got["length"] == want.length, where
        assert got["externalId"] is flag(xml, "externalId"), where
        assert got["unique"] is flag(xml, "unique"), where
        assert got["caseSensitive"] is flag(xml, "caseSensitive"), where
        assert got["idLookup"] is (flag(xml, "externalId") or flag(xml, "unique")), where
        kind = text(xml, "type")
        if kind == "Checkbox":
            assert got["defaultValue"] is (text(xml, "defaultValue") == "true"), where
            assert got["nillable"] is False, where
            assert got["defaultedOnCreate"] is True, where
        elif kind == "Picklist":
            values = [
                {
                    "value": v.findtext(M + "fullName"),
                    "label": v.findtext(M + "label"),
                    "defaultValue": v.findtext(M + "default") == "true",
                    "active": True,
                    "validFor": None,
                }
                for v in xml.iter(M + "value")
            ]
            assert got["picklistValues"] == values, where
            restricted = xml.findtext(f"{M}valueSet/{M}restricted") == "true"
            assert got["restrictedPicklist"] is restricted, where
            assert got["defaultedOnCreate"] is any(v["defaultValue"] for v in values), where
        elif kind == "MasterDetail":
            parent = text(xml, "referenceTo")
            assert parent is not None
            assert got["referenceTo"] == [parent], where
            assert got["relationshipName"] == name.removesuffix("__c") + "__r", where
            assert got["cascadeDelete"] is True, where
            assert got["nillable"] is False, where
            assert got["createable"] is True, where
            assert got["updateable"] is flag(xml, "reparentableMasterDetail"), where
            child = {
                "cascadeDelete": True,
                "childSObject": object_name,
                "deprecatedAndHidden": False,
                "field": name,
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": f"{text(xml, 'relationshipName')}__r",
                "restrictedDelete": False,
            }
            assert child in describes[parent]["childRelationships"], where
        else:
            assert got["nillable"] is (text(xml, "required") != "true"), where
        checked += 1
    assert checked == 26  # every field of the metadata project


def test_written_objects_match_the_sandbox_describe(
    project: Path, describes: dict[str, dict[str, Any]]
) -> None:
    objects_dir = project / "force-app/main/default/objects"
    files = sorted(objects_dir.glob("*/*.object-meta.xml"))
    assert [p.parent.name for p in files] == ["Microsoft_Solution__c"]
    for path in files:
        xml = parse(path)
        got = describes[path.parent.name]
        assert got["custom"] is True
        assert got["label"] == text(xml, "label")
        assert got["labelPlural"] == text(xml, "pluralLabel")
        assert got["keyPrefix"].startswith("a0")
        assert len(got["keyPrefix"]) == 3
        name_field = field_describe(got, "Name")
        assert name_field["label"] == xml.findtext(f"{M}nameField/{M}label")
        assert name_field["nameField"] is True
        assert name_field["type"] == "string"
        field_names = {f["name"] for f in got["fields"]}
        if text(xml, "sharingModel") == "ControlledByParent":
            assert "OwnerId" not in field_names, "a detail record is owned through its master"
        assert {"Id", "IsDeleted", "CreatedDate", "SystemModstamp"} <= field_names


def test_every_custom_field_the_sandbox_describes_has_a_file(
    project: Path, describes: dict[str, dict[str, Any]]
) -> None:
    objects_dir = project / "force-app/main/default/objects"
    on_disk = {
        (p.parent.parent.name, p.name.removesuffix(".field-meta.xml"))
        for p in objects_dir.glob("*/fields/*.field-meta.xml")
    }
    described = {
        (name, f["name"])
        for name, describe in describes.items()
        for f in describe["fields"]
        if f["custom"]
    }
    assert described == on_disk


# --- the permission set ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def permission_set(project: Path) -> ET.Element:
    path = (
        project / f"force-app/main/default/permissionsets/{PERMISSION_SET}.permissionset-meta.xml"
    )
    return parse(path)


def test_the_permission_set_covers_every_custom_field(
    project: Path, permission_set: ET.Element
) -> None:
    objects_dir = project / "force-app/main/default/objects"
    custom_fields = set()
    for path in objects_dir.glob("*/fields/*.field-meta.xml"):
        xml = parse(path)
        if text(xml, "type") == "MasterDetail":
            continue  # Salesforce refuses field permissions on master-detail fields
        custom_fields.add(f"{path.parent.parent.name}.{text(xml, 'fullName')}")
    granted = {}
    for entry in permission_set.findall(M + "fieldPermissions"):
        granted[text(entry, "field")] = (flag(entry, "readable"), flag(entry, "editable"))
    assert set(granted) == custom_fields
    assert all(access == (True, True) for access in granted.values())


def test_the_permission_set_grants_no_delete_on_standard_objects(
    permission_set: ET.Element,
) -> None:
    perms = {
        text(entry, "object"): entry for entry in permission_set.findall(M + "objectPermissions")
    }
    assert set(perms) == {*STANDARD_OBJECTS_COSELL_WRITES, "Microsoft_Solution__c"}
    for name in STANDARD_OBJECTS_COSELL_WRITES:
        entry = perms[name]
        assert flag(entry, "allowRead")
        assert flag(entry, "allowCreate")
        assert flag(entry, "allowEdit")
        assert not flag(entry, "allowDelete"), name
        assert not flag(entry, "modifyAllRecords"), name
        assert not flag(entry, "viewAllRecords"), name
    solutions = perms["Microsoft_Solution__c"]
    assert all(
        flag(solutions, key) for key in ("allowRead", "allowCreate", "allowEdit", "allowDelete")
    )
    user_permissions = {
        text(entry, "name"): flag(entry, "enabled")
        for entry in permission_set.findall(M + "userPermissions")
    }
    assert user_permissions == {"ApiEnabled": True}
    assert text(permission_set, "label")
    assert text(permission_set, "hasActivationRequired") == "false"


def test_the_permission_set_explains_each_object_choice_in_a_comment(project: Path) -> None:
    path = (
        project / f"force-app/main/default/permissionsets/{PERMISSION_SET}.permissionset-meta.xml"
    )
    raw = path.read_text()
    for name in (*STANDARD_OBJECTS_COSELL_WRITES, "Microsoft_Solution__c", "API access"):
        assert f"<!-- {name}" in raw, name
    for governed in ("OpportunityContactRole", "OpportunityTeamMember", "ContentNote"):
        assert governed in raw, f"say why {governed} needs no permission"


# --- write_project -----------------------------------------------------------------------------


def test_write_project_writes_every_packaged_file_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    written = write_project(out)
    assert written == sorted(written)
    assert [p.relative_to(out).as_posix() for p in written] == [rel for rel, _ in project_files()]
    for relative, source in project_files():
        assert (out / relative).read_bytes() == source.read_bytes()


def test_write_project_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(MetadataWriteError, match=r"not empty.*--force"):
        write_project(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_write_project_with_force_overwrites_and_keeps_other_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    (tmp_path / "sfdx-project.json").write_text("stale")
    written = write_project(tmp_path, force=True)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert json.loads((tmp_path / "sfdx-project.json").read_text())["name"] == "cosell"
    assert tmp_path / "sfdx-project.json" in written


def test_write_project_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(MetadataWriteError, match="is a file"):
        write_project(target)


def test_write_project_reports_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "force-app"
    blocker.write_text("a file where a folder must go")
    with pytest.raises(MetadataWriteError, match=r"cannot write .*choose a directory"):
        write_project(tmp_path, force=True)


def test_the_metadata_ships_in_the_wheel() -> None:
    # hatchling's wheel target packages everything under src/cosell that git does not ignore;
    # make sure the project files are not ignored and live inside the package.
    pyproject = (Path(__file__).parents[3] / "pyproject.toml").read_text()
    assert 'packages = ["src/cosell"]' in pyproject
    root = Path(str(metadata_root()))
    assert root.parts[-3:] == ("cosell", "salesforce", "metadata")
    assert (root / "__init__.py").is_file()
    assert all(not rel.startswith(".") for rel, _ in project_files())


def test_the_seller_permission_set_edits_only_what_a_seller_sets(project: Path) -> None:
    folder = project / "force-app/main/default/permissionsets"
    seller = parse(folder / f"{SELLER_PERMISSION_SET}.permissionset-meta.xml")
    access = {
        text(entry, "field"): (flag(entry, "readable"), flag(entry, "editable"))
        for entry in seller.findall(M + "fieldPermissions")
    }
    integration = parse(
        project / f"force-app/main/default/permissionsets/{PERMISSION_SET}.permissionset-meta.xml"
    )
    every_field = {text(e, "field") for e in integration.findall(M + "fieldPermissions")}
    assert set(access) == every_field
    assert all(readable for readable, _ in access.values())
    editable = {name for name, (_, edit) in access.items() if edit}
    assert editable == {
        "Opportunity.Sync_with_Partner_Center__c",
        "Opportunity.How_can_Microsoft_help__c",
        "Opportunity.Referral_Visibility__c",
        "Opportunity.Deal_Type__c",
        "Opportunity.Partner_Role__c",
        "Opportunity.Solution_Area__c",
        "Opportunity.Solution_Play__c",
        "Opportunity.Marketplace_Purchase_Intent__c",
        "Lead.Sync_with_Partner_Center__c",
        "Lead.How_can_Microsoft_help__c",
        "Microsoft_Solution__c.Solution_Id__c",
        "Microsoft_Solution__c.Solution_Type__c",
    }
    assert "Opportunity.Referral_Identifier__c" not in editable
    objects = [text(e, "object") for e in seller.findall(M + "objectPermissions")]
    assert objects == ["Microsoft_Solution__c"]
    assert seller.findall(M + "userPermissions") == []


def test_elements_are_in_metadata_api_order(project: Path) -> None:
    # The Metadata API rejects an element out of its schema sequence ("invalid at this
    # location"); its sequences are fullName first, then alphabetical.
    def check(element: ET.Element, where: str) -> None:
        tags = [child.tag.removeprefix(M) for child in element]
        rest = tags[1:] if tags[:1] == ["fullName"] else tags
        assert rest == sorted(rest), f"{where}: {tags}"
        for child in element:
            if len(child):
                check(child, f"{where}/{child.tag.removeprefix(M)}")

    for path in xml_files(project):
        check(parse(path), str(path))


def test_the_change_events_permission_set_grants_only_view_all_records(project: Path) -> None:
    from cosell.sync.engine.changestream import OBJECTS

    folder = project / "force-app/main/default/permissionsets"
    path = folder / f"{CHANGE_EVENTS_PERMISSION_SET}.permissionset-meta.xml"
    change_events = parse(path)
    perms = {
        text(entry, "object"): entry for entry in change_events.findall(M + "objectPermissions")
    }
    # Every object of the change source that has a View All Records permission; the contact
    # role has none (it follows its opportunity), which the comment explains.
    assert set(perms) == set(OBJECTS) - {"OpportunityContactRole"}
    assert set(perms) == {"Opportunity", "Lead", "Microsoft_Solution__c"}
    for name, entry in perms.items():
        assert flag(entry, "viewAllRecords"), name
        assert flag(entry, "allowRead"), name  # Salesforce requires read with View All
        for key in ("allowCreate", "allowEdit", "allowDelete", "modifyAllRecords"):
            assert not flag(entry, key), (name, key)
    assert not change_events.findall(M + "fieldPermissions")
    assert not change_events.findall(M + "userPermissions")
    assert text(change_events, "label")
    assert text(change_events, "hasActivationRequired") == "false"
    raw = path.read_text()
    assert "Cosell_Integration" in raw, "say why it is separate"
    assert "OpportunityContactRole" in raw
    assert "cdc-security-perms" in raw
    assert CHANGE_EVENTS_PERMISSION_SET in DEPLOY_INSTRUCTIONS
