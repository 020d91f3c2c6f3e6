"""What the org's objects look like: typed describe results and a cache of them.

`GET /sobjects/{T}/describe` returns a large document (spec §2.6); the mapping checks and the
writers need a few properties of each field: type, length, picklist values, whether it may be
null, created, updated, whether it is an external id, what it references. `ObjectDescription`
and `FieldDescription` are pydantic models of exactly those, tolerant of every other key and of
nulls, so a newer API version with more keys still reads.

`DescribeCache` keeps each description for a time-to-live measured on the injected clock (an
admin adding a picklist value is seen within the TTL), loads each object at most once at a time
(concurrent callers for the same object share one request), and can be invalidated by hand,
for example after a write failed with a picklist error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cosell.clock import Clock, SystemClock

DEFAULT_TTL = timedelta(hours=1)  # Schema changes are rare; an hour bounds how stale we can be.


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # Describe sends null for properties that do not apply: read them as absent (defaults).
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class PicklistValue(_Tolerant):
    """One picklist entry of a field."""

    value: str
    label: str | None = None
    active: bool = True
    default_value: bool = Field(default=False, alias="defaultValue")


class FieldDescription(_Tolerant):
    """The describe properties of one field that cosell relies on."""

    name: str
    label: str | None = None
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = False
    updateable: bool = False
    defaulted_on_create: bool = Field(default=False, alias="defaultedOnCreate")
    external_id: bool = Field(default=False, alias="externalId")
    unique: bool = False
    custom: bool = False
    calculated: bool = False
    restricted_picklist: bool = Field(default=False, alias="restrictedPicklist")
    picklist_values: tuple[PicklistValue, ...] = Field(default=(), alias="picklistValues")
    reference_to: tuple[str, ...] = Field(default=(), alias="referenceTo")
    relationship_name: str | None = Field(default=None, alias="relationshipName")

    @property
    def required_on_create(self) -> bool:
        """Whether a create must set this field: createable, not nillable, not defaulted."""
        return self.createable and not self.nillable and not self.defaulted_on_create

    @property
    def active_values(self) -> tuple[str, ...]:
        """The active picklist values, in describe order."""
        return tuple(p.value for p in self.picklist_values if p.active)


class ChildRelationship(_Tolerant):
    """A child relationship of an object: its children, by the field that points back."""

    child_sobject: str = Field(alias="childSObject")
    field: str
    relationship_name: str | None = Field(default=None, alias="relationshipName")


class RecordTypeInfo(_Tolerant):
    """One entry of describe's `recordTypeInfos` (Master included, `master` true)."""

    record_type_id: str = Field(alias="recordTypeId")
    developer_name: str = Field(alias="developerName")
    name: str | None = None
    active: bool = True
    available: bool = True
    master: bool = False
    default_for_user: bool = Field(default=False, alias="defaultRecordTypeMapping")


class ObjectDescription(_Tolerant):
    """The describe of one sObject type, with case-insensitive field lookup."""

    name: str
    label: str | None = None
    key_prefix: str | None = Field(default=None, alias="keyPrefix")
    custom: bool = False
    createable: bool = False
    updateable: bool = False
    deletable: bool = False
    queryable: bool = False
    fields: tuple[FieldDescription, ...] = ()
    child_relationships: tuple[ChildRelationship, ...] = Field(
        default=(), alias="childRelationships"
    )
    record_type_infos: tuple[RecordTypeInfo, ...] = Field(default=(), alias="recordTypeInfos")

    def record_type(self, name_or_id: str) -> RecordTypeInfo | None:
        """The record type with this developer name (any case) or id (15 or 18 chars), or None."""
        wanted = name_or_id.lower()
        for info in self.record_type_infos:
            if info.developer_name.lower() == wanted or info.record_type_id[:15] == name_or_id[:15]:
                return info
        return None

    @property
    def default_record_type(self) -> RecordTypeInfo | None:
        """The record type the user's creates get when they name none (None: no record types)."""
        return next((i for i in self.record_type_infos if i.default_for_user and i.available), None)

    def field(self, name: str) -> FieldDescription | None:
        """The field called `name` (any case), or None."""
        wanted = name.lower()
        return next((f for f in self.fields if f.name.lower() == wanted), None)

    @property
    def field_names(self) -> tuple[str, ...]:
        """Every field's canonical name."""
        return tuple(f.name for f in self.fields)

    @property
    def external_id_fields(self) -> tuple[str, ...]:
        """The fields an upsert can match on."""
        return tuple(f.name for f in self.fields if f.external_id)


class GlobalObject(_Tolerant):
    """One entry of describe-global (`GET /sobjects`)."""

    name: str
    label: str | None = None
    key_prefix: str | None = Field(default=None, alias="keyPrefix")
    custom: bool = False
    createable: bool = False
    updateable: bool = False
    queryable: bool = False


class GlobalDescription(_Tolerant):
    """The describe-global result."""

    encoding: str | None = None
    max_batch_size: int | None = Field(default=None, alias="maxBatchSize")
    sobjects: tuple[GlobalObject, ...] = ()

    def find(self, name: str) -> GlobalObject | None:
        """The object called `name` (any case), or None."""
        wanted = name.lower()
        return next((o for o in self.sobjects if o.name.lower() == wanted), None)


@dataclass(frozen=True)
class _Entry:
    description: ObjectDescription
    loaded_at: float


class DescribeCache:
    """Object descriptions, each kept for `ttl` on `clock`.

    Args:
        load: Fetches one object's description from Salesforce.
        clock: Measures the TTL.
        ttl: How long a description is reused.
    """

    def __init__(
        self,
        load: Callable[[str], Awaitable[ObjectDescription]],
        *,
        clock: Clock | None = None,
        ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        self._load = load
        self._clock = clock or SystemClock()
        self._ttl = ttl.total_seconds()
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.loads = 0
        """How many descriptions were fetched (for tests and metrics)."""

    async def get(self, sobject: str) -> ObjectDescription:
        """The description of `sobject`, from the cache while fresh.

        Args:
            sobject: The object's API name (any case).

        Returns:
            Its description.
        """
        key = sobject.lower()
        entry = self._fresh(key)
        if entry is not None:
            return entry.description
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._fresh(key)
            if entry is not None:
                return entry.description
            self.loads += 1
            description = await self._load(sobject)
            self._entries[key] = _Entry(description, self._clock.monotonic())
            return description

    def invalidate(self, sobject: str | None = None) -> None:
        """Forget one object's description, or all of them."""
        if sobject is None:
            self._entries.clear()
        else:
            self._entries.pop(sobject.lower(), None)

    def _fresh(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or self._clock.monotonic() - entry.loaded_at >= self._ttl:
            return None
        return entry
