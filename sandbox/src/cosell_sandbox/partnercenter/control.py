"""The sandbox's control API: act as the Microsoft seller, move time, inject faults, observe.

Test-only and unauthenticated (the sandbox listens on loopback). Routes, all under `{base}`:

| Method | Path | Body | Does |
|---|---|---|---|
| GET | `/control/info` | | the startup JSON (URLs and credentials) |
| POST | `/control/referrals/incoming` | `{"kind": "lead" or "co-sell", ...referral fields}` | Microsoft sends the partner a referral: Incoming, New/Pending, expiring in 14 days; a lead is Independent/MarketingQualified (or `"qualification": "Direct"`), a co-sell opportunity Shared/SalesQualified, invited by `msft`, with a Microsoft seller on the team and Microsoft's own referral in the engagement. Other keys override the generated fields (objects are merged). `referral-created`. 201 + the partner's referral |
| GET | `/control/referrals/{id}/microsoft` | | Microsoft's referral in the engagement of `{id}` (`{id}` may be either side) |
| POST | `/control/referrals/{id}/microsoft/accept` | | Microsoft accepts: Active/Accepted |
| POST | `/control/referrals/{id}/microsoft/decline` | `{"statusReason": "..."}` | Microsoft declines: Closed/Declined |
| POST | `/control/referrals/{id}/microsoft/close` | `{"substatus": "Won" or "Lost", "statusReason": "..."}` | Microsoft closes its accepted referral |
| PATCH | `/control/referrals/{id}/microsoft` | JSON Patch (`add`/`replace`) | Microsoft updates any field of its referral (lifecycle rules apply) |
| POST | `/control/referrals/{id}/microsoft/notes` | `{"text": "..."}` | appends a time-stamped line to Microsoft's `details.notes` |
| PUT | `/control/referrals/{id}/microsoft/msx-id` | `{"msxId": "..."}` | sets `trackingInfo.microsoftMsxId` on Microsoft's referral |
| GET | `/control/clock` | | `{"now": ..., "advanced_seconds": ...}` |
| POST | `/control/clock/advance` | `{"seconds": N}` | moves the sandbox clock forward; New referrals past their expiry become Closed/Expired at once |
| GET | `/control/faults` | | the Referrals/Webhooks API faults (`faults.ApiFaults`) |
| PUT | `/control/faults` | any subset of the `ApiFaults` fields | changes those settings; the rest are kept |
| GET | `/control/stats` | | calls served: `{"total", "calls": [{"route", "method", "status", "count"}]}` |
| DELETE | `/control/stats` | | zeroes the counts |
| POST | `/control/reset` | | forgets all referrals, zeroes the stats, turns API faults off (credentials, webhook registration and webhook faults stay) |

Each route is a thin wrapper of a `store.ReferralStore` method of the same name
(`create_incoming`, `microsoft_accept`, `microsoft_decline`, `microsoft_close`, `microsoft_patch`,
`microsoft_add_note`, `microsoft_set_msx_id`) or of `PartnerCenterSandbox` (`advance_clock`,
`reset`, `faults`, `stats`), which in-process code can call directly.
Every Microsoft-side action answers 200 with Microsoft's referral as it is afterwards and emits
`related-referral-updated` (via the store). Errors use the API's error shape: 400 for a bad
body or an illegal transition, 404 for an unknown referral or an engagement without a
Microsoft side. Webhook faults and deliveries are at `/control/webhooks/...` and identity
controls at `/control/identity/...` (`webhooks.py`, `identity.py`).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from cosell_sandbox.partnercenter.errors import PartnerCenterSandboxError
from cosell_sandbox.partnercenter.faults import ApiFaults, CallStats
from cosell_sandbox.partnercenter.store import ReferralStore


class ControlledSandbox(Protocol):
    """What the control API needs of the sandbox."""

    store: ReferralStore
    stats: CallStats
    faults: ApiFaults

    def info(self) -> dict[str, Any]:
        """The startup JSON."""
        ...

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox clock forward."""
        ...

    def clock_status(self) -> dict[str, Any]:
        """`{"now", "advanced_seconds"}`."""
        ...

    def reset(self) -> None:
        """Forget referrals and stats, turn API faults off."""
        ...


class IncomingReferral(BaseModel):
    """Body of `POST /control/referrals/incoming`: the kind, plus referral fields to override."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["lead", "co-sell"]


class Decline(BaseModel):
    """Body of `.../microsoft/decline`."""

    model_config = ConfigDict(extra="forbid")

    statusReason: str = Field(min_length=1)  # noqa: N815 - the API's field name


class Close(BaseModel):
    """Body of `.../microsoft/close`."""

    model_config = ConfigDict(extra="forbid")

    substatus: Literal["Won", "Lost"]
    statusReason: str | None = None  # noqa: N815 - the API's field name


class Note(BaseModel):
    """Body of `.../microsoft/notes`."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)


