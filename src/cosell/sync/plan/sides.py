"""Both sides of a link as read, and what the opportunity row holds (pure: the reads are `io/read.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cosell.mapping import Collections, SalesforceRecords, salesforce_query_fields
from cosell.mapping import Mapping as SyncMapping
from cosell.mapping.model import ACCOUNT, OPPORTUNITY
from cosell.mapping.types import Value
from cosell.partnercenter.models import Referral
from cosell.salesforce.values import parse_datetime

SYNC_ERROR_LENGTH = 255  # Partner_Center_Sync_Error__c is a Text(255)


def subqueries(spec: Collections) -> tuple[str, ...]:
    """The opportunity query's child subqueries that read the three collections.

    Args:
        spec: the mapping's `collections` section (object, relationship and field names).

    Returns:
        One `(SELECT ... FROM <relationship>)` per collection.
    """
    solutions = spec.solutions
    fields = ", ".join(dict.fromkeys(("Id", *solutions.names())))
    contact = ", ".join(f"Contact.{name}" for name in (*_PERSON_FIELDS, "Title"))
    user = ", ".join(f"User.{name}" for name in _PERSON_FIELDS)
    return (
        # The names are API names the mapping validated (`_api_name`), never user input.
        f"(SELECT {fields} FROM {solutions.relationship} ORDER BY {solutions.name})",  # noqa: S608
        f"(SELECT Id, IsPrimary, ContactId, {contact} FROM {spec.contact_roles.relationship})",  # noqa: S608
        f"(SELECT Id, UserId, {user} FROM {spec.team_members.relationship})",  # noqa: S608
    )


_PERSON_FIELDS = ("FirstName", "LastName", "Email", "Phone")


_OWN_FIELDS = (
    "Id",
    "Name",
    "AccountId",
    "LastModifiedDate",
    "LastModifiedById",  # cosell's own user: the org's automation rewrote (`automation.py`)
    "SystemModstamp",
)


def opportunity_fields(mapping: SyncMapping) -> list[str]:
    """The SELECT list of the opportunity query: mapped fields (`Account.` paths too) and ours."""
    wanted = salesforce_query_fields(mapping)
    fields: list[str] = []
    seen: set[str] = set()
    for name in (*_OWN_FIELDS, *wanted.get(OPPORTUNITY, ())):
        if name.lower() not in seen:
            seen.add(name.lower())
            fields.append(name)
    return fields


def records_of(opportunity: dict[str, Any]) -> SalesforceRecords:
    """The mapping's records of one opportunity row: the row, and its account (from `Account.`)."""
    nested = opportunity.get(ACCOUNT)
    account: dict[str, Any] | None = None
    if isinstance(nested, dict) and opportunity.get("AccountId"):
        account = {**nested, "Id": opportunity["AccountId"]}
    return {OPPORTUNITY: opportunity, ACCOUNT: account}


def referral_json(referral: Referral) -> dict[str, Any]:
    """The referral as the API returns it (camelCase JSON), for the mapping's functions."""
    body: dict[str, Any] = referral.model_dump(by_alias=True, mode="json")
    return body


def status_text(referral: Referral) -> str | None:
    """The referral's state as `Partner_Center_Status__c` shows it: "Status/Substatus"."""
    if referral.status is None:
        return None
    if referral.substatus is None:
        return referral.status.value
    return f"{referral.status.value}/{referral.substatus.value}"


def differs(current: Any, new: Any) -> bool:
    """Whether a Salesforce field holding `current` must be written to hold `new` ("" is unset)."""
    return (current if current not in ("", None) else None) != (
        new if new not in ("", None) else None
    )


def agreed_values(
    partner_center: Mapping[str, Value], salesforce: Mapping[str, Value]
) -> dict[str, Value]:
    """The base after a create: the fields both sides hold equally (the rest: owner decides)."""
    return {k: v for k, v in partner_center.items() if k in salesforce and salesforce[k] == v}


@dataclass(frozen=True)
class Sides:
    """Both sides of one link, as read in this reconcile.

    Attributes:
        referral: the referral (with the eTag to send in `If-Match`).
        records: the opportunity row and its account.
    """

    referral: Referral
    records: SalesforceRecords

    @property
    def referral_json(self) -> dict[str, Any]:
        """The referral as camelCase JSON."""
        return referral_json(self.referral)

    @property
    def opportunity(self) -> dict[str, Any]:
        """The opportunity row."""
        row = self.records[OPPORTUNITY]
        assert row is not None
        return row

    @property
    def last_modified(self) -> datetime | None:
        """The opportunity's `LastModifiedDate`, for `If-Unmodified-Since`."""
        text = self.opportunity.get("LastModifiedDate")
        return parse_datetime(text) if isinstance(text, str) and text else None


def children(opportunity: dict[str, Any], relationship: str) -> list[dict[str, Any]]:
    """The rows of a child subquery in an opportunity row (empty when it has none)."""
    block = opportunity.get(relationship)
    if not isinstance(block, dict):
        return []
    return [row for row in block.get("records") or () if isinstance(row, dict)]
