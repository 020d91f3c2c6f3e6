"""What the referrals side of the sandbox tells the webhooks side.

The referrals store calls `EventSink.emit(event_name, referral_id)` after every committed
change that Partner Center announces (spec §4.2): `referral-created` when a referral is
created, `referral-updated` on every successful PATCH or system transition (acceptance,
expiry), `related-referral-created` / `related-referral-updated` when the Microsoft seller's
referral in the same engagement is created or changes. The webhooks side
(`webhooks.WebhookService`) turns each into a signed callback to the registered URL, subject
to `WebhookFaults`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

ReferralEventName = Literal[
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
]


class EventSink(Protocol):
    """Receives the referral events to dispatch."""

    def emit(self, event_name: ReferralEventName, referral_id: str) -> None:
        """Queue `event_name` about `referral_id` for delivery; never blocks, never raises."""
        ...


@dataclass
class WebhookFaults:
    """Faults injected into webhook delivery; fractions are probabilities in [0, 1].

    Attributes:
        drop: a callback is never delivered.
        duplicate: a callback is delivered twice.
        delay_seconds: every delivery waits this long (on the sandbox clock) before its first attempt.
        reorder: a callback is held back and delivered after the next one.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    delay_seconds: float = 0.0
    reorder: float = 0.0
