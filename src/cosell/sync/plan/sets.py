"""Collections: Microsoft solutions, customer contacts and the team, kept in sync both ways.

Three lists live on both sides of a link:

    collection   Partner Center                      Salesforce (children of the opportunity)
    solutions    details.requirements.solutions      Microsoft_Solution__c rows (Solution_Id__c)
    contacts     customerProfile.team                OpportunityContactRole -> Contact
    team         team                                OpportunityTeamMember -> User

Items are compared by identity, not position: a solution by its id, a person by email
(lowercase), else by name. Per collection, `merge_sets` (pure) is a three-way *set* merge
against the keys both sides last agreed on: kept if on both; added on one side -> added to
the other; removed on one side since the base -> removed from the other; never duplicated.
Without a base (a link's first reconcile) nothing counts as removed: the union is kept.

The agreed keys are stored in the link's base snapshot next to the mapped fields, one sorted
JSON list per collection (`@solutions`, `@contacts`, `@team`), so the base stays a flat
mapping of strings. The merge of the mapped fields ignores them; `plan` carries them over.

The customer contacts are all the opportunity's contact roles, the primary first (it is the one
a referral created from the opportunity sends first, and the one a referral's first contact
becomes): `customerProfile.team` is a list of customer contacts, so comparing it with the
primary role alone could never make both sides equal once Partner Center holds two.

Partner Center's rules, checked before any call (a refused change is not sent, its
collection keeps its old base, and the link is parked with the reason until the seller fixes
it, as `merge.Refusal` does for fields):

- Asking Microsoft for help (the mapping's `help` field) makes a co-sell referral, which needs
  at least one solution and a customer contact: the help request is not sent without them.
- A co-sell referral keeps at least one solution: removing the last one is not sent.
- The customer contacts are read-only once the referral is shared with Microsoft.
- A closed referral (Won, Lost, Declined, Expired) takes no change at all.

Writes: Partner Center's changes are whole-list `add` operations in the reconcile's one JSON
Patch. Salesforce's are `ChildWrites`, sent by `write` in one composite call (all or none)
together with the opportunity's own update: deletes of child rows, new contacts and their
roles (`@{reference.id}`), new solutions, new team members. Adding people from Partner Center
first needs their ids (`resolve`: one query for the account's contacts by email, one for active
users by email, only when people are added). A team member whose email matches no active
Salesforce user cannot be an OpportunityTeamMember: the audit says so, the key is remembered
in `@team_unmatched` (counted as present in Salesforce, so it is neither retried on every
reconcile nor removed from Partner Center), and the link is not failed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from email.utils import format_datetime as http_date
from typing import Any

from cosell.mapping import Collections
from cosell.mapping.model import OPPORTUNITY
from cosell.mapping.types import Value
from cosell.partnercenter.models import NO_HELP_CODES, Referral
from cosell.salesforce.client import CompositeSubrequest
from cosell.sync.plan.merge import Plan, Refusal
from cosell.sync.plan.rules import ReferralState
from cosell.sync.plan.sides import Sides, children

SOLUTIONS = "solutions"
CONTACTS = "contacts"
TEAM = "team"
COLLECTIONS = (SOLUTIONS, CONTACTS, TEAM)
UNMATCHED = "team_unmatched"
HELP = "help"  # the canonical field of "How can Microsoft help?" (DESIGN.md's data model)

CONTACT_ROLE = "Decision Maker"  # a standard OpportunityContactRole role of every org
TEAM_ACCESS = "Read"  # least privilege for a team member added from Partner Center
SOLUTION_NAME_LENGTH = 80  # Microsoft_Solution__c.Name is a Text(80) name field

_PC_PATHS = {
    SOLUTIONS: ("details", "requirements", "solutions"),
    CONTACTS: ("customerProfile", "team"),
    TEAM: ("team",),
}
_PERSON = ("firstName", "lastName", "email", "phoneNumber", "title")
_SOLUTION = ("id", "name", "type")
_LABELS = {SOLUTIONS: "solution", CONTACTS: "customer contact", TEAM: "team member"}

Item = Mapping[str, Any]
"""One item as Partner Center spells it (camelCase members; `id` for a solution)."""


def base_key(collection: str) -> str:
    """The base snapshot's key holding a collection's agreed keys (never a mapped field name)."""
    return f"@{collection}"


# -- the pure set merge ----------------------------------------------------------------------


@dataclass(frozen=True)
class SetPlan:
    """What one collection's three-way set merge changes.

    Attributes:
        add_to_salesforce: keys to add to Salesforce (on Partner Center only, new since the base).
        remove_from_salesforce: keys to remove from Salesforce (Partner Center removed them).
        add_to_partner_center: keys to add to Partner Center.
        remove_from_partner_center: keys to remove from Partner Center.
        agreed: the keys both sides hold once the plan is applied (the new base).
    """

    add_to_salesforce: frozenset[str] = frozenset()
    remove_from_salesforce: frozenset[str] = frozenset()
    add_to_partner_center: frozenset[str] = frozenset()
    remove_from_partner_center: frozenset[str] = frozenset()
    agreed: frozenset[str] = frozenset()

    @property
    def changes_partner_center(self) -> bool:
        """Whether Partner Center's list changes."""
        return bool(self.add_to_partner_center or self.remove_from_partner_center)

    @property
    def changes_salesforce(self) -> bool:
        """Whether Salesforce's rows change."""
        return bool(self.add_to_salesforce or self.remove_from_salesforce)


