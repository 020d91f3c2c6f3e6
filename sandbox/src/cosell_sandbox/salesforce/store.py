"""The record store of the Salesforce sandbox: validation, system fields, transactions.

Records live in memory, one table per sObject type, as rows in wire shape (canonical field
names to the values the REST API returns, every field of the schema present, unset ones None),
so a REST GET and the SOQL engine (`RowSource`) read the same thing. Large `base64` fields
(`ContentNote.Content`) keep their bytes on the side; the row holds the blob URL, as
Salesforce returns it.

Invariants every write keeps:

- A write validates completely before it changes anything, so a failed write leaves no trace.
  Errors carry Salesforce's codes and messages (spec §2.7): INVALID_FIELD, INVALID_FIELD_FOR_
  INSERT_UPDATE, REQUIRED_FIELD_MISSING, STRING_TOO_LONG, INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,
  MALFORMED_ID, INVALID_CROSS_REFERENCE_KEY, DUPLICATE_VALUE, JSON_PARSER_ERROR, ...
- Every write runs inside a `Transaction`. The transaction keeps an undo journal (the previous
  version of every row it touched), so sObject Collections and Composite with `allOrNone` can
  roll back writes that already succeeded. Change events are buffered in the transaction and
  reach the change log only on commit, under one transactionKey.
- `SystemModstamp` (and `LastModifiedDate`, `CreatedDate`) strictly increase from one write to
  the next, even when the clock has not moved (a write in the same millisecond gets the last
  stamp plus one millisecond), so a poller on `SystemModstamp > watermark` never misses a write.
- Deletes are soft: the row stays (with `IsDeleted = true`) for queryAll and getDeleted; reads
  and writes of it answer ENTITY_IS_DELETED. Master-detail children are deleted with the parent.
  After 15 days in the recycle bin a record is purged (`purge_deleted`) and is gone for good.
- Unique and external-id fields are indexed (over live rows), so upserts stay O(1) at 10,000s
  of records.
- A converted lead (`IsConverted`) is read-only: updates answer CANNOT_UPDATE_CONVERTED_LEAD.
- Opportunity stage rules: `Probability` (unless given), `ForecastCategoryName` (unless given),
  `ForecastCategory`, `IsClosed` and `IsWon` follow `StageName`.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from cosell.clock import Clock
from cosell_sandbox.salesforce.changelog import ChangeLog, PendingChange
from cosell_sandbox.salesforce.errors import SalesforceSandboxError
from cosell_sandbox.salesforce.ids import IdFactory, SalesforceId, to_18
from cosell_sandbox.salesforce.orgprofile import (
    DUPLICATE_MATCH_FIELDS,
    DUPLICATE_MESSAGE,
    OrgProfile,
    evaluate,
)
from cosell_sandbox.salesforce.schema import FieldSchema, Schema, SObjectSchema
from cosell_sandbox.salesforce.values import (
    epoch_millis,
    format_datetime,
    parse_date,
    parse_datetime,
)

RECYCLE_BIN_RETENTION = timedelta(days=15)  # deleted records stay in the recycle bin 15 days
SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)
_STRING_TYPES = frozenset(
    {
        "string",
        "textarea",
        "picklist",
        "multipicklist",
        "combobox",
        "url",
        "email",
        "phone",
        "encryptedstring",
    }
)
_NUMBER_TYPES = frozenset({"double", "currency", "percent"})
_FORECAST_CATEGORY = {  # ForecastCategoryName (label) -> ForecastCategory (API value)
    "Pipeline": "Pipeline",
    "Best Case": "BestCase",
    "Commit": "Forecast",
    "Closed": "Closed",
    "Omitted": "Omitted",
}
_TEXT_PREVIEW_LENGTH = 255  # ContentNote.TextPreview holds the first 255 characters
_MESSAGE_VALUE_LENGTH = 100  # echo at most this much of a bad value back in a message
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TAG = re.compile(r"<[^>]+>")
# Pairs of fields that together must be unique among live rows (spec §3.5).
_UNIQUE_TOGETHER: dict[str, tuple[str, str]] = {
    "OpportunityTeamMember": ("OpportunityId", "UserId"),
    "ContentDocumentLink": ("ContentDocumentId", "LinkedEntityId"),
}


@dataclass(frozen=True)
class StageRule:
    """What an Opportunity stage implies (the `OpportunityStage` row)."""

    name: str
    probability: float | None
    is_closed: bool
    is_won: bool
    forecast_category: str


@dataclass(frozen=True)
class Actor:
    """Who writes, and through which channel (for CreatedById, commitUser, changeOrigin)."""

    user_id: str
    change_origin: str = ""
    api_version: str = "66.0"


@dataclass(frozen=True)
class UpsertResult:
    """The outcome of one upsert."""

    id: SalesforceId
    created: bool


class MultipleMatchesError(SalesforceSandboxError):
    """An upsert's external id matches several records (REST answers 300)."""

    def __init__(self, object_name: str, field_name: str, ids: list[str]) -> None:
        super().__init__(
            300,
            "DUPLICATE_EXTERNAL_ID",
            f"{field_name}: more than one record found for external id field: [{', '.join(ids)}]",
            fields=[field_name],
        )
        self.object_name = object_name
        self.ids = ids


def _fold(value: Any) -> Any:
    """A value as duplicate matching compares it (case-insensitive text; blank is None)."""
    if value is None or value == "":
        return None
    return value.strip().casefold() if isinstance(value, str) else value


def error(
    code: str, message: str, *, fields: list[str] | None = None, status: int = 400
) -> SalesforceSandboxError:
    """A Salesforce error for a write or a read (400 unless said otherwise)."""
    return SalesforceSandboxError(status, code, message, fields=fields)


def not_found() -> SalesforceSandboxError:
    """404 NOT_FOUND, as for a missing record."""
    return error("NOT_FOUND", "The requested resource does not exist", status=404)


def type_not_found(name: str) -> SalesforceSandboxError:
    """404 NOT_FOUND for an sObject type the org does not have."""
    return error(
        "NOT_FOUND",
        f"The requested resource does not exist: sObject type '{name}' is not supported; "
        "check the name against describeGlobal (/sobjects)",
        status=404,
    )