class MsxId(BaseModel):
    """Body of `.../microsoft/msx-id`."""

    model_config = ConfigDict(extra="forbid")

    msxId: str = Field(min_length=1)  # noqa: N815 - the API's field name


class Advance(BaseModel):
    """Body of `/control/clock/advance`."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0)


class FaultsUpdate(BaseModel):
    """Body of `PUT /control/faults`: the settings to change."""

    model_config = ConfigDict(extra="forbid")

    latency_seconds: float | None = None
    error_429_fraction: float | None = None
    error_503_fraction: float | None = None
    retry_after_seconds: float | None = None
    throttle_rate_per_second: float | None = None
    throttle_burst: int | None = None


def build_control_router(sandbox: ControlledSandbox) -> APIRouter:
    """The `/control/...` routes over `sandbox` (see the module docstring)."""
    router = APIRouter(prefix="/control")
    store = sandbox.store

    @router.get("/info")
    async def info() -> JSONResponse:
        return JSONResponse(sandbox.info())

    @router.post("/referrals/incoming")
    async def incoming(body: IncomingReferral) -> JSONResponse:
        fields = dict(body.model_extra or {})
        return JSONResponse(store.create_incoming(body.kind, fields), status_code=201)

    @router.get("/referrals/{referral_id}/microsoft")
    async def microsoft(referral_id: str) -> JSONResponse:
        return JSONResponse(store.microsoft_referral(referral_id))

    @router.post("/referrals/{referral_id}/microsoft/accept")
    async def accept(referral_id: str) -> JSONResponse:
        return JSONResponse(store.microsoft_accept(referral_id))

    @router.post("/referrals/{referral_id}/microsoft/decline")
    async def decline(referral_id: str, body: Decline) -> JSONResponse:
        return JSONResponse(store.microsoft_decline(referral_id, body.statusReason))

    @router.post("/referrals/{referral_id}/microsoft/close")
    async def close(referral_id: str, body: Close) -> JSONResponse:
        return JSONResponse(store.microsoft_close(referral_id, body.substatus, body.statusReason))

    @router.patch("/referrals/{referral_id}/microsoft")
    async def update(referral_id: str, request: Request) -> JSONResponse:
        try:
            ops = await request.json()
        except ValueError:
            raise PartnerCenterSandboxError(
                400, "invalidRequest", "the body must be a JSON Patch array"
            ) from None
        return JSONResponse(store.microsoft_patch(referral_id, ops))

    @router.post("/referrals/{referral_id}/microsoft/notes")
    async def add_note(referral_id: str, body: Note) -> JSONResponse:
        return JSONResponse(store.microsoft_add_note(referral_id, body.text))

    @router.put("/referrals/{referral_id}/microsoft/msx-id")
    async def set_msx_id(referral_id: str, body: MsxId) -> JSONResponse:
        return JSONResponse(store.microsoft_set_msx_id(referral_id, body.msxId))

    @router.get("/clock")
    async def clock() -> JSONResponse:
        return JSONResponse(sandbox.clock_status())

    @router.post("/clock/advance")
    async def advance(body: Advance) -> JSONResponse:
        try:
            sandbox.advance_clock(body.seconds)
        except ValueError as exc:
            raise PartnerCenterSandboxError(400, "invalidRequest", str(exc)) from None
        return JSONResponse(sandbox.clock_status())

    @router.get("/faults")
    async def get_faults() -> JSONResponse:
        return JSONResponse(sandbox.faults.to_json())

    @router.put("/faults")
    async def set_faults(body: FaultsUpdate) -> JSONResponse:
        changes = body.model_dump(exclude_unset=True)
        if changes.get("throttle_burst", 0) is None:
            changes["throttle_burst"] = 0
        merged = ApiFaults(**{**sandbox.faults.to_json(), **changes})
        try:
            merged.validate()
        except ValueError as exc:
            raise PartnerCenterSandboxError(400, "invalidRequest", str(exc)) from None
        for name in ApiFaults.field_names():
            setattr(sandbox.faults, name, getattr(merged, name))
        return JSONResponse(sandbox.faults.to_json())

    @router.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(sandbox.stats.to_json())

    @router.delete("/stats")
    async def reset_stats() -> Response:
        sandbox.stats.reset()
        return Response(status_code=204)

    @router.post("/reset")
    async def reset() -> JSONResponse:
        sandbox.reset()
        return JSONResponse({"reset": True, **sandbox.clock_status()})

    return router
