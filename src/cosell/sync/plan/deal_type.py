"""A deal's sharing fields on updates: sent together or not at all, and read back at once.

Partner Center has no deal-type member: a referral is *Private*, *Partner-led* or *Co-sell*
by its consent to share with Microsoft sellers and the help it asks of Microsoft
(`consent/consentToShareReferralWithMicrosoftSellers`, `inviteContext/assistanceRequestCode`).
The deal type, the help, the visibility and the services co-sell fields (partner role, solution
area and play) therefore only make sense together. On create `rules.deal_problems` checks them
before the POST (`creates.create_problems`); `consistent` does the same for an update's plan,
after the merge and the collections have decided what each field sends:

- **The state after the write.** Partner Center's values with the plan's writes applied,
  where the deal type follows the help when the seller did not choose one in this change (help
  asked makes a deal Co-sell: a seller who only asks for help gets a Co-sell deal).
- **New problems withhold the group.** A cross-field rule that state breaks, and Partner
  Center's current state does not (an old inconsistency is not the seller's edit), withholds
  every sharing field the plan sends: a Deal Type changed to Co-sell whose help is not sent
  (refused: no solution or contact yet; held: the referral is on hold) is not half-sent as a
  consent alone, a Private deal does not get its visibility ticked, a services co-sell deal
  does not lose its play. Their base stays, so the seller's values stay "changed" and are sent
  together once the problem is fixed; the deal shows one refusal saying what to fix.
- **Read back in the same sync.** When the plan's writes change the referral's deal type
  (help asked on a Partner-led or Private deal), Salesforce's Deal Type gets it in the same
  reconcile's Salesforce write, not one sync late. (The JSON Patch is atomic: Partner Center
  takes the whole of it or refuses it, so the type after the write is known before it.)

Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from cosell.mapping.types import FieldRule, Value
from cosell.partnercenter.models import NO_HELP_CODES, DealType
from cosell.sync.plan.merge import Plan, Refusal
from cosell.sync.plan.rules import DEAL_TYPE_KIND, deal_problems

HELP_PATH = "inviteContext/assistanceRequestCode"
CONSENT_PATH = "consent/consentToShareReferralWithMicrosoftSellers"
SHARING_PATHS = frozenset({HELP_PATH, CONSENT_PATH, "partnerRole", "solutionArea", "solutionPlay"})
"""The referral members whose fields go together with the deal type."""


def consistent(
    plan: Plan,
    rules: Sequence[FieldRule],
    partner_center: Mapping[str, Value],
    salesforce: Mapping[str, Value],
    base: Mapping[str, Value] | None,
) -> Plan:
    """The plan with its sharing fields checked together, and the deal type read back.

    Sharing fields that would break a cross-field rule are withheld; the deal type Partner
    Center will hold after the writes goes to Salesforce in the same reconcile.

    Args:
        plan: the plan after the merge and the collections.
        rules: one rule per mapped field.
        partner_center: Partner Center's canonical values as read.
        salesforce: Salesforce's canonical values as read.
        base: the base the plan was made against.

    Returns:
        The plan to carry out.
    """
    deal = next((r for r in rules if r.kind == DEAL_TYPE_KIND), None)
    group = {r.name for r in rules if r.kind == DEAL_TYPE_KIND or r.path in SHARING_PATHS}
    sending = sorted(name for name in plan.to_partner_center if name in group)
    after = _after(rules, deal, {**partner_center, **plan.to_partner_center}, plan)
    if sending:
        known = set(deal_problems([(r, partner_center.get(r.name)) for r in rules]))
        new = [p for p in deal_problems([(r, after.get(r.name)) for r in rules]) if p not in known]
        if new:
            return _withheld(plan, rules, deal, sending, new, base)
    if deal is None or not deal.to_salesforce or deal.name in plan.to_partner_center:
        return plan
    predicted = after.get(deal.name)
    if predicted is None or predicted == partner_center.get(deal.name):
        return plan  # the writes do not change the deal type: the merge has decided it
    if predicted == salesforce.get(deal.name):
        return replace(plan, new_base={**plan.new_base, deal.name: predicted})
    return replace(
        plan,
        to_salesforce={**plan.to_salesforce, deal.name: predicted},
        new_base={**plan.new_base, deal.name: predicted},
    )


def _after(
    rules: Sequence[FieldRule], deal: FieldRule | None, values: Mapping[str, Value], plan: Plan
) -> dict[str, Value]:
    """The values after the writes; the deal type follows the help unless chosen now."""
    after = dict(values)
    if deal is None or deal.name in plan.to_partner_center:
        return after
    help_rule = next((r for r in rules if r.path == HELP_PATH), None)
    code = after.get(help_rule.name) if help_rule is not None else None
    if code is not None and code not in NO_HELP_CODES:
        after[deal.name] = DealType.CO_SELL.value
    return after


def _withheld(
    plan: Plan,
    rules: Sequence[FieldRule],
    deal: FieldRule | None,
    sending: list[str],
    problems: list[str],
    base: Mapping[str, Value] | None,
) -> Plan:
    to_partner_center = dict(plan.to_partner_center)
    new_base = dict(plan.new_base)
    values = {name: to_partner_center.pop(name) for name in sending}
    for name in sending:
        if base is not None and name in base:
            new_base[name] = base[name]
        else:
            new_base.pop(name, None)
    help_rule = next((r for r in rules if r.path == HELP_PATH), None)
    words = ", ".join(name.replace("_", " ") for name in sending)
    together = "a deal's type, help and sharing go to Partner Center together or not at all"
    refused_help = next(
        (r for r in plan.refusals if help_rule is not None and r.field == help_rule.name), None
    )
    if refused_help is not None:  # its reason first: the seller fixes that, the rest follows
        extended = Refusal(
            refused_help.field,
            refused_help.value,
            f"{refused_help.reason} The {words} change waits for it ({together})",
        )
        refusals = [extended if r is refused_help else r for r in plan.refusals]
    else:
        first = deal.name if deal is not None and deal.name in values else sending[0]
        reason = f"{'; '.join(problems)}; the {words} change was not sent ({together})"
        refusals = [*plan.refusals, Refusal(first, values[first], reason)]
    return replace(
        plan,
        to_partner_center=to_partner_center,
        new_base=new_base,
        refusals=tuple(sorted(refusals, key=lambda r: r.field)),
    )
