"""The referrals of the emulated Partner Center: creation, updates, the lifecycle, expiry, events.

Referrals are kept as JSON objects (dicts), not dataclasses, because the API keeps every field a
client sends, known or not (spec §3.14), and returns it unchanged. The store is the only code
that changes them, and it does so in named moves, each atomic (the event loop runs one at a
time) and each followed by exactly one event per changed referral on the `EventSink`:

- `create` (a partner's own referral): stored Active/Accepted, direction Outgoing, new id,
  engagement and eTag; `referral-created`.
- `patch` (a partner's JSON Patch): ownership, `If-Match`, terminal states, read-only fields,
  field rules and the lifecycle (`lifecycle.check_transition`) are checked on a copy, and so
  is the partner's update rule that no deal value is changed to zero or removed (spec §5.4).
  Won is taken whenever the transitions allow it: the 72-hour wait between creation and Won is
  a condition of deal-registration eligibility, not a refusal of the API (spec §9.6); only a fully valid result replaces the
  stored referral, with a new eTag; `referral-updated`.
  `replace` (the legacy PUT) is the same with the whole referral as the body.
- `create_incoming` (Microsoft sends the partner a lead or a co-sell opportunity):
  direction Incoming, New/Pending, expiring 14 days after creation; `referral-created`.
- `microsoft_patch` (the Microsoft seller changes their side of an engagement):
  `related-referral-updated`.
- expiry: before every operation, New referrals whose `expirationDateTime` has passed on the
  clock become Closed/Expired (`referral-updated`, or `related-referral-updated` for
  Microsoft's side).

Sharing with Microsoft. When a partner's referral is shared with Microsoft sellers (consent,
help requested or a target `msft`, see `validation.shared_with_microsoft`) and its engagement
has no Microsoft referral yet, the store adds one: owned by Microsoft, in the same engagement,
New/Pending, direction Incoming (from Microsoft's side) and expiring in 14 days;
`related-referral-created`. The partner reads it by list or get but cannot write it.

Invariants: every referral has id, engagementId, organizationId/Name, direction, status and
substatus legal per spec §3.3, a quoted eTag that changes on every write, timestamps in the
API's format, and `links.self` / `links.relatedReferrals` on the store's base URL. A Closed
referral is never written again. Each engagement has at most one Microsoft-owned referral.
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, NewType

from cosell.clock import Clock
from cosell_sandbox.partnercenter.errors import PartnerCenterSandboxError
from cosell_sandbox.partnercenter.events import EventSink, ReferralEventName
from cosell_sandbox.partnercenter.formats import format_timestamp, parse_timestamp
from cosell_sandbox.partnercenter.lifecycle import ReferralState, TransitionError, check_transition
from cosell_sandbox.partnercenter.patching import (
    PatchError,
    PatchOperation,
    apply_operation,
    get_pointer,
    parse_patch,
)
from cosell_sandbox.partnercenter.validation import (
    CONSENT_FLAGS,
    NO_HELP_CODES,
    SERVICES_CO_SELL_FIELDS,
    FieldError,
    normalize_referral,
    shared_with_microsoft,
)

ReferralId = NewType("ReferralId", str)
EngagementId = NewType("EngagementId", str)
OrganizationId = NewType("OrganizationId", str)

RESPONSE_WINDOW: Final = timedelta(days=14)  # unanswered incoming referrals expire (spec §2.1)
REFERRALS_PATH: Final = "/v1.0/engagements/referrals"

PRECONDITION_FAILED_MESSAGE: Final = (
    "A precondition provided in the request (such as an if-match header) does not match the "
    "resource's current state."
)
PRECONDITION_FAILED_INNER: Final[dict[str, Any]] = {
    "code": "99918",
    "message": "One of the specified pre-condition is not met. Etag value did not Match",
    "details": None,
}

# Fields the system owns: nobody writes them through a patch (spec §5.5 "always read-only").
_SYSTEM_FIELDS: Final = (
    "id",
    "engagementId",
    "organizationId",
    "organizationName",
    "direction",
    "createdDateTime",
    "updatedDateTime",
    "acceptedDateTime",
    "closedDateTime",
    "expirationDateTime",
    "eTag",
    "links",
)
# Fields a partner cannot change after creation (spec §5.5, S-BULK).
_PARTNER_READ_ONLY: Final = (
    *_SYSTEM_FIELDS,
    "mpnId",
    "trackingInfo",
    "customerProfile/name",
    "customerProfile/address",
    "customerProfile/ids",
    "inviteContext/invitedBy",
)


@dataclass(frozen=True)
class Organization:
    """A Partner Center organisation: the partner using the sandbox, or Microsoft."""

    id: OrganizationId
    name: str


MICROSOFT: Final = Organization(OrganizationId("msft"), "Microsoft")


def normalize_etag(value: str) -> str:
    """An eTag or `If-Match` value without `W/`, whitespace and surrounding (escaped) quotes."""
    text = value.strip()
    if text[:2].upper() == "W/":
        text = text[2:]
    return text.replace('\\"', '"').strip().strip('"').strip()


def _tokens(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


class ReferralStore:
    """All referrals of one sandbox, for the partner that uses it and for Microsoft's side."""

    def __init__(
        self,
        clock: Clock,
        *,
        rng: random.Random,
        partner: Organization,
        sink: EventSink,
        base_url: str,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self.partner = partner
        self._sink = sink
        self._base_url = base_url.rstrip("/")
        self._referrals: dict[str, dict[str, Any]] = {}
        self._engagements: dict[str, list[str]] = {}
        self._expiring: set[str] = set()
        self._dirty: dict[str, None] = {}  # changed ids in commit order (so inserts keep it)
        self._cleared = False

    # ---- reading -------------------------------------------------------------------------

    def referrals(self) -> list[dict[str, Any]]:
        """Every referral the partner can see, in creation order (live objects: do not mutate)."""
        self.expire_due()
        return list(self._referrals.values())

    def get(self, referral_id: str) -> dict[str, Any]:
        """A copy of one referral.

        Raises:
            PartnerCenterSandboxError: 404 itemNotFound.
        """
        self.expire_due()
        return copy.deepcopy(self._require(referral_id))

    def engagement(self, engagement_id: str) -> list[dict[str, Any]]:
        """Copies of the referrals in one engagement (empty when it does not exist)."""
        self.expire_due()
        return [copy.deepcopy(self._referrals[r]) for r in self._engagements.get(engagement_id, [])]

    def microsoft_referral(self, referral_id: str) -> dict[str, Any]:
        """A copy of the Microsoft-owned referral in the engagement of `referral_id`.

        `referral_id` may name the Microsoft referral itself or any referral of its engagement.

        Raises:
            PartnerCenterSandboxError: 404 when the referral or its Microsoft side does not exist.
        """
        self.expire_due()
        return copy.deepcopy(self._microsoft_side(referral_id))

    def __len__(self) -> int:
        return len(self._referrals)

    # ---- the partner's writes ----------------------------------------------------------

    def create(self, body: Any) -> dict[str, Any]:
        """Create the partner's own referral (POST /referrals) and return a copy of it.

        Raises:
            PartnerCenterSandboxError: 400 invalidRequest naming the first bad field.
        """
        self.expire_due()
        if not isinstance(body, dict):
            raise PartnerCenterSandboxError(
                400, "invalidRequest", "the body must be a referral JSON object"
            )
        engagement_id = body.get("engagementId")
        if engagement_id not in (None, "") and engagement_id not in self._engagements:
            raise PartnerCenterSandboxError(
                400,
                "invalidRequest",
                f"engagement {engagement_id!r} does not exist; leave engagementId out to start "
                "a new engagement, or copy it from an existing referral",
                target="/engagementId",
            )
        referral = self._new_referral(
            body,
            owner=self.partner,
            direction="Outgoing",
            state=ReferralState("Active", "Accepted"),
            engagement_id=engagement_id or None,
        )
        self._commit(referral, "referral-created")
        self._share_with_microsoft_if_needed(referral)
        return copy.deepcopy(referral)

    def patch(self, referral_id: str, body: Any, *, if_match: str | None) -> dict[str, Any]:
        """Apply the partner's JSON Patch to one of its referrals and return a copy of the result.

        Raises:
            PartnerCenterSandboxError: 404 unknown id; 403 not the partner's referral; 412 stale
                `If-Match`; 400 bad patch, closed referral, read-only field, bad value or an
                illegal status change.
        """
        self.expire_due()
        current = self._require(referral_id)
        self._require_partner_owner(current)
        updated = self._write(current, body, if_match=if_match, read_only=_PARTNER_READ_ONLY)
        if updated is not current:
            self._share_with_microsoft_if_needed(updated)
        return copy.deepcopy(updated)

    def replace(self, referral_id: str, body: Any, *, if_match: str | None) -> dict[str, Any]:
        """Replace one of the partner's referrals as a whole (the legacy PUT, spec §2).

        The body is the whole referral; system fields it leaves out (id, eTag, timestamps,
        links...) keep their values, and every other field it leaves out is removed. The same
        rules as `patch` apply, and `If-Match` is required.

        Raises:
            PartnerCenterSandboxError: as `patch`, and 400 when `If-Match` is missing.
        """
        self.expire_due()
        current = self._require(referral_id)
        self._require_partner_owner(current)
        if if_match is None or not if_match.strip():
            raise PartnerCenterSandboxError(
                400,
                "invalidRequest",
                "PUT replaces the whole referral and needs an If-Match header with its eTag; "
                "GET the referral first, or use PATCH to change single fields",
                target="If-Match",
            )
        updated = self._write(
            current, body, if_match=if_match, read_only=_PARTNER_READ_ONLY, whole=True
        )
        if updated is not current:
            self._share_with_microsoft_if_needed(updated)
        return copy.deepcopy(updated)

    # ---- Microsoft's side (the control API) ---------------------------------------------

    def create_incoming(self, kind: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        """Microsoft sends the partner a referral: a `lead` or a `co-sell` opportunity.

        A lead is Independent and MarketingQualified (or Direct); a co-sell opportunity is
        Shared and SalesQualified, invited by Microsoft, with a Microsoft seller on the team,
        and Microsoft's own referral (Active/Accepted) in the same engagement. `fields`
        override the generated values (nested objects are merged).

        Raises:
            PartnerCenterSandboxError: 400 for an unknown kind or a bad field.
        """
        self.expire_due()
        if kind not in ("lead", "co-sell"):
            raise PartnerCenterSandboxError(
                400, "invalidRequest", f"kind is {kind!r}; use 'lead' or 'co-sell'", target="kind"
            )
        body = _merge(self._generated_incoming(kind), fields or {})
        if kind == "lead" and body.get("qualification") not in ("MarketingQualified", "Direct"):
            raise PartnerCenterSandboxError(
                400,
                "invalidRequest",
                "a lead's qualification is MarketingQualified or Direct",
                target="/qualification",
            )
        referral = self._new_referral(
            body,
            owner=self.partner,
            direction="Incoming",
            state=ReferralState("New", "Pending"),
            engagement_id=None,
        )
        self._commit(referral, "referral-created")
        if kind == "co-sell":
            mine = self._new_referral(
                {
                    **copy.deepcopy(body),
                    "team": copy.deepcopy(body.get("team") or []),
                    "inviteContext": None,
                    "target": [{"type": "BusinessProfileLocation", "id": self.partner.id}],
                },
                owner=MICROSOFT,
                direction="Outgoing",
                state=ReferralState("Active", "Accepted"),
                engagement_id=EngagementId(referral["engagementId"]),
            )
            self._commit(mine, "related-referral-created")
        return copy.deepcopy(referral)

    def microsoft_patch(
        self, referral_id: str, body: Any, *, if_match: str | None = None
    ) -> dict[str, Any]:
        """The Microsoft seller applies a JSON Patch to Microsoft's referral of an engagement.

        `referral_id` may name Microsoft's referral or the partner's referral it is related to.

        Raises:
            PartnerCenterSandboxError: 404 no such referral or no Microsoft side; 400 as `patch`.
        """
        self.expire_due()
        target = self._microsoft_side(referral_id)
        return copy.deepcopy(self._write(target, body, if_match=if_match, read_only=_SYSTEM_FIELDS))

    def microsoft_accept(self, referral_id: str) -> dict[str, Any]:
        """The Microsoft seller accepts Microsoft's referral: Active/Accepted.

        Raises:
            PartnerCenterSandboxError: as `microsoft_patch`.
        """
        return self.microsoft_patch(
            referral_id, [_replace("/status", "Active"), _replace("/substatus", "Accepted")]
        )

    def microsoft_decline(self, referral_id: str, reason: str) -> dict[str, Any]:
        """The Microsoft seller declines Microsoft's referral: Closed/Declined with `reason`.

        Raises:
            PartnerCenterSandboxError: as `microsoft_patch`.
        """
        return self.microsoft_patch(
            referral_id,
            [
                _replace("/status", "Closed"),
                _replace("/substatus", "Declined"),
                _replace("/statusReason", reason),
            ],
        )

    def microsoft_close(
        self, referral_id: str, substatus: str, reason: str | None = None
    ) -> dict[str, Any]:
        """The Microsoft seller closes Microsoft's accepted referral as `Won` or `Lost`.

        Raises:
            PartnerCenterSandboxError: as `microsoft_patch`, or 400 for another substatus.
        """
        if substatus not in ("Won", "Lost"):
            raise PartnerCenterSandboxError(
                400,
                "invalidRequest",
                f"substatus is {substatus!r}; close as Won or Lost",
                target="substatus",
            )
        ops = [_replace("/status", "Closed"), _replace("/substatus", substatus)]
        if reason is not None:
            ops.append(_replace("/statusReason", reason))
        return self.microsoft_patch(referral_id, ops)

    def microsoft_set_msx_id(self, referral_id: str, msx_id: str) -> dict[str, Any]:
        """Set `trackingInfo.microsoftMsxId` on Microsoft's referral (the MSX opportunity id).

        Raises:
            PartnerCenterSandboxError: as `microsoft_patch`.
        """
        return self.microsoft_patch(referral_id, [_replace("/trackingInfo/microsoftMsxId", msx_id)])

    def microsoft_add_note(self, referral_id: str, text: str) -> dict[str, Any]:
        """The Microsoft seller adds a note: a new line at the end of its `details.notes`.

        Raises:
            PartnerCenterSandboxError: as `microsoft_patch`, or 400 for an empty note.
        """
        if not text.strip():
            raise PartnerCenterSandboxError(
                400, "invalidRequest", "the note is empty; send some text", target="text"
            )
        current = self.microsoft_referral(referral_id)
        notes = (current.get("details") or {}).get("notes") or ""
        stamp = format_timestamp(self._clock.now())
        line = f"[{stamp}] {text.strip()}"
        value = f"{notes}\n{line}" if notes else line
        return self.microsoft_patch(current["id"], [_replace("/details/notes", value)])

    # ---- time ---------------------------------------------------------------------------

    def expire_due(self) -> None:
        """Close as Expired every New referral whose 14-day response window has passed."""
        if not self._expiring:
            return
        now = self._clock.now()
        for referral_id in sorted(self._expiring):
            referral = self._referrals[referral_id]
            expires = referral.get("expirationDateTime")
            if referral["status"] != "New" or not expires:
                self._expiring.discard(referral_id)
                continue
            if parse_timestamp(expires) > now:
                continue
            self._expiring.discard(referral_id)
            updated = copy.deepcopy(referral)
            updated.update(status="Closed", substatus="Expired", closedDateTime=expires)
            self._stamp(updated)
            self._commit(updated, self._updated_event(updated))

    # ---- persistence --------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """Every referral, JSON-able, in creation order."""
        return copy.deepcopy(list(self._referrals.values()))

    def restore(self, referrals: list[dict[str, Any]]) -> None:
        """Replace the whole state with `referrals` (from `snapshot`); emits no events."""
        self.clear()
        self._cleared = False
        for referral in referrals:
            self._index(copy.deepcopy(referral))
        self._dirty.clear()

    def clear(self) -> None:
        """Forget every referral and engagement (the control API's reset)."""
        self._referrals.clear()
        self._engagements.clear()
        self._expiring.clear()
        self._dirty.clear()
        self._cleared = True

    def has_changes(self) -> bool:
        """Whether anything changed since the last `take_changes`."""
        return self._cleared or bool(self._dirty)

    def take_changes(self) -> tuple[bool, list[dict[str, Any]]]:
        """What changed since the last call: (whether everything was cleared, changed referrals)."""
        cleared, self._cleared = self._cleared, False
        changed = [copy.deepcopy(self._referrals[r]) for r in self._dirty]
        self._dirty.clear()
        return cleared, changed

    # ---- internals ----------------------------------------------------------------------

    def _require(self, referral_id: str) -> dict[str, Any]:
        referral = self._referrals.get(referral_id)
        if referral is None:
            raise PartnerCenterSandboxError(
                404,
                "itemNotFound",
                f"referral {referral_id!r} does not exist; list referrals to find its id",
                target="referral",
            )
        return referral

    def _require_partner_owner(self, referral: dict[str, Any]) -> None:
        if referral["organizationId"] != self.partner.id:
            raise PartnerCenterSandboxError(
                403,
                "accessDenied",
                f"referral {referral['id']} belongs to {referral['organizationName']} (their "
                f"side of engagement {referral['engagementId']}); it is read-only to you. Update "
                "your own referral in that engagement instead",
                target="referral",
            )

    def _microsoft_side(self, referral_id: str) -> dict[str, Any]:
        referral = self._require(referral_id)
        if referral["organizationId"] == MICROSOFT.id:
            return referral
        for other in self._engagements.get(referral["engagementId"], []):
            if self._referrals[other]["organizationId"] == MICROSOFT.id:
                return self._referrals[other]
        raise PartnerCenterSandboxError(
            404,
            "itemNotFound",
            f"engagement {referral['engagementId']} of referral {referral_id} has no Microsoft "
            "referral; share the referral with Microsoft (consent, help or target msft) first",
            target="referral",
        )

    def _new_id(self) -> str:
        while True:
            new = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            if new not in self._referrals and new not in self._engagements:
                return new

    def _new_etag(self) -> str:
        # Cosmos DB style, quotes included in the value (spec §2.5).
        return f'"{self._new_id()}"'

    def _stamp(self, referral: dict[str, Any]) -> None:
        referral["updatedDateTime"] = format_timestamp(self._clock.now())
        referral["eTag"] = self._new_etag()

    def _links(self, referral: dict[str, Any]) -> dict[str, Any]:
        base = f"{self._base_url}{REFERRALS_PATH}"
        return {
            "self": {"uri": f"{base}/{referral['id']}", "method": "GET", "headers": []},
            "relatedReferrals": {
                "uri": f"{base}?$filter=engagementId%20eq%20{referral['engagementId']}",
                "method": "GET",
                "headers": [],
            },
        }

    def _new_referral(
        self,
        body: dict[str, Any],
        *,
        owner: Organization,
        direction: str,
        state: ReferralState,
        engagement_id: EngagementId | None,
    ) -> dict[str, Any]:
        try:
            referral = normalize_referral(body)
        except FieldError as exc:
            raise PartnerCenterSandboxError(
                400, "invalidRequest", exc.message, target=exc.target
            ) from exc
        now = self._clock.now()
        created = format_timestamp(now)
        referral_id = self._new_id()
        referral.update(
            id=referral_id,
            engagementId=engagement_id or self._new_id(),
            organizationId=owner.id,
            organizationName=owner.name,
            direction=direction,
            status=state.status,
            substatus=state.substatus,
            createdDateTime=created,
            updatedDateTime=created,
            acceptedDateTime=created if state.status == "Active" else None,
            closedDateTime=None,
            expirationDateTime=(
                format_timestamp(now + RESPONSE_WINDOW) if state.status == "New" else None
            ),
            eTag=self._new_etag(),
        )
        for name, default in (
            ("externalReferenceId", None),
            ("statusReason", None),
            ("qualification", "None"),
            ("team", []),
            ("target", []),
            ("inviteContext", None),
        ):
            referral.setdefault(name, default)
        tracking = referral.get("trackingInfo")
        referral["trackingInfo"] = {"microsoftMsxId": None} | (
            tracking if isinstance(tracking, dict) and owner == MICROSOFT else {}
        )
        referral["links"] = self._links(referral)
        return referral

    def _share_with_microsoft_if_needed(self, referral: dict[str, Any]) -> None:
        if referral["status"] == "Closed" or not shared_with_microsoft(referral):
            return
        engagement = self._engagements[referral["engagementId"]]
        if any(self._referrals[r]["organizationId"] == MICROSOFT.id for r in engagement):
            return
        invite = referral.get("inviteContext") or {}
        body = {
            "name": referral["name"],
            "type": "Shared",
            "qualification": referral.get("qualification") or "SalesQualified",
            "customerProfile": copy.deepcopy(referral["customerProfile"]),
            "consent": copy.deepcopy(referral["consent"]),
            "details": copy.deepcopy(referral["details"]) | {"notes": None},
            "team": [],
            "inviteContext": {
                "invitedBy": {
                    "organizationId": self.partner.id,
                    "organizationName": self.partner.name,
                },
                "notes": invite.get("notes"),
                "assistanceRequestCode": invite.get("assistanceRequestCode") or "Unknown",
            },
            "target": [{"type": "BusinessProfileLocation", "id": MICROSOFT.id}],
        }
        for name in (*SERVICES_CO_SELL_FIELDS, "customerMarketplaceIntent"):
            if name in referral:  # the engagement's services co-sell facts, on both sides
                body[name] = copy.deepcopy(referral[name])
        microsoft_referral = self._new_referral(
            body,
            owner=MICROSOFT,
            direction="Incoming",
            state=ReferralState("New", "Pending"),
            engagement_id=EngagementId(referral["engagementId"]),
        )
        self._commit(microsoft_referral, "related-referral-created")

    def _write(
        self,
        current: dict[str, Any],
        body: Any,
        *,
        if_match: str | None,
        read_only: tuple[str, ...],
        whole: bool = False,
    ) -> dict[str, Any]:
        if (
            if_match is not None
            and if_match.strip() != "*"
            and normalize_etag(if_match) != normalize_etag(current["eTag"])
        ):
            raise PartnerCenterSandboxError(
                412,
                "preconditionFailed",
                PRECONDITION_FAILED_MESSAGE,
                target="ETag",
                inner_error=dict(PRECONDITION_FAILED_INNER),
            )
        state = ReferralState(current["status"], current["substatus"])
        if state.status == "Closed":
            raise PartnerCenterSandboxError(
                400,
                "invalidRequest",
                f"referral {current['id']} is closed ({state}); Closed referrals are final "
                "and cannot be updated. Create a new referral instead",
                target="/status",
            )
        if whole:
            updated = self._replacement(current, body, read_only)
        else:
            updated = self._patched(current, body, read_only)
        try:
            updated = normalize_referral(updated)
            new_state = ReferralState(str(updated.get("status")), str(updated.get("substatus")))
            check_transition(
                state,
                new_state,
                direction=current["direction"],
                status_reason=updated.get("statusReason"),
            )
        except (FieldError, TransitionError) as exc:
            raise PartnerCenterSandboxError(
                400, "invalidRequest", exc.message, target=exc.target
            ) from exc
        if read_only is _PARTNER_READ_ONLY:
            self._check_partner_update(current, updated)
        if updated == current:
            return current
        now = format_timestamp(self._clock.now())
        if new_state != state:
            if new_state.status == "Active":
                updated["acceptedDateTime"] = now
            if new_state.status == "Closed":
                updated["closedDateTime"] = now
        self._stamp(updated)
        self._commit(updated, self._updated_event(updated))
        return self._referrals[updated["id"]]

    def _check_partner_update(self, current: dict[str, Any], updated: dict[str, Any]) -> None:
        """The rules of a partner's update beyond fields and transitions (spec §5.4).

        A deal value, once the referral exists, cannot be changed to zero or removed.
        """
        before = get_pointer(current, ("details", "dealValue"))
        after = get_pointer(updated, ("details", "dealValue"))
        if after != before and not after:
            raise PartnerCenterSandboxError(
                400,
                "invalidRequest",
                "/details/dealValue cannot be changed to zero or removed on an update; send "
                "the deal's value",
                target="/details/dealValue",
            )

    def _patched(
        self, current: dict[str, Any], body: Any, read_only: tuple[str, ...]
    ) -> dict[str, Any]:
        try:
            operations = parse_patch(body)
        except PatchError as exc:
            raise PartnerCenterSandboxError(
                400, "invalidRequest", exc.message, target=exc.target
            ) from exc
        updated = copy.deepcopy(current)
        for operation in operations:
            try:
                apply_operation(updated, operation)
            except PatchError as exc:
                raise PartnerCenterSandboxError(
                    400, "invalidRequest", exc.message, target=exc.target
                ) from exc
            self._check_read_only(current, updated, read_only, operation)
        return updated

    def _replacement(
        self, current: dict[str, Any], body: Any, read_only: tuple[str, ...]
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise PartnerCenterSandboxError(
                400, "invalidRequest", "the body must be the whole referral as a JSON object"
            )
        updated = copy.deepcopy(body)
        for field in _SYSTEM_FIELDS:
            if field not in updated:
                updated[field] = copy.deepcopy(current.get(field))
        self._check_read_only(current, updated, read_only, None)
        return updated

    def _check_read_only(
        self,
        before: dict[str, Any],
        after: dict[str, Any],
        read_only: tuple[str, ...],
        operation: PatchOperation | None,
    ) -> None:
        def refuse(field: str, why: str) -> None:
            change = f"{operation.op} {operation.path}" if operation else "the update"
            raise PartnerCenterSandboxError(
                400,
                "invalidRequest",
                f"{field} is read-only {why}; {change} was refused. Leave it out of the "
                "request, or send its current value",
                target=operation.path if operation else field,
            )

        for field in read_only:
            tokens = _tokens(field)
            if get_pointer(before, tokens) != get_pointer(after, tokens):
                why = "after the referral is created" if field not in _SYSTEM_FIELDS else ""
                refuse("/" + field, why or "(Partner Center sets it)")
        if read_only is not _PARTNER_READ_ONLY:
            return
        for flag in CONSENT_FLAGS:
            tokens = ("consent", flag)
            if get_pointer(before, tokens) is True and get_pointer(after, tokens) is not True:
                refuse(f"/consent/{flag}", "once it is true")
        code_path = ("inviteContext", "assistanceRequestCode")
        code = get_pointer(before, code_path)
        if code not in (None, *NO_HELP_CODES) and get_pointer(after, code_path) != code:
            refuse("/inviteContext/assistanceRequestCode", "once help has been requested")
        if self._has_microsoft_side(before):
            for field in ("customerProfile/team", "inviteContext/notes"):
                if get_pointer(before, _tokens(field)) != get_pointer(after, _tokens(field)):
                    refuse("/" + field, "once the referral is shared with Microsoft")

    def _has_microsoft_side(self, referral: dict[str, Any]) -> bool:
        return any(
            self._referrals[r]["organizationId"] == MICROSOFT.id
            for r in self._engagements.get(referral["engagementId"], [])
        )

    def _updated_event(self, referral: dict[str, Any]) -> ReferralEventName:
        if referral["organizationId"] == MICROSOFT.id:
            return "related-referral-updated"
        return "referral-updated"

    def _index(self, referral: dict[str, Any]) -> None:
        referral_id = referral["id"]
        if referral_id not in self._referrals:
            self._engagements.setdefault(referral["engagementId"], []).append(referral_id)
        self._referrals[referral_id] = referral
        if referral["status"] == "New" and referral.get("expirationDateTime"):
            self._expiring.add(referral_id)
        else:
            self._expiring.discard(referral_id)

    def _commit(self, referral: dict[str, Any], event: ReferralEventName) -> None:
        self._index(referral)
        self._dirty[referral["id"]] = None
        self._sink.emit(event, referral["id"])

    def _generated_incoming(self, kind: str) -> dict[str, Any]:
        number = self._rng.randrange(1000, 10000)  # four digits make readable, distinct names
        customer = f"Fabrikam {number}"
        now = self._clock.now()
        seller = {
            "firstName": "John",
            "lastName": "Doe",
            "email": "john.doe@microsoft.com",
            "phoneNumber": "+1 425 555 0100",
        }
        body: dict[str, Any] = {
            "name": f"{customer} - {'co-sell opportunity' if kind == 'co-sell' else 'lead'}",
            "type": "Shared" if kind == "co-sell" else "Independent",
            "qualification": "SalesQualified" if kind == "co-sell" else "MarketingQualified",
            "customerProfile": {
                "name": customer,
                "address": {
                    "addressLine1": "1 Microsoft Way",
                    "city": "Redmond",
                    "state": "WA",
                    "postalCode": "98052",
                    "country": "US",
                },
                "size": "51to500employees",
                "team": [
                    {
                        "firstName": "Ana",
                        "lastName": "Customer",
                        "email": f"ana@fabrikam{number}.example",
                        "phoneNumber": "+1 206 555 0199",
                    }
                ],
            },
            "consent": {
                "consentToContact": True,
                "consentToToShareInfoWithOthers": True,
                "consentToShareReferralWithMicrosoftSellers": kind == "co-sell",
            },
            "details": {
                "notes": f"{customer} asked for help with an Azure migration.",
                "dealValue": 50000,  # a plausible mid-size deal; tests override what they need
                "currency": "USD",
                "closingDateTime": format_timestamp(now + timedelta(days=60)),
                "requirements": {"solutions": [], "industries": [], "products": []},
            },
            "team": [seller] if kind == "co-sell" else [],
            "inviteContext": {
                "invitedBy": {
                    "organizationId": MICROSOFT.id,
                    "organizationName": MICROSOFT.name,
                },
                "notes": "Sent by the Microsoft seller (sandbox).",
            },
        }
        return body


def _replace(path: str, value: Any) -> dict[str, Any]:
    return {"op": "replace", "path": path, "value": value}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result
