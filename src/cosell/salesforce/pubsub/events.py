"""Change events as the Pub/Sub API delivers them: Avro payloads with a `ChangeEventHeader`.

A payload is Avro binary, decoded with the schema `GetSchema` returns for its `schema_id`
(cached by the client: a schema id names one schema forever). The header's `changedFields`,
`nulledFields` and `diffFields` are not names but bitmaps over the positions of the event
schema's fields: `"0x..."` where bit i set means field i (the header is field 0), and, for
compound fields, `"<parent position>-0x..."` over the parent's own fields. `field_names`
turns them back into names.

A header's `changeType` is CREATE, UPDATE, DELETE or UNDELETE; `GAP_*` when Salesforce could
not describe the change (no field data; the record ids are right); `GAP_OVERFLOW` when a
transaction changed more records than it describes (no record ids at all).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import fastavro

GAP_OVERFLOW = "GAP_OVERFLOW"


@dataclass(frozen=True)
class EventSchema:
    """An event schema: its id, its JSON and the parsed form fastavro reads with."""

    schema_id: str
    json: str
    parsed: Any

    @classmethod
    def from_json(cls, schema_id: str, text: str) -> EventSchema:
        """Parse a schema as `GetSchema` returns it.

        Raises:
            ValueError: the text is not an Avro schema.
        """
        try:
            parsed = fastavro.parse_schema(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"schema {schema_id} is not an Avro schema: {exc}") from exc
        return cls(schema_id=schema_id, json=text, parsed=parsed)

    @property
    def field_list(self) -> list[dict[str, Any]]:
        """The top-level fields, in position order."""
        fields: list[dict[str, Any]] = self.parsed["fields"]
        return fields

    def decode(self, payload: bytes) -> dict[str, Any]:
        """One Avro-encoded payload as a dict."""
        record = fastavro.schemaless_reader(io.BytesIO(payload), self.parsed, self.parsed)
        if not isinstance(record, dict):
            raise TypeError(f"a payload of schema {self.schema_id} is not a record")
        return record


@dataclass(frozen=True)
class ChangeHeader:
    """The `ChangeEventHeader` of one change event, with field bitmaps turned into names."""

    entity_name: str
    record_ids: tuple[str, ...]
    change_type: str
    change_origin: str
    transaction_key: str
    commit_timestamp: int
    changed_fields: tuple[str, ...]

    @property
    def is_gap(self) -> bool:
        """A gap or overflow event: Salesforce could not say what changed."""
        return self.change_type.startswith("GAP_")

    def made_by(self, client: str) -> bool:
        """Whether `changeOrigin` names `client` (`...;client=<client>`): our own write."""
        for part in self.change_origin.split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip() == "client" and value.strip() == client:
                return True
        return False


@dataclass(frozen=True)
class ChangeEvent:
    """One delivered change event."""

    replay_id: bytes
    header: ChangeHeader
    fields: Mapping[str, Any]


def _bits(value: str) -> list[int]:
    number = int(value, 16)
    return [i for i in range(number.bit_length()) if number >> i & 1]


def field_names(bitmaps: Sequence[str], schema: EventSchema) -> tuple[str, ...]:
    """Field names of `changedFields`-style bitmaps over `schema`'s field positions.

    Positions past the schema (a field added after the event was written) are skipped.
    """
    fields = schema.field_list
    names: list[str] = []
    for bitmap in bitmaps:
        parent, sep, bits = bitmap.partition("-")
        if not sep:
            names.extend(fields[i]["name"] for i in _bits(parent) if i < len(fields))
            continue
        parent_field = fields[int(parent)] if int(parent) < len(fields) else None
        nested = _record_of(parent_field["type"]) if parent_field else None
        if parent_field is None or nested is None:
            continue
        children = nested["fields"]
        names.extend(
            f"{parent_field['name']}.{children[i]['name']}"
            for i in _bits(bits)
            if i < len(children)
        )
    return tuple(names)


def _record_of(avro_type: Any) -> dict[str, Any] | None:
    if isinstance(avro_type, dict) and avro_type.get("type") == "record":
        return avro_type
    if isinstance(avro_type, list):
        for member in avro_type:
            found = _record_of(member)
            if found is not None:
                return found
    return None


def decode_event(replay_id: bytes, payload: bytes, schema: EventSchema) -> ChangeEvent:
    """A delivered event: its payload decoded, its header's bitmaps named.

    Raises:
        ValueError: the payload does not match the schema or has no `ChangeEventHeader`.
    """
    try:
        record = schema.decode(payload)
        raw = record.pop("ChangeEventHeader")
        header = ChangeHeader(
            entity_name=str(raw["entityName"]),
            record_ids=tuple(str(item) for item in raw.get("recordIds") or ()),
            change_type=str(raw["changeType"]),
            change_origin=str(raw.get("changeOrigin") or ""),
            transaction_key=str(raw.get("transactionKey") or ""),
            commit_timestamp=int(raw.get("commitTimestamp") or 0),
            changed_fields=field_names(raw.get("changedFields") or (), schema),
        )
    except (KeyError, TypeError, ValueError, EOFError, IndexError) as exc:
        raise ValueError(
            f"a change event of schema {schema.schema_id} is unreadable: {exc}"
        ) from exc
    return ChangeEvent(
        replay_id=replay_id,
        header=header,
        fields={name: value for name, value in record.items() if value is not None},
    )