def merge_sets(partner_center: Set[str], salesforce: Set[str], base: Set[str] | None) -> SetPlan:
    """Three-way merge of two sets of keys against the keys both last agreed on.

    Args:
        partner_center: the keys Partner Center holds.
        salesforce: the keys Salesforce holds.
        base: the keys both sides last agreed on; None when never agreed (nothing is removed).

    Returns:
        The plan: a key on both is kept; a key on one side only is added to the other when it
        is new since the base, and removed from its side when the other side removed it.
    """
    known = base or frozenset()
    to_sf: set[str] = set()
    from_sf: set[str] = set()
    to_pc: set[str] = set()
    from_pc: set[str] = set()
    for key in partner_center - salesforce:
        (from_pc if key in known else to_sf).add(key)
    for key in salesforce - partner_center:
        (from_sf if key in known else to_pc).add(key)
    agreed = (partner_center & salesforce) | to_sf | to_pc
    return SetPlan(
        frozenset(to_sf),
        frozenset(from_sf),
        frozenset(to_pc),
        frozenset(from_pc),
        frozenset(agreed),
    )


# -- both sides as keyed items ---------------------------------------------------------------


def person_key(item: Item) -> str | None:
    """A person's identity: the email in lowercase, else "name:" and the name; None if neither."""
    email = (item.get("email") or "").strip().lower()
    if email:
        return email
    name = " ".join(p for p in (item.get("firstName"), item.get("lastName")) if p).strip().lower()
    return f"name:{name}" if name else None


def _key(collection: str, item: Item) -> str | None:
    if collection == SOLUTIONS:
        text = str(item.get("id") or "").strip()
        return text or None
    return person_key(item)


def partner_center_items(referral: Mapping[str, Any]) -> dict[str, dict[str, Item]]:
    """The referral's collections (camelCase JSON): collection -> key -> item, in list order."""
    found: dict[str, dict[str, Item]] = {}
    for collection, path in _PC_PATHS.items():
        items: dict[str, Item] = {}
        for item in _at(referral, path) or ():
            key = _key(collection, item) if isinstance(item, dict) else None
            if key is not None:
                items.setdefault(key, item)
        found[collection] = items
    return found


@dataclass(frozen=True)
class Row:
    """A child row of the opportunity, as a Partner Center item and the row to delete.

    Attributes:
        item: the item in Partner Center's spelling.
        sobject: the child row's object.
        row_id: the child row's id (None when the query did not return it).
        primary: for a contact role, whether it is the primary one.
    """

    item: Item
    sobject: str
    row_id: str | None
    primary: bool = False


