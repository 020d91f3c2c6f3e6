"""The org's after-save automation rewrote a field cosell wrote: adopt it, never fight it.

A Flow or trigger that sets a field after a save (issue 16) leaves the opportunity holding a
value nobody sent: cosell wrote X, the org keeps Y. A sync that took Y for a seller's edit on a
one-way field, or that wrote X again, would ping-pong with the automation (each write
triggering the rewrite again) or report a conflict on every later change.

How it is recognised, without any extra call: the opportunity was last modified by cosell's
integration user (`LastModifiedById`, read with the record; automation runs in the same
transaction as the write that triggered it, as that user), yet a field cosell's last write set
(`WRITTEN_MARKER` in the base, saved with that write) differs from the base the write recorded,
while Partner Center still holds the base. cosell wrote the base value, and nobody else
modified the record since, so that difference is the org's. A field cosell did not write in
its last write is never adopted (a seller's edit that a refusal kept from Partner Center stays
the seller's), and a seller's edit after cosell's write makes the seller the last modifier.

What is done, per field:

- a field that flows to Partner Center: the org's value is a Salesforce change like any other,
  and is sent (one write to the other side, then both agree: no second Salesforce write);
- a field that flows only to Salesforce: the org's value becomes the agreed base, with no
  write anywhere. cosell's value stays in Partner Center; the next real change there is
  written once and is no conflict.

Each adoption is named in the audit entry (counted per field), so an admin sees what the
automation changed. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cosell.mapping.types import STAGE_FIELD, FieldRule, Value
from cosell.sync.plan.rules import same_stage

WRITTEN_MARKER = "~salesforce.written"
"""Reserved base key: the mapped fields cosell's last Salesforce write set, comma-separated."""


def written_fields(base: Mapping[str, Value] | None) -> frozenset[str]:
    """The fields cosell's last Salesforce write set, as the base remembers them."""
    text = (base or {}).get(WRITTEN_MARKER)
    return frozenset(text.split(",")) if isinstance(text, str) and text else frozenset()


def with_written(new_base: Mapping[str, Value], fields: Iterable[str]) -> dict[str, Value]:
    """`new_base` remembering the mapped fields this reconcile writes to Salesforce."""
    marked = {k: v for k, v in new_base.items() if k != WRITTEN_MARKER}
    names = sorted(fields)
    if names:
        marked[WRITTEN_MARKER] = ",".join(names)
    return marked


@dataclass(frozen=True)
class Adoption:
    """What the merge should see once the org's rewrites are adopted.

    Attributes:
        partner_center: Partner Center's values, with a one-way field's value replaced by the
            org's (so that the merge agrees on it and writes nothing).
        adopted: the fields the automation rewrote, sorted.
        sent: of those, the ones whose org value goes on to Partner Center.
    """

    partner_center: Mapping[str, Value]
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


def adopt(
    rules: Sequence[FieldRule],
    partner_center: Mapping[str, Value],
    salesforce: Mapping[str, Value],
    base: Mapping[str, Value] | None,
    *,
    modified_by_us: bool,
) -> Adoption:
    """Adopt the fields the org's automation rewrote after cosell's last write.

    Args:
        rules: one rule per mapped field.
        partner_center: Partner Center's canonical values.
        salesforce: Salesforce's canonical values.
        base: the base cosell's last reconcile saved, with `WRITTEN_MARKER` (None: none yet,
            nothing to adopt).
        modified_by_us: the record's last modification was made by cosell's integration user.

    Returns:
        The values for the merge and what was adopted.
    """
    written = written_fields(base)
    if not modified_by_us or not base or not written:
        return Adoption(partner_center)
    values = dict(partner_center)
    adopted: list[str] = []
    sent: list[str] = []
    for rule in sorted(rules, key=lambda r: r.name):
        name = rule.name
        if name not in base or name not in written:
            continue
        same = same_stage if name == STAGE_FIELD else _equal
        org, agreed = salesforce.get(name), base[name]
        if same(org, agreed) or not same(partner_center.get(name), agreed):
            continue  # not rewritten, or Partner Center changed too: the merge decides
        adopted.append(name)
        if rule.to_partner_center:
            sent.append(name)
        else:
            values[name] = org
    return Adoption(values, tuple(adopted), tuple(sent))


def _equal(one: Value, other: Value) -> bool:
    return one == other
