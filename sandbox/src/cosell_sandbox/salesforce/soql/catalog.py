"""What the SOQL engine needs to know about the org, and how it reads rows.

The SOQL engine (`cosell_sandbox.salesforce.soql`) is pure: it parses a query and evaluates it
over rows it is given. The sandbox's record store implements `SoqlCatalog` (the schema) and
`RowSource` (the data); the engine never touches the store directly.

Rows are mappings from canonical field names to wire values, exactly as the REST API returns
them: ids and strings as `str`, dates as `"YYYY-MM-DD"`, datetimes as
`"YYYY-MM-DDTHH:MM:SS.sss+0000"`, numbers as `int`/`float`, booleans as `bool`, unset as `None`.
The engine converts values by the field's describe `type` for comparisons and sorting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class FieldInfo:
    """One field of an object, as describe reports it."""

    name: str  # canonical API name, e.g. "CloseDate"
    type: str  # describe type: id, string, textarea, picklist, multipicklist, reference, currency,
    # percent, double, int, boolean, date, datetime, url, email, phone, base64, address
    reference_to: tuple[str, ...] = ()  # for references: the target objects
    relationship_name: str | None = (
        None  # for references: e.g. "Account", "Owner", "Opportunity__r"
    )
    filterable: bool = True
    sortable: bool = True


@dataclass(frozen=True)
class ChildRelationship:
    """A child relationship usable in a subquery, e.g. Opportunity.OpportunityContactRoles."""

    relationship_name: str  # e.g. "OpportunityContactRoles", "Microsoft_Solutions__r"
    child_object: str  # e.g. "OpportunityContactRole"
    field: str  # the child's reference field pointing at the parent, e.g. "OpportunityId"


@dataclass(frozen=True)
class ObjectInfo:
    """One sObject type."""

    name: str  # canonical, e.g. "Opportunity", "Microsoft_Solution__c"
    fields: Mapping[str, FieldInfo]  # keyed by lower-cased field name
    child_relationships: Mapping[str, ChildRelationship] = field(
        default_factory=dict
    )  # lower-cased
    queryable: bool = True

    def field(self, name: str) -> FieldInfo | None:
        """The field called `name`, case-insensitively."""
        return self.fields.get(name.lower())

    def parent_relationship(self, name: str) -> FieldInfo | None:
        """The reference field whose relationship name is `name`, case-insensitively."""
        lowered = name.lower()
        for info in self.fields.values():
            if info.relationship_name and info.relationship_name.lower() == lowered:
                return info
        return None


class SoqlCatalog(Protocol):
    """The org's schema, as the SOQL engine sees it."""

    def object(self, name: str) -> ObjectInfo | None:
        """The object called `name` (case-insensitive), or None when the org has none."""
        ...


class RowSource(Protocol):
    """The org's data, as the SOQL engine reads it."""

    def rows(self, object_name: str, *, include_deleted: bool) -> Iterable[Mapping[str, Any]]:
        """Every row of `object_name` (canonical name); deleted ones only when asked."""
        ...

    def row(self, object_name: str, record_id: str) -> Mapping[str, Any] | None:
        """One row by its 18-character id, deleted or not; None when there is none."""
        ...