def salesforce_items(
    spec: Collections, opportunity: Mapping[str, Any]
) -> dict[str, dict[str, Row]]:
    """The opportunity's child rows (from its subqueries): collection -> key -> row.

    Args:
        spec: the mapping's `collections` section.
        opportunity: the opportunity row, read with `sides.subqueries(spec)`.

    Returns:
        Per collection, the rows by key (contact roles: the primary first).
    """
    names = spec.solutions
    solutions: dict[str, Row] = {}
    for row in children(dict(opportunity), names.relationship):
        item = _pruned(
            {
                "id": row.get(names.solution_id),
                "name": row.get(names.name),
                "type": row.get(names.type),
            }
        )
        key = _key(SOLUTIONS, item)
        if key is not None:
            solutions.setdefault(key, Row(item, names.object, row.get("Id")))
    contacts: dict[str, Row] = {}
    roles = sorted(
        children(dict(opportunity), spec.contact_roles.relationship),
        key=lambda r: not r.get("IsPrimary"),
    )
    for row in roles:
        person = _person(row.get("Contact"))
        key = person_key(person) if person else None
        if person is not None and key is not None:
            contacts.setdefault(
                key,
                Row(person, spec.contact_roles.object, row.get("Id"), bool(row.get("IsPrimary"))),
            )
    team: dict[str, Row] = {}
    for row in children(dict(opportunity), spec.team_members.relationship):
        person = _person(row.get("User"))
        key = person_key(person) if person else None
        if person is not None and key is not None:
            team.setdefault(key, Row(person, spec.team_members.object, row.get("Id")))
    return {SOLUTIONS: solutions, CONTACTS: contacts, TEAM: team}


def _person(record: Any) -> dict[str, Any] | None:
    if not isinstance(record, dict):
        return None
    return _pruned(
        {
            "firstName": record.get("FirstName"),
            "lastName": record.get("LastName"),
            "email": record.get("Email"),
            "phoneNumber": record.get("Phone"),
            "title": record.get("Title"),
        }
    )


def _pruned(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v not in (None, "")}