@dataclass
class _Undo:
    table: str
    record_id: str
    row: dict[str, Any] | None  # None: the row did not exist
    deleted_at: datetime | None
    blobs: dict[str, str] | None


@dataclass
class Transaction:
    """Writes that commit or roll back together."""

    actor: Actor
    key: str
    undo: list[_Undo] = field(default_factory=list)
    changes: list[PendingChange] = field(default_factory=list)
    touched: set[tuple[str, str]] = field(default_factory=set)  # (table, record id)
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # id -> dup alerts
    allow_duplicate_save: bool = False  # Sforce-Duplicate-Rule-Header: allowSave=true
    closed: bool = False


CommitHook = Callable[["Transaction"], None]


class RecordStore:
    """Every record of the emulated org; implements the SOQL engine's `RowSource`."""

    def __init__(
        self,
        schema: Schema,
        clock: Clock,
        ids: IdFactory,
        *,
        stage_rules: Mapping[str, StageRule],
        change_log: ChangeLog | None = None,
        corporate_currency: str = "USD",
    ) -> None:
        self.schema = schema
        self.clock = clock
        self.ids = ids
        self.stage_rules = dict(stage_rules)
        self.change_log = change_log or ChangeLog()
        self.corporate_currency = corporate_currency
        self.on_commit: list[CommitHook] = []
        self.profile = OrgProfile()  # the org's customisations (`orgprofile`); none by default
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}
        self._where: dict[str, str] = {}  # record id -> canonical object name (primary table)
        self._deleted: dict[str, datetime] = {}
        self._blobs: dict[str, dict[str, str]] = {}  # record id -> field -> base64
        self._index: dict[tuple[str, str], dict[Any, set[str]]] = {}
        self._last_stamp: datetime | None = None
        self._tx_counter = 0

    # ----------------------------------------------------------------- RowSource

    def rows(self, object_name: str, *, include_deleted: bool) -> Iterable[Mapping[str, Any]]:
        """Every row of `object_name`; deleted ones only when asked."""
        obj = self.schema.sobject(object_name)
        table = self._tables.get(obj.name if obj else object_name, {})
        if include_deleted:
            return list(table.values())
        return [row for rid, row in table.items() if rid not in self._deleted]

    def row(self, object_name: str, record_id: str) -> Mapping[str, Any] | None:
        """One row by id, deleted or not; None when there is none."""
        obj = self.schema.sobject(object_name)
        try:
            rid = to_18(record_id)
        except ValueError:
            return None
        return self._tables.get(obj.name if obj else object_name, {}).get(rid)

    # ----------------------------------------------------------------- lookups

    def sobject(self, name: str) -> SObjectSchema:
        """The schema of sObject `name`.

        Raises:
            SalesforceSandboxError: 404 NOT_FOUND for an unknown type.
        """
        obj = self.schema.sobject(name)
        if obj is None:
            raise type_not_found(name)
        return obj

    def object_of(self, record_id: str) -> str | None:
        """The object a live or deleted record belongs to, or None."""
        return self._where.get(record_id)

    def is_deleted(self, record_id: str) -> bool:
        """Whether the record is in the recycle bin."""
        return record_id in self._deleted

    def deleted_since(
        self, object_name: str, start: datetime, end: datetime
    ) -> list[tuple[str, datetime]]:
        """Records of `object_name` deleted in [start, end), oldest first."""
        table = self._tables.get(object_name, {})
        found = [
            (rid, at) for rid, at in self._deleted.items() if rid in table and start <= at < end
        ]
        return sorted(found, key=lambda item: item[1])

    def resolve_id(self, obj: SObjectSchema, value: str) -> SalesforceId:
        """`value` as an 18-character id of a live record of `obj`.

        Raises:
            SalesforceSandboxError: MALFORMED_ID (400), NOT_FOUND or ENTITY_IS_DELETED (404).
        """
        rid = self.check_id(obj, value)
        if rid not in self._tables.get(obj.name, {}):
            raise not_found()
        if rid in self._deleted:
            raise error("ENTITY_IS_DELETED", "entity is deleted", status=404)
        return rid

    def check_id(self, obj: SObjectSchema, value: str) -> SalesforceId:
        """`value` as an 18-character id with `obj`'s key prefix, whether or not it exists.

        Raises:
            SalesforceSandboxError: 400 MALFORMED_ID.
        """
        try:
            rid = to_18(value)
        except ValueError:
            raise error(
                "MALFORMED_ID",
                f"{obj.name} ID: id value of incorrect type: {value[:_MESSAGE_VALUE_LENGTH]}",
            ) from None
        if rid[:3] != obj.key_prefix:
            raise error(
                "MALFORMED_ID",
                f"{obj.name} ID: id value of incorrect type: {value} (a {obj.name} id starts "
                f"with {obj.key_prefix})",
            )
        return rid

    def get(self, obj: SObjectSchema, value: str) -> dict[str, Any]:
        """The live row with id `value` (a copy).

        Raises:
            SalesforceSandboxError: MALFORMED_ID, NOT_FOUND, ENTITY_IS_DELETED.
        """
        rid = self.resolve_id(obj, value)
        return dict(self._tables[obj.name][rid])

    def blob(self, record_id: str, field_name: str) -> bytes | None:
        """The bytes of a base64 field, or None when unset."""
        data = self._blobs.get(record_id, {}).get(field_name)
        return base64.b64decode(data) if data is not None else None

    def find_external(self, obj: SObjectSchema, spec: FieldSchema, value: Any) -> list[str]:
        """Ids of live records whose external-id (or Id) field equals `value`, oldest first."""
        if spec.name == "Id":
            try:
                rid = to_18(str(value))
            except ValueError:
                return []
            live = rid in self._tables.get(obj.name, {}) and rid not in self._deleted
            return [rid] if live else []
        key = self._index_key(spec, value)
        return sorted(self._index.get((obj.name, spec.name), {}).get(key, set()))

    def count(self) -> int:
        """Number of rows, deleted included (for stats)."""
        return sum(len(t) for t in self._tables.values())

    # ----------------------------------------------------------------- transactions

    def begin(self, actor: Actor) -> Transaction:
        """Start a transaction for `actor`."""
        self._tx_counter += 1
        key = f"{self.ids.pod}-{self.change_log.commit_number + 1:08x}-{self._tx_counter:08x}"
        return Transaction(actor=actor, key=key)

    def commit(self, tx: Transaction) -> None:
        """Make `tx`'s writes final and append its change events."""
        if tx.closed:
            raise RuntimeError("transaction already closed")
        tx.closed = True
        now = self.clock.now()
        self.change_log.append_commit(
            tx.changes,
            committed_at=now,
            transaction_key=tx.key,
            commit_user=tx.actor.user_id,
            change_origin=tx.actor.change_origin,
            commit_millis=epoch_millis(self._last_stamp or now),
        )
        for hook in self.on_commit:
            hook(tx)

    def rollback(self, tx: Transaction) -> None:
        """Undo every write of `tx`, newest first; no change events are produced."""
        if tx.closed:
            raise RuntimeError("transaction already closed")
        self.rollback_to(tx, (0, 0))
        tx.closed = True

    @staticmethod
    def savepoint(tx: Transaction) -> tuple[int, int]:
        """A mark to roll `tx` back to (`rollback_to`) without ending it."""
        return len(tx.undo), len(tx.changes)

    def rollback_to(self, tx: Transaction, mark: tuple[int, int]) -> None:
        """Undo the writes of `tx` made after `mark`, newest first; `tx` stays open."""
        undo_len, changes_len = mark
        for entry in reversed(tx.undo[undo_len:]):
            table = self._tables.setdefault(entry.table, {})
            current = table.get(entry.record_id)
            if current is not None:
                self._unindex(entry.table, entry.record_id, current)
            if entry.row is None:
                table.pop(entry.record_id, None)
                if self._where.get(entry.record_id) == entry.table:
                    del self._where[entry.record_id]
            else:
                table[entry.record_id] = entry.row
            if entry.deleted_at is None:
                self._deleted.pop(entry.record_id, None)
            else:
                self._deleted[entry.record_id] = entry.deleted_at
            if entry.blobs is None:
                self._blobs.pop(entry.record_id, None)
            else:
                self._blobs[entry.record_id] = entry.blobs
            if entry.row is not None and entry.deleted_at is None:
                self._index_row(entry.table, entry.record_id, entry.row)
        del tx.undo[undo_len:]
        del tx.changes[changes_len:]

    # ----------------------------------------------------------------- writes

    def create(self, tx: Transaction, obj: SObjectSchema, body: Mapping[str, Any]) -> SalesforceId:
        """Insert a record; returns its new id.

        Raises:
            SalesforceSandboxError: the record is invalid (nothing was written).
        """
        if not obj.createable:
            raise error("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: {obj.name}")
        values = self._check_input(obj, body, creating=True, record_id=None)
        row = self._blank_row(obj)
        blobs = {k: v for k, v in values.items() if self._is_blob(obj, k)}
        row.update({k: v for k, v in values.items() if k not in blobs})
        if "OwnerId" in row and row["OwnerId"] is None and obj.field("OwnerId"):
            row["OwnerId"] = tx.actor.user_id
        if (
            "CurrencyIsoCode" in row
            and row["CurrencyIsoCode"] is None
            and obj.field("CurrencyIsoCode")
        ):
            row["CurrencyIsoCode"] = self.corporate_currency
        self._derive(obj, row, given=values, old=None, blobs=blobs)
        self._check_required(obj, row, names=None)
        self._check_unique(obj, row, record_id=None)
        if obj.record_types and row.get("RecordTypeId") is None:
            row["RecordTypeId"] = next(rt.id for rt in obj.record_types if rt.default)
        alert = self._check_profile(tx, obj, row, old=None, record_id=None)
        record_id = self.ids.new(obj.key_prefix)
        if alert is not None:
            tx.alerts[record_id] = [alert]
        stamp = self._stamp()
        self._set_system(row, record_id, stamp, tx.actor.user_id, created=True)
        self._set_blob_urls(obj, row, record_id, blobs, tx.actor.api_version)
        self._put(tx, obj.name, record_id, row, blobs=blobs or None)
        self._after_create(tx, obj, row, stamp)
        payload = {
            k: v
            for k, v in row.items()
            if v is not None and k != "Id" and not self._is_compound(obj, k)
        }
        tx.changes.append(PendingChange(obj.name, record_id, "CREATE", tuple(payload), (), payload))
        self._automate(tx, obj, record_id, old=None)
        return record_id

    def update(
        self, tx: Transaction, obj: SObjectSchema, record_id: str, body: Mapping[str, Any]
    ) -> SalesforceId:
        """Change fields of a live record.

        Raises:
            SalesforceSandboxError: the id or the values are invalid (nothing was written).
        """
        if not obj.updateable:
            raise error("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be updated: {obj.name}")
        rid = self.resolve_id(obj, record_id)
        if obj.name == "Lead" and self._tables[obj.name][rid].get("IsConverted"):
            raise error("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        values = self._check_input(obj, body, creating=False, record_id=rid)
        old = self._tables[obj.name][rid]
        row = dict(old)
        blobs = {k: v for k, v in values.items() if self._is_blob(obj, k)}
        row.update({k: v for k, v in values.items() if k not in blobs})
        self._derive(obj, row, given=values, old=old, blobs=blobs)
        self._check_required(obj, row, names=set(values))
        self._check_unique(obj, row, record_id=rid)
        alert = self._check_profile(tx, obj, row, old=old, record_id=rid)
        if alert is not None:
            tx.alerts[rid] = [alert]
        stamp = self._stamp()
        row["LastModifiedDate"] = format_datetime(stamp)
        row["SystemModstamp"] = format_datetime(stamp)
        if "LastStageChangeDate" in row and row.get("StageName") != old.get("StageName"):
            row["LastStageChangeDate"] = format_datetime(stamp)
        if "LastModifiedById" in row:
            row["LastModifiedById"] = tx.actor.user_id
        self._set_blob_urls(obj, row, rid, blobs, tx.actor.api_version)
        merged_blobs = {**self._blobs.get(rid, {}), **blobs} if blobs else None
        self._put(tx, obj.name, rid, row, blobs=merged_blobs)
        changed = [
            k
            for k in row
            if (row[k] != old.get(k) or k in blobs)
            and k not in ("SystemModstamp",)
            and not self._is_compound(obj, k)
        ]
        if "LastModifiedDate" not in changed:
            changed.append("LastModifiedDate")
        nulled = tuple(k for k in changed if row[k] is None)
        payload = {k: row[k] for k in changed if row[k] is not None}
        tx.changes.append(PendingChange(obj.name, rid, "UPDATE", tuple(changed), nulled, payload))
        self._mirror_content_document(tx, obj, rid, row, stamp)
        self._automate(tx, obj, rid, old=old)
        return rid

    def set_read_only_fields(
        self, tx: Transaction, object_name: str, record_id: str, values: Mapping[str, Any]
    ) -> None:
        """Set fields the API cannot write (a lead's conversion fields), with a change event.

        The values are the platform's own, so they are not validated; the row is stamped as
        by `update`.
        """
        obj = self.sobject(object_name)
        rid = self.resolve_id(obj, record_id)
        old = self._tables[obj.name][rid]
        row = {**old, **values}
        stamp = self._stamp()
        row["LastModifiedDate"] = format_datetime(stamp)
        row["SystemModstamp"] = format_datetime(stamp)
        if "LastModifiedById" in row:
            row["LastModifiedById"] = tx.actor.user_id
        self._put(tx, obj.name, rid, row, blobs=self._blobs.get(rid))
        changed = [k for k in row if row[k] != old.get(k) and k != "SystemModstamp"]
        nulled = tuple(k for k in changed if row[k] is None)
        payload = {k: row[k] for k in changed if row[k] is not None}
        tx.changes.append(PendingChange(obj.name, rid, "UPDATE", tuple(changed), nulled, payload))

    def _check_profile(
        self,
        tx: Transaction,
        obj: SObjectSchema,
        row: Mapping[str, Any],
        *,
        old: Mapping[str, Any] | None,
        record_id: str | None,
    ) -> dict[str, Any] | None:
        """Run the profile's validation and duplicate rules; returns a duplicate alert.

        Raises:
            SalesforceSandboxError: FIELD_CUSTOM_VALIDATION_EXCEPTION or DUPLICATES_DETECTED.
        """
        record_type = obj.record_type(row.get("RecordTypeId") or "")
        for name, allowed in record_type.values.items() if record_type else ():
            value = row.get(name)
            changed = old is None or any(row.get(k) != old.get(k) for k in (name, "RecordTypeId"))
            if value is not None and value not in allowed and changed:
                spec = obj.field(name)
                label = spec.label if spec else name
                raise error(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"{label}: bad value for restricted picklist field: {value}",
                    fields=[name],
                )
        for rule in self.profile.rules_for(obj.name):
            if evaluate(rule.error_when, row, old):
                raise error(
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    rule.message,
                    fields=[rule.field] if rule.field else [],
                )
        dup = self.profile.duplicate_rule(obj.name)
        if dup is None:
            return None
        keys = DUPLICATE_MATCH_FIELDS[obj.name]
        wanted = [_fold(row.get(k)) for k in keys]
        if any(v is None for v in wanted):
            return None
        matches = [
            rid
            for rid, other in self._tables.get(obj.name, {}).items()
            if rid != record_id
            and rid not in self._deleted
            and [_fold(other.get(k)) for k in keys] == wanted
        ]
        if not matches:
            return None
        version = tx.actor.api_version
        result = {
            "allowSave": not dup.block,
            "duplicateRule": dup.name,
            "duplicateRuleEntityType": obj.name,
            "errorMessage": "You're creating a duplicate record. We recommend you use an "
            "existing record instead.",
            "matchResults": [
                {
                    "entityType": obj.name,
                    "errors": [],
                    "matchEngine": "ExactMatchEngine",
                    "matchRecords": [
                        {
                            "additionalInformation": [],
                            "fieldDiffs": [],
                            "matchConfidence": 100.0,
                            "record": {
                                "attributes": {
                                    "type": obj.name,
                                    "url": f"/services/data/v{version}/sobjects/{obj.name}/{rid}",
                                },
                                "Id": rid,
                            },
                        }
                        for rid in sorted(matches)
                    ],
                    "rule": f"{dup.name}_Match_Rule",
                    "size": len(matches),
                    "success": True,
                }
            ],
        }
        if dup.block or not tx.allow_duplicate_save:
            raise SalesforceSandboxError(
                400, "DUPLICATES_DETECTED", DUPLICATE_MESSAGE, extra={"duplicateResult": result}
            )
        return {
            "duplicateResult": result,
            "errorCode": "DUPLICATES_DETECTED",
            "message": DUPLICATE_MESSAGE,
        }

    def _automate(
        self, tx: Transaction, obj: SObjectSchema, record_id: str, *, old: Mapping[str, Any] | None
    ) -> None:
        """Apply the profile's after-save automation to a record just saved."""
        row = self._tables[obj.name][record_id]
        values: dict[str, Any] = {}
        for auto in self.profile.automation_for(obj.name):
            if auto.when is not None and not evaluate(auto.when, row, old):
                continue
            values.update(auto.set)
            fill = {k: ("" if v is None else v) for k, v in row.items()}
            values.update({k: t.format_map(fill) for k, t in auto.template.items()})
        if any(row.get(k) != v for k, v in values.items()):
            self.set_read_only_fields(tx, obj.name, record_id, values)

    def delete(self, tx: Transaction, obj: SObjectSchema, record_id: str) -> SalesforceId:
        """Soft-delete a live record and its master-detail children.

        Raises:
            SalesforceSandboxError: MALFORMED_ID, NOT_FOUND, ENTITY_IS_DELETED.
        """
        if not obj.deletable:
            raise error("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be deleted: {obj.name}")
        rid = self.resolve_id(obj, record_id)
        self._delete_row(tx, obj, rid)
        return rid

    def undelete(self, tx: Transaction, obj: SObjectSchema, record_id: str) -> SalesforceId:
        """Bring a record back from the recycle bin.

        Raises:
            SalesforceSandboxError: NOT_FOUND, or UNDELETE_FAILED when it is not deleted.
        """
        rid = self.check_id(obj, record_id)
        table = self._tables.get(obj.name, {})
        if rid not in table:
            raise not_found()
        if rid not in self._deleted:
            raise error("UNDELETE_FAILED", f"Entity is not in the recycle bin: {rid}")
        row = dict(table[rid])
        self._check_unique(obj, row, record_id=rid)
        stamp = self._stamp()
        row["IsDeleted"] = False
        row["SystemModstamp"] = format_datetime(stamp)
        self._put(tx, obj.name, rid, row, blobs=self._blobs.get(rid), deleted_at=None)
        payload = {k: v for k, v in row.items() if v is not None and k != "Id"}
        tx.changes.append(PendingChange(obj.name, rid, "UNDELETE", (), (), payload))
        return rid

    def upsert(
        self,
        tx: Transaction,
        obj: SObjectSchema,
        field_name: str,
        value: str,
        body: Mapping[str, Any],
        *,
        update_only: bool = False,
    ) -> UpsertResult:
        """Update the record whose external id `field_name` equals `value`, or create it.

        Raises:
            MultipleMatchesError: several records match.
            SalesforceSandboxError: unknown external-id field (404), invalid values (400), no
                match with `update_only` (404).
        """
        spec = self.external_id_field(obj, field_name)
        if not isinstance(body, Mapping):
            raise error("JSON_PARSER_ERROR", "The request body must be a JSON object")
        for key in body:
            if key.lower() in (spec.name.lower(), "id") and key != "attributes":
                raise error(
                    "INVALID_FIELD",
                    f"The external ID field {spec.name} (or Id) must not be in the body of an "
                    "upsert: its value is the last segment of the URL",
                    fields=[spec.name],
                )
        matches = self.find_external(obj, spec, value)
        if len(matches) > 1:
            raise MultipleMatchesError(obj.name, spec.name, matches)
        if matches:
            return UpsertResult(self.update(tx, obj, matches[0], body), created=False)
        if update_only or spec.name == "Id":
            raise not_found()
        return UpsertResult(self.create(tx, obj, {**body, spec.name: value}), created=True)

    def external_id_field(self, obj: SObjectSchema, field_name: str) -> FieldSchema:
        """The external-id field (or Id) called `field_name`.

        Raises:
            SalesforceSandboxError: 404 NOT_FOUND when there is no such external-id field.
        """
        spec = obj.field(field_name)
        if spec is None or not (spec.external_id or spec.name == "Id"):
            raise error(
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field_name}",
                status=404,
            )
        return spec

    def insert_system(self, obj_name: str, values: Mapping[str, Any], *, user_id: str) -> str:
        """Insert a seed record (users, stages) without validation or change events."""
        obj = self.sobject(obj_name)
        row = self._blank_row(obj)
        row.update({k: v for k, v in values.items() if k in row or k == "Id"})
        record_id = str(values.get("Id") or self.ids.new(obj.key_prefix))
        self._derive(obj, row, given=dict(values), old=None, blobs={})
        self._set_system(row, record_id, self._stamp(), user_id, created=True)
        if "OwnerId" in row and row["OwnerId"] is None and obj.field("OwnerId"):
            row["OwnerId"] = user_id
        self._tables.setdefault(obj.name, {})[record_id] = row
        self._where.setdefault(record_id, obj.name)
        self._index_row(obj.name, record_id, row)
        return record_id

    def update_system(self, obj_name: str, record_id: str, values: Mapping[str, Any]) -> None:
        """Change a seed record's fields (setup the control API changes), no change events."""
        obj = self.sobject(obj_name)
        row = self._tables[obj.name][record_id]
        self._unindex(obj.name, record_id, row)
        row.update(values)
        self._index_row(obj.name, record_id, row)

    # ----------------------------------------------------------------- persistence

    def export_rows(
        self, record_ids: Iterable[str] | None = None
    ) -> Iterator[tuple[str, str, dict[str, Any], datetime | None, dict[str, str] | None]]:
        """(table, id, row, deleted_at, blobs) for the given records, or every record."""
        if record_ids is None:
            for table, rows in self._tables.items():
                for rid, row in rows.items():
                    yield table, rid, row, self._deleted.get(rid), self._blobs.get(rid)
            return
        for rid in record_ids:
            for table, rows in self._tables.items():
                if rid in rows:
                    yield table, rid, rows[rid], self._deleted.get(rid), self._blobs.get(rid)

    def row_state(
        self, table: str, record_id: str
    ) -> tuple[str, str, dict[str, Any] | None, datetime | None, dict[str, str] | None]:
        """(table, id, row or None when gone, deleted_at, blobs) of one record, for saving."""
        row = self._tables.get(table, {}).get(record_id)
        if row is None:
            return table, record_id, None, None, None
        return table, record_id, row, self._deleted.get(record_id), self._blobs.get(record_id)

    def load_row(
        self,
        table: str,
        record_id: str,
        row: dict[str, Any],
        deleted_at: datetime | None,
        blobs: dict[str, str] | None,
    ) -> None:
        """Put back a persisted row as it was."""
        obj = self.schema.sobject(table)
        name = obj.name if obj else table
        existing = self._tables.setdefault(name, {}).get(record_id)
        if existing is not None:
            self._unindex(name, record_id, existing)
        if obj is not None:  # fields added to the schema since the row was saved start unset
            row = {**self._blank_row(obj), **row}
        self._tables[name][record_id] = row
        self._where.setdefault(record_id, name)
        if deleted_at is not None:
            self._deleted[record_id] = deleted_at
        else:
            self._deleted.pop(record_id, None)
            self._index_row(name, record_id, row)
        if blobs:
            self._blobs[record_id] = blobs

    def purge_deleted(self, before: datetime) -> list[tuple[str, str]]:
        """Empty the recycle bin of records deleted before `before`; returns (table, id) gone.

        Purged records are gone for good: queryAll, getDeleted and undelete no longer see them.
        """
        gone: list[tuple[str, str]] = []
        for rid, at in list(self._deleted.items()):
            if at >= before:
                continue
            for table, rows in self._tables.items():
                if rows.pop(rid, None) is not None:
                    gone.append((table, rid))
            del self._deleted[rid]
            self._where.pop(rid, None)
            self._blobs.pop(rid, None)
        return gone

    def clock_state(self) -> str | None:
        """The last stamp handed out, to keep stamps increasing across a restart."""
        return format_datetime(self._last_stamp) if self._last_stamp else None

    def restore_clock_state(self, value: str | None) -> None:
        """Continue stamps after a persisted `clock_state`."""
        self._last_stamp = parse_datetime(value) if value else None

    def clear(self) -> None:
        """Forget every record (control API reset)."""
        self._tables.clear()
        self._where.clear()
        self._deleted.clear()
        self._blobs.clear()
        self._index.clear()

    # ----------------------------------------------------------------- internals

    def _stamp(self) -> datetime:
        now = self.clock.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def _blank_row(self, obj: SObjectSchema) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for spec in obj.iter_fields():
            value = spec.default_value
            if value is None and spec.type in ("picklist", "multipicklist"):
                value = next((p.value for p in spec.picklist_values if p.default), None)
            if value is None and spec.type == "boolean":
                value = False
            row[spec.name] = value
        return row

    def _is_blob(self, obj: SObjectSchema, name: str) -> bool:
        spec = obj.field(name)
        return spec is not None and spec.type == "base64"

    def _is_compound(self, obj: SObjectSchema, name: str) -> bool:
        spec = obj.field(name)
        return spec is not None and spec.type in ("address", "location")

    def _set_system(
        self, row: dict[str, Any], record_id: str, stamp: datetime, user_id: str, *, created: bool
    ) -> None:
        text = format_datetime(stamp)
        row["Id"] = record_id
        if created:
            for name in ("CreatedDate",):
                row[name] = text
            row["CreatedById"] = user_id
        row["LastModifiedDate"] = text
        row["LastModifiedById"] = user_id
        row["SystemModstamp"] = text
        row["IsDeleted"] = False

    def _set_blob_urls(
        self,
        obj: SObjectSchema,
        row: dict[str, Any],
        record_id: str,
        blobs: Mapping[str, str | None],
        version: str,
    ) -> None:
        for name, value in blobs.items():
            row[name] = (
                None
                if value is None
                else f"/services/data/v{version}/sobjects/{obj.name}/{record_id}/{name}"
            )

    def _put(
        self,
        tx: Transaction,
        table: str,
        record_id: str,
        row: dict[str, Any],
        *,
        blobs: dict[str, str] | None,
        deleted_at: datetime | None = None,
    ) -> None:
        rows = self._tables.setdefault(table, {})
        previous = rows.get(record_id)
        tx.undo.append(
            _Undo(
                table,
                record_id,
                previous,
                self._deleted.get(record_id),
                self._blobs.get(record_id),
            )
        )
        if previous is not None:
            self._unindex(table, record_id, previous)
        rows[record_id] = row
        self._where.setdefault(record_id, table)
        if deleted_at is None:
            self._deleted.pop(record_id, None)
            self._index_row(table, record_id, row)
        else:
            self._deleted[record_id] = deleted_at
        if blobs is not None:
            self._blobs[record_id] = {k: v for k, v in blobs.items() if v is not None}
        tx.touched.add((table, record_id))

    def _delete_row(self, tx: Transaction, obj: SObjectSchema, rid: str) -> None:
        stamp = self._stamp()
        row = dict(self._tables[obj.name][rid])
        row["IsDeleted"] = True
        row["SystemModstamp"] = format_datetime(stamp)
        self._put(tx, obj.name, rid, row, blobs=self._blobs.get(rid), deleted_at=stamp)
        tx.changes.append(PendingChange(obj.name, rid, "DELETE", (), (), {}))
        mirror = self._tables.get("ContentDocument", {})
        if obj.name == "ContentNote" and rid in mirror:
            doc = {**mirror[rid], "IsDeleted": True, "SystemModstamp": row["SystemModstamp"]}
            self._put(tx, "ContentDocument", rid, doc, blobs=None, deleted_at=stamp)
        for rel in obj.child_relationships:
            if not rel.cascade_delete:
                continue
            child = self.schema.sobject(rel.child_object)
            if child is None:
                continue
            for child_id, child_row in list(self._tables.get(child.name, {}).items()):
                if child_row.get(rel.field) == rid and child_id not in self._deleted:
                    self._delete_row(tx, child, child_id)

    def _check_input(
        self,
        obj: SObjectSchema,
        body: Mapping[str, Any],
        *,
        creating: bool,
        record_id: str | None,
    ) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise error(
                "JSON_PARSER_ERROR",
                f"The request body must be a JSON object of {obj.name} fields, e.g. "
                '{"Name": "..."}',
            )
        resolved: list[tuple[FieldSchema, Any]] = []
        read_only: list[str] = []
        for key, value in body.items():
            if key == "attributes":
                continue
            spec = obj.field(key)
            if spec is None:
                raise error(
                    "INVALID_FIELD",
                    f"No such column '{key}' on sobject of type {obj.name}",
                    fields=[key],
                )
            if spec.name == "Id":
                if not creating and record_id is not None and isinstance(value, str):
                    try:
                        same = to_18(value) == record_id
                    except ValueError:
                        same = False
                    if same:
                        continue
                read_only.append(spec.name)
                continue
            allowed = spec.createable if creating else spec.updateable
            if not allowed:
                read_only.append(spec.name)
                continue
            resolved.append((spec, value))
        if read_only:
            raise error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(read_only)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.",
                fields=read_only,
            )
        return {spec.name: self._coerce(obj, spec, value) for spec, value in resolved}

    def _coerce(self, obj: SObjectSchema, spec: FieldSchema, value: Any) -> Any:
        kind = spec.type
        if spec.name == "RecordTypeId" and obj.record_types and value is not None:
            return self._coerce_record_type(obj, value)
        if value is None:
            return False if kind == "boolean" else None
        if kind in _STRING_TYPES:
            return self._coerce_string(spec, value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise self._parse_error("boolean", value)
        if kind == "int":
            return self._coerce_int(spec, value)
        if kind in _NUMBER_TYPES:
            return self._coerce_number(spec, value)
        if kind == "date":
            if isinstance(value, str):
                try:
                    return parse_date(value).isoformat()
                except ValueError:
                    pass
                try:  # a datetime is accepted for a date field: its UTC date is kept
                    return parse_datetime(value).date().isoformat()
                except ValueError:
                    pass
            raise self._parse_error("date", value)
        if kind == "datetime":
            if isinstance(value, str):
                try:
                    return format_datetime(parse_datetime(value))
                except ValueError:
                    pass
            raise self._parse_error("datetime", value)
        if kind in ("reference", "id"):
            return self._coerce_reference(spec, value)
        if kind == "base64":
            if isinstance(value, str):
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    pass
                else:
                    return value
            raise self._parse_error("base64", value)
        return value

    def _parse_error(self, kind: str, value: Any) -> SalesforceSandboxError:
        shown = str(value)[:_MESSAGE_VALUE_LENGTH]
        return error(
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from VALUE_STRING value {shown} or "
            "request may be missing a required field",
        )

    def _coerce_string(self, spec: FieldSchema, given: Any) -> str | None:
        value: str
        if isinstance(given, bool):
            value = "true" if given else "false"
        elif isinstance(given, int | float | str):
            value = str(given)
        else:
            raise self._parse_error("string", given)
        if value == "":  # Salesforce stores an empty string as null
            return None
        if spec.length and len(value) > spec.length:
            raise error(
                "STRING_TOO_LONG",
                f"{spec.label}: data value too large: {value[:_MESSAGE_VALUE_LENGTH]} "
                f"(max length={spec.length})",
                fields=[spec.name],
            )
        if spec.type in ("picklist", "multipicklist") and spec.restricted_picklist:
            entries = value.split(";") if spec.type == "multipicklist" else [value]
            for entry in entries:
                if spec.picklist_value(entry) is None:
                    raise error(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{spec.label}: bad value for restricted picklist field: {entry}",
                        fields=[spec.name],
                    )
        if spec.type == "email" and not _EMAIL.match(value):
            raise error(
                "INVALID_EMAIL_ADDRESS",
                f"{spec.label}: invalid email address: {value[:_MESSAGE_VALUE_LENGTH]}",
                fields=[spec.name],
            )
        return value

    def _coerce_int(self, spec: FieldSchema, value: Any) -> int:
        number = self._decimal(spec, value, "int")
        if number != number.to_integral_value():
            raise self._parse_error("int", value)
        return int(number)

    def _coerce_number(self, spec: FieldSchema, value: Any) -> float:
        number = self._decimal(spec, value, "double")
        if spec.precision:
            whole_digits = spec.precision - spec.scale
            if abs(number) >= Decimal(10) ** whole_digits:
                raise error(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    f"{spec.label}: value outside of valid range on numeric field: {value}",
                    fields=[spec.name],
                )
        if spec.precision:  # Salesforce rounds half up to the field's scale
            number = number.quantize(Decimal(1).scaleb(-spec.scale), rounding=ROUND_HALF_UP)
        return float(number)

    def _decimal(self, spec: FieldSchema, value: Any, kind: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self._parse_error(kind, value)
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise self._parse_error(kind, value) from None
        if not number.is_finite():
            raise self._parse_error(kind, value)
        return number

    def _coerce_record_type(self, obj: SObjectSchema, value: Any) -> str:
        try:
            rid = to_18(value) if isinstance(value, str) else ""
        except ValueError:
            rid = ""
        if obj.record_type(rid) is None:
            raise error(
                "INVALID_CROSS_REFERENCE_KEY",
                f"Record Type ID: this ID value isn't valid for the user: {str(value)[:40]}",
                fields=["RecordTypeId"],
            )
        return rid

    def _coerce_reference(self, spec: FieldSchema, value: Any) -> str:
        if not isinstance(value, str):
            raise self._parse_error("id", value)
        try:
            rid = to_18(value)
        except ValueError:
            raise error(
                "MALFORMED_ID",
                f"{spec.label}: id value of incorrect type: {value[:_MESSAGE_VALUE_LENGTH]}",
                fields=[spec.name],
            ) from None
        prefixes = {
            target.key_prefix
            for name in spec.reference_to
            if (target := self.schema.sobject(name)) is not None
        }
        if prefixes and rid[:3] not in prefixes:
            raise error(
                "FIELD_INTEGRITY_EXCEPTION",
                f"{spec.label}: id value of incorrect type: {value} (expected a "
                f"{' or '.join(spec.reference_to)} id)",
                fields=[spec.name],
            )
        if rid not in self._where or rid in self._deleted:
            raise error(
                "INVALID_CROSS_REFERENCE_KEY",
                f"invalid cross reference id: {spec.label} {value} does not exist or is deleted",
                fields=[spec.name],
            )
        return rid

    def _check_required(
        self, obj: SObjectSchema, row: Mapping[str, Any], names: set[str] | None
    ) -> None:
        missing = [
            spec.name
            for spec in obj.iter_fields()
            if spec.required_on_create
            and row.get(spec.name) is None
            and (names is None or spec.name in names)
            and not self._is_blob(obj, spec.name)
        ]
        if missing:
            raise error(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                fields=missing,
            )

    def _index_key(self, spec: FieldSchema, value: Any) -> Any:
        if spec.type in _NUMBER_TYPES or spec.type == "int":
            # A number external id arrives as text in an upsert URL and as a number in a row.
            try:
                return Decimal(str(value)).normalize()
            except InvalidOperation:
                return str(value)
        if isinstance(value, str) and not spec.case_sensitive:
            return value.lower()
        return value

    def _indexed_fields(self, obj: SObjectSchema) -> list[FieldSchema]:
        return [f for f in obj.iter_fields() if (f.external_id or f.unique) and f.name != "Id"]

    def _index_row(self, table: str, record_id: str, row: Mapping[str, Any]) -> None:
        obj = self.schema.sobject(table)
        if obj is None:
            return
        for spec in self._indexed_fields(obj):
            value = row.get(spec.name)
            if value is not None:
                index = self._index.setdefault((obj.name, spec.name), {})
                index.setdefault(self._index_key(spec, value), set()).add(record_id)

    def _unindex(self, table: str, record_id: str, row: Mapping[str, Any]) -> None:
        obj = self.schema.sobject(table)
        if obj is None:
            return
        for spec in self._indexed_fields(obj):
            value = row.get(spec.name)
            if value is not None:
                ids = self._index.get((obj.name, spec.name), {}).get(self._index_key(spec, value))
                if ids is not None:
                    ids.discard(record_id)

    def _check_unique(
        self, obj: SObjectSchema, row: Mapping[str, Any], record_id: str | None
    ) -> None:
        for spec in self._indexed_fields(obj):
            if not spec.unique or row.get(spec.name) is None:
                continue
            others = (
                self.find_external(obj, spec, row[spec.name])
                if spec.external_id
                else sorted(
                    self._index.get((obj.name, spec.name), {}).get(
                        self._index_key(spec, row[spec.name]), set()
                    )
                )
            )
            others = [o for o in others if o != record_id]
            if others:
                raise error(
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {spec.name} duplicates value on record with id: "
                    f"{others[0]}",
                    fields=[spec.name],
                )
        pair = _UNIQUE_TOGETHER.get(obj.name)
        if pair and all(row.get(name) is not None for name in pair):
            for other_id, other in self._tables.get(obj.name, {}).items():
                if other_id == record_id or other_id in self._deleted:
                    continue
                if all(other.get(name) == row.get(name) for name in pair):
                    raise error(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {' and '.join(pair)} duplicate the values on "
                        f"record with id: {other_id}",
                        fields=list(pair),
                    )

    def _derive(
        self,
        obj: SObjectSchema,
        row: dict[str, Any],
        *,
        given: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        blobs: Mapping[str, Any],
    ) -> None:
        if obj.name == "Opportunity":
            self._derive_stage(row, given=given, old=old)
            self._derive_opportunity(row)
        if obj.name == "ContentNote" and "Content" in blobs:
            self._derive_note(row, blobs.get("Content"))
        names = ("FirstName", "LastName", "Name")
        name_field = obj.field("Name")
        if all(obj.field(n) for n in names) and name_field and not name_field.createable:
            row["Name"] = " ".join(p for p in (row.get("FirstName"), row.get("LastName")) if p)
            row["Name"] = row["Name"] or None
        if obj.name == "OpportunityTeamMember" and obj.field("Name") and row.get("UserId"):
            user = self._tables.get("User", {}).get(row["UserId"])
            if user is not None and not obj.fields["name"].createable:
                row["Name"] = user.get("Name")
        for spec in obj.iter_fields():
            if spec.type == "address":
                row[spec.name] = self._address(row, spec.name)

    def _address(self, row: Mapping[str, Any], name: str) -> dict[str, Any] | None:
        prefix = name[: -len("Address")] if name.endswith("Address") else name
        parts = {
            "street": row.get(f"{prefix}Street"),
            "city": row.get(f"{prefix}City"),
            "state": row.get(f"{prefix}State"),
            "postalCode": row.get(f"{prefix}PostalCode"),
            "country": row.get(f"{prefix}Country"),
        }
        if all(v is None for v in parts.values()):
            return None
        return {
            "city": parts["city"],
            "country": parts["country"],
            "geocodeAccuracy": None,
            "latitude": None,
            "longitude": None,
            "postalCode": parts["postalCode"],
            "state": parts["state"],
            "street": parts["street"],
        }

    def _derive_stage(
        self, row: dict[str, Any], *, given: Mapping[str, Any], old: Mapping[str, Any] | None
    ) -> None:
        stage = row.get("StageName")
        if stage is None:
            return
        stage_changed = old is None or old.get("StageName") != stage
        rule = self.stage_rules.get(stage)
        if rule is None:
            return
        if stage_changed and "Probability" not in given and "Probability" in row:
            row["Probability"] = rule.probability
        if stage_changed and "ForecastCategoryName" not in given and "ForecastCategoryName" in row:
            row["ForecastCategoryName"] = rule.forecast_category
        if "ForecastCategory" in row and row.get("ForecastCategoryName"):
            row["ForecastCategory"] = _FORECAST_CATEGORY.get(
                row["ForecastCategoryName"], row["ForecastCategoryName"]
            )
        if "IsClosed" in row:
            row["IsClosed"] = rule.is_closed
        if "IsWon" in row:
            row["IsWon"] = rule.is_won

    def _derive_opportunity(self, row: dict[str, Any]) -> None:
        amount, probability = row.get("Amount"), row.get("Probability")
        if "ExpectedRevenue" in row:
            row["ExpectedRevenue"] = (
                round(amount * probability / 100, 2)
                if amount is not None and probability is not None
                else None
            )
        close = row.get("CloseDate")
        if close and "FiscalYear" in row:  # a calendar fiscal year, as a new org has
            year, month = int(close[:4]), int(close[5:7])
            quarter = (month - 1) // 3 + 1
            row["FiscalYear"] = year
            row["FiscalQuarter"] = quarter
            if "Fiscal" in row:
                row["Fiscal"] = f"{year} {quarter}"

    def _derive_note(self, row: dict[str, Any], content: str | None) -> None:
        data = base64.b64decode(content) if content else b""
        text = data.decode("utf-8", errors="replace")
        preview = " ".join(html.unescape(_TAG.sub(" ", text)).split())
        for name, value in (
            ("TextPreview", preview[:_TEXT_PREVIEW_LENGTH] or None),
            ("ContentSize", len(data)),
            ("FileType", "SNOTE"),
            ("FileExtension", "snote"),
        ):
            if name in row:
                row[name] = value

    def _after_create(
        self, tx: Transaction, obj: SObjectSchema, row: dict[str, Any], stamp: datetime
    ) -> None:
        if obj.name == "ContentNote":
            if "LatestPublishedVersionId" in row:
                row["LatestPublishedVersionId"] = self.ids.new("068")
            self._mirror_content_document(tx, obj, row["Id"], row, stamp)

    def _mirror_content_document(
        self, tx: Transaction, obj: SObjectSchema, rid: str, row: Mapping[str, Any], stamp: datetime
    ) -> None:
        """Keep the ContentDocument row of a ContentNote (same id: a note is a document)."""
        if obj.name != "ContentNote":
            return
        doc_schema = self.schema.sobject("ContentDocument")
        if doc_schema is None or doc_schema.key_prefix != rid[:3]:
            return
        doc = self._tables.get(doc_schema.name, {}).get(rid) or self._blank_row(doc_schema)
        doc = dict(doc)
        for name, value in row.items():
            if name in doc and name not in ("Content",):
                doc[name] = value
        self._put(tx, doc_schema.name, rid, doc, blobs=None)
        self._where[rid] = obj.name
