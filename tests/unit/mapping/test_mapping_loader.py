"""Mapping files: every problem is reported with its file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosell.mapping import MappingError, load_mapping, parse_mapping
from cosell.mapping.loader import default_mapping_text

HEAD = """\
version: 1
stages:
  on_hold_stage: Prospecting
  active_stage: Qualification
  won_stage: Closed Won
  lost_stage: Closed Lost
fields:
"""
NAME_FIELD = """\
  - name: name
    partner_center: name
    salesforce: Opportunity.Name
    direction: both
    owner: salesforce
"""


def problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, "m.yaml")
    return [str(p) for p in caught.value.problems]


def test_a_minimal_mapping_loads_and_knows_its_places() -> None:
    mapping = parse_mapping(HEAD + NAME_FIELD, "m.yaml")
    assert mapping.source == "m.yaml"
    assert [f.name for f in mapping.fields] == ["name"]
    assert mapping.place("fields", 0, "salesforce") == "m.yaml:10:17"
    assert mapping.place("fields", 0, "no such key") == "m.yaml:8:5"
    assert mapping.place("stages", "won_stage") == "m.yaml:5:14"
    assert mapping.place("nowhere") == "m.yaml"


def test_bad_yaml_is_reported_where_the_parser_stopped() -> None:
    found = problems(HEAD + "  - name: [unclosed\n")
    assert len(found) == 1
    assert found[0].startswith("m.yaml:9:")
    assert "not valid YAML" in found[0]


def test_unknown_keys_are_reported_at_the_key_with_the_allowed_keys() -> None:
    text = HEAD + NAME_FIELD + "    colour: red\n"
    assert problems(text) == [
        "m.yaml:13:5: fields[0].colour: unknown key (allowed here: name, partner_center, "
        "salesforce, direction, owner, transform, read_only_after_create, read_only_once_set, "
        "default, "
        "default_days_from_today, description)"
    ]
    top = problems("extra: 1\n" + HEAD + NAME_FIELD)
    assert top[0].startswith("m.yaml:1:1: extra: unknown key (allowed here: version, opportunity")


def test_a_bad_enum_value_is_reported_at_the_value() -> None:
    text = HEAD + NAME_FIELD.replace("direction: both", "direction: sideways")
    assert problems(text) == [
        "m.yaml:11:16: fields[0].direction: Input should be 'both', 'to_salesforce' or "
        "'to_partner_center'"
    ]


def test_an_unknown_transform_lists_the_known_ones() -> None:
    text = HEAD + NAME_FIELD + "    transform: money\n"
    (found,) = problems(text)
    assert found.startswith("m.yaml:13:16: fields[0].transform: unknown transform 'money'")
    assert "'amount'" in found
    assert "'stage'" in found


def test_an_unknown_key_inside_a_transform_object() -> None:
    text = (
        HEAD
        + NAME_FIELD
        + "    transform:\n      type: picklist\n      values: {A: a}\n      mode: strict\n"
    )
    (found,) = problems(text)
    assert found.startswith("m.yaml:16:7: fields[0].transform.picklist.mode: unknown key")
    assert "partner_center_default" in found


def test_duplicate_field_names_and_targets_are_reported_at_the_second() -> None:
    text = HEAD + NAME_FIELD + NAME_FIELD
    assert problems(text) == [
        "m.yaml:13:11: fields[1].name: duplicate field name 'name': fields[0] already maps it; "
        "each may be mapped once",
        "m.yaml:15:17: fields[1].salesforce: duplicate Salesforce field 'Opportunity.Name': "
        "fields[0] already maps it; each may be mapped once",
        "m.yaml:14:21: fields[1].partner_center: duplicate Partner Center path 'name': "
        "fields[0] already maps it; each may be mapped once",
    ]


def test_a_duplicate_yaml_key_is_reported_even_when_the_rest_is_valid() -> None:
    text = HEAD + NAME_FIELD + "    owner: partner_center\n"
    assert problems(text) == [
        "m.yaml:13:5: duplicate key 'owner': it is already given at 12:5; give each key once"
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = (
        HEAD.replace("won_stage: Closed Won", "won_stage: Closed Won\n  colour: red")
        + NAME_FIELD.replace("owner: salesforce", "owner: nobody")
        + "  - name: Deal Value\n"
        "    partner_center: details/dealValue\n"
        "    salesforce: Lead.Amount\n"
        "    direction: both\n"
        "    owner: salesforce\n"
        "    transform: amount\n"
        "    default: lots\n"
        "  - partner_center: /bad path/\n"
    )
    found = problems(text)
    places = [p.split(": ", 1)[0] for p in found]
    assert places == [
        "m.yaml:6:3",
        "m.yaml:13:12",
        "m.yaml:14:11",
        "m.yaml:16:17",
        "m.yaml:20:14",
        "m.yaml:21:5",
        "m.yaml:21:21",
        "m.yaml:21:5",
        "m.yaml:21:5",
        "m.yaml:21:5",
    ]
    joined = "\n".join(found)
    assert "stages.colour: unknown key" in joined
    assert "fields[0].owner: Input should be 'partner_center' or 'salesforce'" in joined
    assert "fields[1].name: 'Deal Value' is not a field name" in joined
    assert (
        "fields[1].salesforce: 'Lead.Amount' must be Opportunity.<Field> or Account.<Field>"
        in joined
    )
    assert "fields[1].default: Value error, " not in joined
    assert "fields[1].default: default 'lots' does not fit the transform" in joined
    assert "fields[2].partner_center: '/bad path/' is not a referral path" in joined
    assert "fields[2].name: required, but missing" in joined


def test_stage_table_and_stage_field_consistency() -> None:
    text = (
        HEAD.replace("active_stage: Qualification", "active_stage: Prospecting").replace(
            "fields:", "  reason_field: why\nfields:"
        )
        + NAME_FIELD.replace("transform", "x")
        + "  - name: stage\n"
        "    partner_center: details/notes\n"
        "    salesforce: Account.Name\n"
        "    direction: both\n"
        "    owner: partner_center\n"
        "    transform: stage\n"
        "  - name: status\n"
        "    partner_center: status\n"
        "    salesforce: Opportunity.Description\n"
        "    direction: both\n"
        "    owner: partner_center\n"
    )
    found = problems(text)
    assert found == [
        "m.yaml:15:21: fields[1].partner_center: the stage transform reads and writes status "
        "and substatus: its partner_center path must be 'status'",
        "m.yaml:16:17: fields[1].salesforce: the stage field must be on the Opportunity",
        "m.yaml:20:5: fields[2].transform: status is mapped with the stage transform only "
        "(transform: stage)",
        "m.yaml:4:17: stages.active_stage: stage 'Prospecting' is both on_hold_stage and "
        "active_stage; each stage may have one meaning",
        "m.yaml:7:17: stages.reason_field: reason_field 'why' is not a field of the mapping; "
        "name a mapped field (e.g. one mapped from Opportunity.Loss_Reason__c)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "m.yaml: the mapping file is empty"),
        ("- a\n- b\n", "m.yaml:1:1: a mapping file is a YAML object with stages and fields"),
        ("? [a]\n: b\n", "m.yaml:1:3: a key must be plain text"),
    ],
)
def test_files_that_are_not_a_mapping(text: str, message: str) -> None:
    assert problems(text)[0] == message


def test_keys_are_text_as_written() -> None:
    text = (
        HEAD
        + NAME_FIELD.replace("name: name\n", "name: help\n", 1)
        .replace("partner_center: name", "partner_center: inviteContext/assistanceRequestCode")
        .replace("Opportunity.Name", "Opportunity.How_can_Microsoft_help__c")
        + (
            "    transform:\n      type: picklist\n      values:\n        None: null\n"
            "        Yes: 'Yes'\n        No: 'No'\n"
        )
    )
    mapping = parse_mapping(text)
    transform = mapping.field("help").transform
    assert transform.model_dump()["values"] == {"None": None, "Yes": "Yes", "No": "No"}


def test_load_mapping_reads_a_file_and_reports_its_path(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(default_mapping_text(), encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping.source == str(path)
    assert mapping.place("fields", 1, "transform").startswith(f"{path}:")
    path.write_text(HEAD + NAME_FIELD.replace("both", "up"), encoding="utf-8")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"{path}:11:16: fields[0].direction")


def test_load_mapping_explains_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read the mapping file: No such file"):
        load_mapping(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(MappingError, match="not UTF-8 text"):
        load_mapping(binary)


def test_the_default_mapping_is_package_data() -> None:
    mapping = load_mapping()
    assert mapping.source.endswith("default-mapping.yaml")
    assert mapping.place("fields", 0, "name").startswith(mapping.source + ":")


def test_the_stage_is_the_field_named_stage() -> None:
    stage = (
        "  - name: phase\n"
        "    partner_center: status\n"
        "    salesforce: Opportunity.StageName\n"
        "    direction: both\n"
        "    owner: partner_center\n"
        "    transform: stage\n"
        "    default: Open/Whatever\n"
    )
    named = NAME_FIELD.replace("name: name\n", "name: stage\n", 1)
    found = problems(HEAD + named + stage)
    assert found == [
        "m.yaml:19:14: fields[1].default: default 'Open/Whatever' of the stage must be a Partner "
        "Center Status/Substatus such as 'New/Pending' or 'Active/Accepted'"
    ]
    found = problems(HEAD + named + stage.replace("    default: Open/Whatever\n", ""))
    assert found == [
        "m.yaml:13:11: fields[1].name: the field with the stage transform must be named 'stage' "
        "(the merge applies Partner Center's status rules to it by that name)",
        "m.yaml:8:5: fields[0].transform: the field named 'stage' is the stage: give it "
        "transform: stage",
    ]
