"""What one reconcile of one key did (or, in a dry run, would do)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from cosell.mapping.types import Value

UNCHANGED: Final = "unchanged"  # both sides agree with the base: nothing written
SYNCED: Final = "synced"  # values written to one side or both
CREATED: Final = "created"  # a referral or an opportunity was created (or adopted)
CONFLICT: Final = "conflict"  # both sides changed a field differently; the owner won
REFUSED: Final = "refused"  # a Salesforce change Partner Center would refuse: parked on the link
ERROR: Final = "error"  # a terminal error (bad data, a record gone): parked on the link
SKIPPED: Final = "skipped"  # nothing to sync for this key (not marked for sync, not ours)
HELD: Final = "held"  # waits for a side whose sync is paused, or a pause: runs when it resumes
RESULTS: Final = (UNCHANGED, SYNCED, CREATED, CONFLICT, REFUSED, ERROR, SKIPPED, HELD)


@dataclass(frozen=True)
class Outcome:
    """The result of reconciling one key.

    Attributes:
        key: the key reconciled.
        link_id: the link it resolved to, if any.
        result: one of `RESULTS`.
        to_salesforce: canonical values written to (dry run: planned for) Salesforce.
        to_partner_center: canonical values written to (dry run: planned for) Partner Center.
        message: what happened, for a human (the error or refusal when parked).
        api_calls: API calls made (both sides). In a batch, the shared reads are counted on
            the batch's first outcome, so the sum over a batch is the batch's cost.
        dry_run: nothing was written; the outcome says what would have been.
        adopted: fields the org's after-save automation rewrote after cosell's last write,
            adopted without a write back (`automation.py`; counted by the service's metrics).
    """

    key: str
    link_id: str | None
    result: str
    to_salesforce: Mapping[str, Value] = field(default_factory=dict)
    to_partner_center: Mapping[str, Value] = field(default_factory=dict)
    message: str | None = None
    api_calls: int = 0
    dry_run: bool = False
    adopted: int = 0