def _at(document: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = document
    for step in path:
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


def stored_keys(base: Mapping[str, Value] | None, name: str) -> frozenset[str] | None:
    """The keys a base holds for a collection (or `UNMATCHED`); None when it holds none."""
    text = None if base is None else base.get(base_key(name))
    if not isinstance(text, str):
        return None
    try:
        keys = json.loads(text)
    except ValueError:
        return None
    return frozenset(str(k) for k in keys) if isinstance(keys, list) else None


def stored_set(keys: Set[str]) -> str:
    return json.dumps(sorted(keys))


# -- the plan of one reconcile ---------------------------------------------------------------


@dataclass(frozen=True)
class ChildWrites:
    """The opportunity's child rows to write, in one composite call (`write`).

    Attributes:
        deletes: (object, row id) of rows to delete.
        solutions: new solution rows (the mapping's fields, without the parent field).
        contacts: people to add as contact roles (Partner Center's spelling).
        team: people to add as team members (Partner Center's spelling).
        make_primary: whether the first new contact role is the primary one (none left).
        contact_ids: person key -> existing Contact id (`resolve` fills it).
        user_ids: person key -> active User id (`resolve` fills it).
        resolved: whether `resolve` has looked the people up.
    """

    deletes: tuple[tuple[str, str], ...] = ()
    solutions: tuple[dict[str, Any], ...] = ()
    contacts: tuple[Item, ...] = ()
    team: tuple[Item, ...] = ()
    make_primary: bool = False
    contact_ids: Mapping[str, str] = field(default_factory=dict)
    user_ids: Mapping[str, str] = field(default_factory=dict)
    resolved: bool = False

    @property
    def is_empty(self) -> bool:
        """Nothing to write."""
        return not (self.deletes or self.solutions or self.contacts or self.team)


@dataclass(frozen=True)
class CollectionsPlan:
    """What the collections add to one reconcile's decision.

    Attributes:
        plan: the fields' plan, with the collections' base keys and refusals added (and the
            help request taken out when it is refused).
        operations: JSON Patch operations for Partner Center (whole lists).
        children: the Salesforce child rows to write, or None.
        messages: audit lines for what changes.
    """

    plan: Plan
    operations: list[dict[str, Any]]
    children: ChildWrites | None
    messages: tuple[str, ...]


def plan(
    spec: Collections,
    referral: Referral,
    referral_json: Mapping[str, Any],
    opportunity: Mapping[str, Any],
    base: Mapping[str, Value] | None,
    fields: Plan,
) -> CollectionsPlan:
    """Merge the three collections of a link and check Partner Center's rules (pure).

    Args:
        spec: the mapping's `collections` section.
        referral: the referral as read (its sharing state).
        referral_json: the same referral as camelCase JSON.
        opportunity: the opportunity row with its child subqueries.
        base: the link's base snapshot (None: first reconcile).
        fields: the merge's plan of the mapped fields.

    Returns:
        The fields' plan extended with the collections, the operations, the child writes and
        the audit lines.
    """
    pc_items = partner_center_items(referral_json)
    sf_rows = salesforce_items(spec, opportunity)
    unmatched = stored_keys(base, UNMATCHED) or frozenset()
    unmatched &= frozenset(pc_items[TEAM])  # Partner Center removed them: forget them
    plans: dict[str, SetPlan] = {}
    for collection in COLLECTIONS:
        sf_keys = frozenset(sf_rows[collection])
        if collection == TEAM:
            sf_keys |= unmatched
        plans[collection] = merge_sets(
            frozenset(pc_items[collection]), sf_keys, stored_keys(base, collection)
        )
    new_base: dict[str, Value] = dict(fields.new_base)
    refusals = list(fields.refusals)
    to_partner_center = dict(fields.to_partner_center)
    co_sell = _asks_help(referral) or to_partner_center.get(HELP) is not None
    shared = referral.is_shared_with_microsoft
    refused: dict[str, str] = {}
    state = ReferralState.of(referral)
    if state.is_terminal:
        for collection in COLLECTIONS:
            if plans[collection].changes_partner_center:
                refused[collection] = _closed(state, collection)
    if shared and CONTACTS not in refused and plans[CONTACTS].changes_partner_center:
        refused[CONTACTS] = _contacts_read_only(plans[CONTACTS], pc_items[CONTACTS])
    if (
        co_sell
        and SOLUTIONS not in refused
        and plans[SOLUTIONS].remove_from_partner_center
        and not (
            (frozenset(pc_items[SOLUTIONS]) - plans[SOLUTIONS].remove_from_partner_center)
            | plans[SOLUTIONS].add_to_partner_center
        )
    ):
        refused[SOLUTIONS] = _last_solution(plans[SOLUTIONS])
    for collection, reason in refused.items():
        plans[collection] = replace(
            plans[collection],
            add_to_partner_center=frozenset(),
            remove_from_partner_center=frozenset(),
        )
        refusals.append(Refusal(collection, None, reason))
    help_reason = _help_refusal(referral, to_partner_center, pc_items, plans)
    if help_reason is not None:
        refusals.append(Refusal(HELP, to_partner_center.pop(HELP), help_reason))
        if base is not None and HELP in base:
            new_base[HELP] = base[HELP]
        else:
            new_base.pop(HELP, None)
    for collection in COLLECTIONS:
        if collection in refused:
            old = base.get(base_key(collection)) if base is not None else None
            if old is not None:
                new_base[base_key(collection)] = old
        else:
            new_base[base_key(collection)] = stored_set(plans[collection].agreed)
    if unmatched:
        new_base[base_key(UNMATCHED)] = stored_set(unmatched)
    operations = _operations(referral_json, pc_items, sf_rows, plans)
    extended = replace(
        fields,
        to_partner_center=to_partner_center,
        new_base=new_base,
        refusals=tuple(sorted(refusals, key=lambda r: r.field)),
    )
    writes = _child_writes(spec, pc_items, sf_rows, plans, unmatched)
    return CollectionsPlan(
        plan=extended,
        operations=operations,
        children=None if writes.is_empty else writes,
        messages=tuple(_messages(plans, pc_items, sf_rows)),
    )


def _asks_help(referral: Referral) -> bool:
    code = referral.invite_context.assistance_request_code if referral.invite_context else None
    return code is not None and code not in NO_HELP_CODES


def _help_refusal(
    referral: Referral,
    to_partner_center: Mapping[str, Value],
    pc_items: Mapping[str, Mapping[str, Item]],
    plans: Mapping[str, SetPlan],
) -> str | None:
    """Why asking Microsoft for help cannot be sent now, or None."""
    if to_partner_center.get(HELP) is None or _asks_help(referral):
        return None
    return share_refusal(
        has_solution=bool(_after(pc_items[SOLUTIONS], plans[SOLUTIONS])),
        has_contact=bool(_after(pc_items[CONTACTS], plans[CONTACTS])),
    )


def share_refusal(*, has_solution: bool, has_contact: bool) -> str | None:
    """Why an opportunity cannot be shared with Microsoft (co-sell) yet, or None.

    Args:
        has_solution: the referral will have at least one Microsoft solution.
        has_contact: the referral will have a customer contact.

    Returns:
        A message for the seller saying what to add, or None when nothing is missing.
    """
    missing = []
    if not has_solution:
        missing.append(
            "at least one Microsoft Solution (a Microsoft_Solution__c with its Solution Id)"
        )
    if not has_contact:
        missing.append("a customer contact (a Contact Role on the opportunity, primary)")
    if not missing:
        return None
    return (
        "Sharing with Microsoft (How can Microsoft help) needs "
        + " and ".join(missing)
        + " on the opportunity; it was not sent to Partner Center. Add "
        + ("them" if len(missing) > 1 else "it")
        + ", or clear How can Microsoft help, to clear this error."
    )


def _after(items: Mapping[str, Item], set_plan: SetPlan) -> frozenset[str]:
    return (frozenset(items) - set_plan.remove_from_partner_center) | set_plan.add_to_partner_center


def _closed(state: ReferralState, collection: str) -> str:
    return (
        f"The referral is {state.stage} in Partner Center, and a closed referral cannot be "
        f"changed; the {_LABELS[collection]} change on the opportunity was not sent. Undo it "
        "to clear this error."
    )


def _contacts_read_only(set_plan: SetPlan, items: Mapping[str, Item]) -> str:
    kept = ", ".join(show_item(items[k]) for k in sorted(items)) or "none"
    return (
        "Partner Center does not allow changing the customer contact once the referral is "
        "shared with Microsoft; the contact role change was not sent. Set the opportunity's "
        f"contact roles back to {kept} to clear this error."
    )


def _last_solution(set_plan: SetPlan) -> str:
    removed = ", ".join(sorted(set_plan.remove_from_partner_center))
    return (
        "A referral shared with Microsoft needs at least one Microsoft Solution; the removal of "
        f"{removed} was not sent to Partner Center. Add a Microsoft Solution to the "
        "opportunity to clear this error."
    )


def show_item(item: Item) -> str:
    if "email" in item or "firstName" in item or "lastName" in item:
        name = " ".join(p for p in (item.get("firstName"), item.get("lastName")) if p)
        email = item.get("email")
        return f"{name} <{email}>" if name and email else str(name or email)
    return str(item.get("id"))


def _operations(
    referral_json: Mapping[str, Any],
    pc_items: Mapping[str, Mapping[str, Item]],
    sf_rows: Mapping[str, Mapping[str, Row]],
    plans: Mapping[str, SetPlan],
) -> list[dict[str, Any]]:
    """One whole-list `add` per changed collection (an `add` of the parent when it is absent)."""
    ops: list[dict[str, Any]] = []
    for collection in COLLECTIONS:
        set_plan = plans[collection]
        if not set_plan.changes_partner_center:
            continue
        items = [
            dict(item)
            for key, item in pc_items[collection].items()
            if key not in set_plan.remove_from_partner_center
        ]
        items += [
            dict(sf_rows[collection][key].item) for key in sorted(set_plan.add_to_partner_center)
        ]
        path = _PC_PATHS[collection]
        parent = path[:-1]
        if parent and not isinstance(_at(referral_json, parent), dict):
            ops.append({"op": "add", "path": "/" + "/".join(parent), "value": {path[-1]: items}})
        else:
            ops.append({"op": "add", "path": "/" + "/".join(path), "value": items})
    return ops


def _child_writes(
    spec: Collections,
    pc_items: Mapping[str, Mapping[str, Item]],
    sf_rows: Mapping[str, Mapping[str, Row]],
    plans: Mapping[str, SetPlan],
    unmatched: Set[str],
) -> ChildWrites:
    deletes = tuple(
        (row.sobject, row.row_id)
        for collection in COLLECTIONS
        for key in sorted(plans[collection].remove_from_salesforce)
        if (row := sf_rows[collection].get(key)) is not None and row.row_id is not None
    )
    solutions = tuple(
        solution_fields(spec, pc_items[SOLUTIONS][key])
        for key in sorted(plans[SOLUTIONS].add_to_salesforce)
    )
    left = [
        row
        for key, row in sf_rows[CONTACTS].items()
        if key not in plans[CONTACTS].remove_from_salesforce
    ]
    return ChildWrites(
        deletes=deletes,
        solutions=solutions,
        contacts=tuple(pc_items[CONTACTS][k] for k in sorted(plans[CONTACTS].add_to_salesforce)),
        team=tuple(
            pc_items[TEAM][k] for k in sorted(plans[TEAM].add_to_salesforce) if k not in unmatched
        ),
        make_primary=not any(row.primary for row in left),
    )


def _messages(
    plans: Mapping[str, SetPlan],
    pc_items: Mapping[str, Mapping[str, Item]],
    sf_rows: Mapping[str, Mapping[str, Row]],
) -> list[str]:
    lines: list[str] = []
    for collection in COLLECTIONS:
        set_plan, label = plans[collection], _LABELS[collection]
        pc, sf = pc_items[collection], sf_rows[collection]
        for verb, keys, source in (
            ("Partner Center → Salesforce: added", set_plan.add_to_salesforce, pc),
            ("Partner Center → Salesforce: removed", set_plan.remove_from_salesforce, None),
            ("Salesforce → Partner Center: added", set_plan.add_to_partner_center, None),
            ("Salesforce → Partner Center: removed", set_plan.remove_from_partner_center, pc),
        ):
            if keys:
                shown = [
                    show_item(source[k]) if source is not None else show_item(sf[k].item)
                    for k in sorted(keys)
                ]
                lines.append(f"{verb} {label} {', '.join(shown)}")
    return lines


# -- Salesforce writes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """`resolve`'s answer: the child writes with ids, and what it found missing.

    Attributes:
        children: the child writes, people's ids filled in.
        unmatched: keys of team members no active Salesforce user has (not written).
        messages: audit lines for them.
    """

    children: ChildWrites
    unmatched: frozenset[str]
    messages: tuple[str, ...]


def unmatched_base(base: Mapping[str, Value], resolved: Resolved) -> dict[str, Value]:
    """The base entry remembering team members no Salesforce user matches (empty: none new).

    Args:
        base: the new base planned (its `@team_unmatched`, if any).
        resolved: `resolve`'s answer.

    Returns:
        `{"@team_unmatched": sorted JSON list}` with the new ones added, or `{}`.
    """
    if not resolved.unmatched:
        return {}
    known = stored_keys(base, UNMATCHED) or frozenset()
    return {base_key(UNMATCHED): stored_set(known | resolved.unmatched)}


def subrequests(
    spec: Collections, sides: Sides, opportunity_fields: Mapping[str, Any], writes: ChildWrites
) -> list[list[CompositeSubrequest]]:
    """The composite subrequests of one reconcile's Salesforce writes, in groups, opportunity first.

    Args:
        spec: the mapping's `collections` section (the objects written).
        sides: both sides as read (the opportunity's id, account and `LastModifiedDate`).
        opportunity_fields: the opportunity's own fields to write (may be empty).
        writes: the resolved child writes.

    Returns:
        Groups of subrequests that must go in the same call (a new contact and its role): the
        opportunity's PATCH (with `If-Unmodified-Since`), deletes, new contacts and their
        roles, new solutions, new team members.
    """
    opportunity_id = str(sides.opportunity["Id"])
    groups: list[list[CompositeSubrequest]] = []
    if opportunity_fields:
        headers = {}
        if sides.last_modified is not None:
            headers["If-Unmodified-Since"] = http_date(sides.last_modified, usegmt=True)
        groups.append(
            [
                CompositeSubrequest(
                    "PATCH",
                    f"sobjects/{OPPORTUNITY}/{opportunity_id}",
                    "opportunity",
                    body=dict(opportunity_fields),
                    headers=headers,
                )
            ]
        )
    for index, (sobject, row_id) in enumerate(writes.deletes):
        groups.append(
            [CompositeSubrequest("DELETE", f"sobjects/{sobject}/{row_id}", f"delete{index}")]
        )
    primary = writes.make_primary
    for index, person in enumerate(writes.contacts):
        groups.append(_contact_role(spec, sides, person, writes, index, primary=primary))
        primary = False
    for index, solution in enumerate(writes.solutions):
        body = {**solution, spec.solutions.parent: opportunity_id}
        url = f"sobjects/{spec.solutions.object}"
        groups.append([CompositeSubrequest("POST", url, f"solution{index}", body)])
    for index, member in enumerate(writes.team):
        body = {
            "OpportunityId": opportunity_id,
            "UserId": writes.user_ids[person_key(member) or ""],
            "OpportunityAccessLevel": TEAM_ACCESS,
        }
        groups.append(
            [
                CompositeSubrequest(
                    "POST", f"sobjects/{spec.team_members.object}", f"member{index}", body
                )
            ]
        )
    return groups


def _contact_role(
    spec: Collections, sides: Sides, person: Item, writes: ChildWrites, index: int, *, primary: bool
) -> list[CompositeSubrequest]:
    """A contact role for `person`, after creating the Contact when the account has none."""
    group: list[CompositeSubrequest] = []
    contact_id = writes.contact_ids.get(person_key(person) or "")
    if contact_id is None:
        fields = _contact_fields(person, sides.opportunity.get("AccountId"))
        group.append(CompositeSubrequest("POST", "sobjects/Contact", f"contact{index}", fields))
        contact_id = f"@{{contact{index}.id}}"
    role = {
        "OpportunityId": str(sides.opportunity["Id"]),
        "ContactId": contact_id,
        "Role": CONTACT_ROLE,
        "IsPrimary": primary,
    }
    group.append(
        CompositeSubrequest("POST", f"sobjects/{spec.contact_roles.object}", f"role{index}", role)
    )
    return group


def _contact_fields(person: Item, account_id: Any) -> dict[str, Any]:
    last = person.get("lastName") or person.get("firstName") or person.get("email") or "Unknown"
    return _pruned(
        {
            "AccountId": account_id,
            "FirstName": person.get("firstName") if person.get("lastName") else None,
            "LastName": last,
            "Email": person.get("email"),
            "Phone": person.get("phoneNumber"),
            "Title": person.get("title"),
        }
    )


# -- opportunities created from referrals ----------------------------------------------------


def solution_fields(spec: Collections, item: Item) -> dict[str, Any]:
    names = spec.solutions
    return _pruned(
        {
            names.solution_id: item.get("id"),
            names.name: str(item.get("name") or item.get("id") or "")[:SOLUTION_NAME_LENGTH],
            names.type: item.get("type"),
        }
    )


__all__ = [
    "COLLECTIONS",
    "ChildWrites",
    "CollectionsPlan",
    "Resolved",
    "SetPlan",
    "base_key",
    "merge_sets",
    "plan",
    "share_refusal",
    "unmatched_base",
]
