"""The org's after-save automation rewrote a field cosell wrote: adopt it, never fight it.

A Flow or trigger that sets a field after a save (issue 16) leaves the opportunity holding a
value nobody sent: cosell wrote X, the org keeps Y. A sync that took Y for a seller's edit on a
one-way field, or that wrote X again, would ping-pong with the automation (each write
triggering the rewrite again) or report a conflict on every later change.

How it is recognised, without any extra call: the opportunity was last modified by cosell's
integration user (`LastModifiedById`, read with the record; automation runs in the same
transaction as the write that triggered it, as that user), yet a mapped field differs from the
base, while Partner Center still holds the base, and that field agreed with the base right
after cosell's last write (`SETTLED_MARKER`, saved with that write, lists the fields that did
not: a seller's change refused or held, a change against the field's direction). Nobody else
modified the record since, so the difference is the org's, whichever field it rewrote (a Flow
on the stage may set the next step). A seller's edit after cosell's write makes the seller the
last modifier, and a base saved without a Salesforce write keeps the marker as it was.
Residual case: a write the org refused parks the deal and writes its status without saving a
base; a seller's edit made before it could then read as the org's (for a field that flows to
Partner Center this changes only the audit's wording).

What is done, per field:

- a field that flows to Partner Center: the org's value is a Salesforce change like any other,
  and is sent (one write to the other side, then both agree: no second Salesforce write);
- a field that flows only to Salesforce, or whose org value Partner Center would refuse or
  hold (a closed referral takes no edits): the org's value becomes the agreed base, with no
  write anywhere and no error for the seller to clear (nobody asked for it). cosell's value
  stays in Partner Center and in the base; the org's is remembered beside it (`ALIAS_PREFIX`)
  as agreeing with it, so later reconciles see nothing to do, and the next real change on
  either side is merged as usual (written once, no conflict).

Each adoption is named in the audit entry (counted per field), so an admin sees what the
automation changed. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cosell.mapping.types import STAGE_FIELD, FieldRule, Value
from cosell.sync.plan.rules import ReferralState, hold_reason, refusal_reason, same_stage

ALIAS_PREFIX = "~salesforce.kept."
"""Reserved base keys: `ALIAS_PREFIX + field` holds the org's value of a kept field, which
agrees with the base's value of the field until either side changes it."""

SETTLED_MARKER = "~salesforce.unsettled"
"""Reserved base key, saved when cosell writes to Salesforce: the mapped fields (comma-separated,
possibly none) whose Salesforce value still differed from the new base after that write."""


def unsettled_fields(base: Mapping[str, Value] | None) -> frozenset[str] | None:
    """The fields left unsettled by cosell's last Salesforce write (None: no write known)."""
    text = (base or {}).get(SETTLED_MARKER)
    if not isinstance(text, str):
        return None
    return frozenset(text.split(",")) if text else frozenset()


def with_settled(
    new_base: Mapping[str, Value],
    salesforce: Mapping[str, Value],
    to_salesforce: Mapping[str, Value],
    rules: Sequence[FieldRule],
) -> dict[str, Value]:
    """`new_base` remembering which fields Salesforce will still differ on after this write.

    Args:
        new_base: the plan's new base.
        salesforce: Salesforce's canonical values as read.
        to_salesforce: the values this reconcile writes to Salesforce.
        rules: one rule per mapped field.
    """
    after = {**salesforce, **to_salesforce}
    unsettled = []
    for rule in rules:
        same = same_stage if rule.name == STAGE_FIELD else _equal
        if rule.name not in new_base or not same(after.get(rule.name), new_base[rule.name]):
            unsettled.append(rule.name)
    return {**new_base, SETTLED_MARKER: ",".join(sorted(unsettled))}


@dataclass(frozen=True)
class Adoption:
    """What the merge should see once the org's rewrites are adopted.

    Attributes:
        salesforce: Salesforce's values for the merge: a kept field's org value replaced by
            the base (so that the merge agrees on it and writes nothing either way).
        aliases: field -> the org's value kept as agreeing with the base (`ALIAS_PREFIX`
            markers of the new base; a field leaves when either side changes it).
        adopted: the fields the automation rewrote since cosell's last write, sorted.
        sent: of those, the ones whose org value goes on to Partner Center.
    """

    salesforce: Mapping[str, Value]
    aliases: Mapping[str, Value] = field(default_factory=dict)
    adopted: tuple[str, ...] = ()
    sent: tuple[str, ...] = ()

    @property
    def message(self) -> str | None:
        """The audit entry's part about the adoption (None: nothing adopted)."""
        if not self.adopted:
            return None
        kept = [name for name in self.adopted if name not in self.sent]
        parts = []
        if kept:
            parts.append(f"kept as agreed: {', '.join(kept)}")
        if self.sent:
            parts.append(f"sent to Partner Center: {', '.join(self.sent)}")
        return (
            f"Salesforce automation rewrote {len(self.adopted)} field(s) after cosell's write "
            f"({'; '.join(parts)}); not written back"
        )

    def new_base(self, new_base: Mapping[str, Value]) -> dict[str, Value]:
        """The plan's new base with the aliases still in force (and no other)."""
        kept = {k: v for k, v in new_base.items() if not k.startswith(ALIAS_PREFIX)}
        return {**kept, **{ALIAS_PREFIX + name: v for name, v in self.aliases.items()}}


def adopt(
    rules: Sequence[FieldRule],
    partner_center: Mapping[str, Value],
    salesforce: Mapping[str, Value],
    base: Mapping[str, Value] | None,
    state: ReferralState,
    *,
    modified_by_us: bool,
) -> Adoption:
    """Adopt the fields the org's automation rewrote after cosell's last write.

    Args:
        rules: one rule per mapped field.
        partner_center: Partner Center's canonical values.
        salesforce: Salesforce's canonical values.
        base: the base cosell's last reconcile saved, with `SETTLED_MARKER` and the aliases
            (None: none yet, nothing to adopt).
        state: the referral's state, for Partner Center's rules on the values sent.
        modified_by_us: the record's last modification was made by cosell's integration user.

    Returns:
        The values for the merge and what was adopted.
    """
    if not base:
        return Adoption(salesforce)
    unsettled = unsettled_fields(base) if modified_by_us else None
    values = dict(salesforce)
    aliases: dict[str, Value] = {}
    adopted: list[str] = []
    sent: list[str] = []
    for rule in sorted(rules, key=lambda r: r.name):
        name = rule.name
        if name not in base:
            continue
        same = same_stage if name == STAGE_FIELD else _equal
        org, agreed, current = salesforce.get(name), base[name], partner_center.get(name)
        alias = ALIAS_PREFIX + name
        if alias in base and same(org, base[alias]):  # adopted before, unchanged since
            values[name] = agreed  # a Partner Center change is then the only change
            if same(current, agreed):
                aliases[name] = org
            continue
        if not same(current, agreed) or same(org, agreed):
            continue  # Partner Center changed (the merge decides), or nothing to adopt
        if unsettled is None or name in unsettled:
            continue  # someone else's change, or one cosell saw before its write
        adopted.append(name)
        if (
            rule.to_partner_center
            and refusal_reason(rule, org, current, state) is None
            and hold_reason(rule, org, state) is None
        ):
            sent.append(name)
        else:
            aliases[name] = org
            values[name] = agreed
    return Adoption(values, aliases, tuple(adopted), tuple(sent))


def _equal(one: Value, other: Value) -> bool:
    return one == other
