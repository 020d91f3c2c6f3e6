"""Change events as the Pub/Sub API delivers them: Avro decoding and the field bitmaps."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from cosell.salesforce.pubsub.events import EventSchema, decode_event, field_names

HEADER: dict[str, Any] = {
    "type": "record",
    "name": "ChangeEventHeader",
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": {"type": "array", "items": "string"}},
        {"name": "changeType", "type": "string"},
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
    ],
}
ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [
        {"name": "Street", "type": ["null", "string"], "default": None},
        {"name": "City", "type": ["null", "string"], "default": None},
        {"name": "Country", "type": ["null", "string"], "default": None},
    ],
}
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "OpportunityChangeEvent",
    "fields": [
        {"name": "ChangeEventHeader", "type": HEADER},
        {"name": "Name", "type": ["null", "string"], "default": None},
        {"name": "Amount", "type": ["null", "double"], "default": None},
        {"name": "BillingAddress", "type": ["null", ADDRESS], "default": None},
        {"name": "StageName", "type": ["null", "string"], "default": None},
    ],
}


def schema() -> EventSchema:
    return EventSchema.from_json("s1", json.dumps(SCHEMA))


def test_a_bitmap_names_the_fields_at_its_bit_positions() -> None:
    # bits 1 and 4: Name and StageName (bit 0 is the header)
    assert field_names(["0x12"], schema()) == ("Name", "StageName")


def test_a_compound_bitmap_names_the_parent_and_its_fields() -> None:
    # field 3 (BillingAddress), its fields 0 and 2
    assert field_names(["0x8", "3-0x5"], schema()) == (
        "BillingAddress",
        "BillingAddress.Street",
        "BillingAddress.Country",
    )


def test_positions_past_the_schema_are_skipped() -> None:
    assert field_names(["0x100"], schema()) == ()


def test_an_event_decodes_with_its_header_and_fields() -> None:
    record = {
        "ChangeEventHeader": {
            "entityName": "Opportunity",
            "recordIds": ["006000000000001AAA"],
            "changeType": "UPDATE",
            "changeOrigin": "com/salesforce/api/rest/62.0;client=cosell",
            "transactionKey": "tx-1",
            "commitTimestamp": 1_767_600_000_000,
            "changedFields": ["0x4"],
        },
        "Amount": 5.0,
    }
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(SCHEMA), record)
    event = decode_event(b"\x00\x01", buffer.getvalue(), schema())
    assert event.header.changed_fields == ("Amount",)
    assert event.header.made_by("cosell")
    assert not event.header.made_by("other")
    assert not event.header.is_gap
    assert event.fields == {"Amount": 5.0}


def test_an_unreadable_payload_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unreadable"):
        decode_event(b"", b"\x02", schema())


def test_a_schema_that_is_not_avro_is_refused() -> None:
    with pytest.raises(ValueError, match="not an Avro schema"):
        EventSchema.from_json("bad", '{"type": "nothing"}')
