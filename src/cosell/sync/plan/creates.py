"""Creates, the pure part: what a new referral or opportunity holds, and what stops one (`run/creates.py` makes them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from cosell.mapping import (
    Collections,
)
from cosell.mapping import Mapping as Mapping_
from cosell.mapping.types import FieldRule, Value
from cosell.partnercenter.models import Referral, ReferralDirection
from cosell.salesforce.client import SaveResult
from cosell.store.types import Link
from cosell.sync.plan import sets
from cosell.sync.plan.audit import show
from cosell.sync.plan.rules import deal_problems, value_problem


def opportunity_share_refusal(spec: Collections, opportunity: dict[str, Any]) -> str | None:
    """Why the opportunity cannot be shared with Microsoft yet (no solution, no contact)."""
    items = sets.salesforce_items(spec, opportunity)
    return sets.share_refusal(
        has_solution=bool(items[sets.SOLUTIONS]),
        has_contact=bool(items[sets.CONTACTS]),
    )


def create_problems(mapping: Mapping_, values: Mapping[str, Value]) -> str | None:
    """What Partner Center would refuse in a new referral's values, checked before any call.

    Each mapped field's value (or its default, as the create body would carry it) is checked
    by `rules.value_problem`: a deal value that is set and not zero, a currency, an ISO-2
    country, FY26 values; then what spans fields, by `rules.deal_problems` (the deal type and
    the help requested, a services co-sell deal's partner role, solution area and play).

    Args:
        mapping: the mapping (fields, defaults, transforms).
        values: the opportunity's canonical values.

    Returns:
        None when nothing would be refused, else the message to park on the opportunity.
    """
    problems: list[str] = []
    sent: list[tuple[FieldRule, Value]] = []
    for mapped in mapping.fields:
        value = values.get(mapped.name)
        if value is None:
            value = mapped.default_value
        sent.append((mapped.rule(), value))
        problem = value_problem(mapped.rule(), value)
        if problem is not None:
            problems.append(problem)
    problems.extend(deal_problems(sent))
    if not problems:
        return None
    return (
        "cannot create the Partner Center referral: "
        + "; ".join(problems)
        + "; then save the opportunity again"
    )


def with_collections(
    spec: Collections, body: dict[str, Any], opportunity: dict[str, Any]
) -> dict[str, Any]:
    """The create body plus the opportunity's Microsoft solutions, contacts and team.

    Partner Center needs solutions and a customer contact for a referral that asks Microsoft
    for help; they come from the `Microsoft_Solution__c` rows, the contact roles (primary
    first) and the team members' users, read in the same query (`collections.py`).
    """
    items = sets.salesforce_items(spec, opportunity)
    solutions = [dict(row.item) for row in items[sets.SOLUTIONS].values()]
    if solutions:
        details = body.setdefault("details", {})
        details.setdefault("requirements", {})["solutions"] = solutions
    contacts = [dict(row.item) for row in items[sets.CONTACTS].values()]
    if contacts and not body.get("customerProfile", {}).get("team"):
        body.setdefault("customerProfile", {})["team"] = contacts
    team = [dict(row.item) for row in items[sets.TEAM].values()]
    if team and not body.get("team"):
        body["team"] = team
    return body


def invalid_new_referral(exc: Exception) -> str:
    """What Partner Center's model refused in a new referral, for the seller."""
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        return (
            f"cannot create the Partner Center referral: {detail}. Fill in the opportunity "
            "(amount, currency, close date) and its account (name, billing country) and save it"
        )
    return f"cannot create the Partner Center referral: {exc}"


def plain_incoming(referral: Referral, link: Link | None) -> bool:
    """Whether this referral only needs its opportunity created (a batch can create it).

    True for an incoming referral without an opportunity yet that names none itself and is
    not closed (a referral whose link lost its record id goes on being created too).
    """
    if link is not None:
        return link.record_id is None and link.referral_id is not None
    return (
        referral.direction == ReferralDirection.INCOMING
        and not referral.external_reference_id
        and not referral.is_terminal
    )


def account_match(fields: Mapping[str, Any]) -> tuple[str, str, str]:
    """How an account is matched: Name + BillingPostalCode + BillingCountry, case-insensitive."""

    def part(name: str) -> str:
        return str(fields.get(name) or "").casefold()  # SOQL's `=` ignores case too

    return part("Name"), part("BillingPostalCode"), part("BillingCountry")


def failed_item(result: SaveResult) -> str:
    """Why Salesforce did not save one record of a collection call."""
    return str(result.errors[0]) if result.errors else "Salesforce did not save it"


def person_name(first: str | None, last: str) -> str:
    """A person's name as an audit line shows it."""
    return show(f"{first} {last}" if first else last)
