"""The Salesforce sandbox: one emulated org as a FastAPI app.

`SalesforceSandbox` wires the pieces together:

- `identity` (OAuth token endpoint, SOAP login, sessions) authenticates every data call except
  the versions list; the SOAP endpoint also serves `convertLead()` (`soap_convert`);
- `RecordStore` holds the records; `RestApi` (+ `composite`) answers `/services/data/...`;
- `ApiUsage` counts calls over a rolling 24 hours (`Sforce-Limit-Info` on every
  `/services/data` response, `/limits/`, 403 REQUEST_LIMIT_EXCEEDED past the maximum);
- `ChangeLog` records every commit as CDC-shaped events, read through the control API;
- the fault middleware (on `/services/data/v...` only) adds latency on the sandbox clock and,
  drawing from a generator seeded by `SandboxOptions.seed`, answers a fraction of calls with
  503 SERVER_UNAVAILABLE, 403 REQUEST_LIMIT_EXCEEDED or (writes only) 400 UNABLE_TO_LOCK_ROW,
  or expires every session first;
- with `data_path`, `SqliteState` saves each commit and the identity, and a restart continues
  where the last run stopped (same org, users, credentials, tokens, records and change log).

The org is seeded with an integration user (the API user whose credentials `info()` reports)
and a seller (`info()["seller_user_id"]`) whom the control API acts as, plus the
`OpportunityStage` rows. Every id, credential and fault decision is drawn from generators
seeded by `SandboxOptions.seed`, so a seed reproduces a run.
"""

from __future__ import annotations

import copy
import random
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from cosell.clock import Clock, OffsetClock
from cosell_sandbox.salesforce import composite
from cosell_sandbox.salesforce.changelog import ChangeLog
from cosell_sandbox.salesforce.errors import (
    JSON_UTF8,
    SalesforceSandboxError,
    install_error_handlers,
)
from cosell_sandbox.salesforce.identity import SalesforceIdentity, check_soap_version
from cosell_sandbox.salesforce.ids import IdFactory
from cosell_sandbox.salesforce.limits import ApiUsage
from cosell_sandbox.salesforce.orgprofile import OrgProfile, allows_duplicate_save, apply_profile
from cosell_sandbox.salesforce.orgschema import build_schema
from cosell_sandbox.salesforce.persistence import SqliteState
from cosell_sandbox.salesforce.rest import (
    MAX_VERSION,
    ApiRequest,
    ApiResponse,
    CallContext,
    RestApi,
    parse_version,
    versions_list,
)
from cosell_sandbox.salesforce.schema import Schema
from cosell_sandbox.salesforce.soap_convert import (
    convert,
    convert_response,
    parse_converts,
    session_id,
)
from cosell_sandbox.salesforce.soap_login import (
    XML_CONTENT_TYPE,
    SoapFaultError,
    operation_name,
    parse_envelope,
)
from cosell_sandbox.salesforce.standard_objects import OPPORTUNITY_STAGES
from cosell_sandbox.salesforce.store import (
    RECYCLE_BIN_RETENTION,
    Actor,
    RecordStore,
    StageRule,
    Transaction,
)

API_VERSION = f"{MAX_VERSION}.0"

# The permission sets of the emulated org (`SalesforceSandbox.sync_permissions`).
PROFILE_PERMISSION_SET = "X00e2I000000001AAA"  # a profile's own set is named after its id
CHANGE_EVENTS_PERMISSION_SET = "Cosell_Change_Events"
# The objects Cosell_Change_Events grants View All Records on (OpportunityContactRole has none).
VIEW_ALL_OBJECTS = ("Opportunity", "Lead", "Microsoft_Solution__c")
INTEGRATION_USERNAME = "integration@cosell-sandbox.example"
SELLER_USERNAME = "seller@cosell-sandbox.example"
_WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_DATA_PREFIX = "/services/data/"
_PURGE_INTERVAL = timedelta(minutes=1)  # how often the recycle bin is checked for old records


class SandboxDataError(ValueError):
    """The data file cannot be used (not a sandbox file, or from an incompatible version)."""


@dataclass
class ApiFaults:
    """Faults injected into `/services/data/v...` calls (mutable at run time).

    Attributes:
        latency_seconds: Waited on the sandbox clock before every call.
        error_503_fraction: Share of calls answered 503 SERVER_UNAVAILABLE.
        request_limit_fraction: Share of calls answered 403 REQUEST_LIMIT_EXCEEDED as the
            transient concurrent-request limit (their Sforce-Limit-Info shows the daily
            allocation is not used up; the real daily limit comes from `daily_api_limit`).
        lock_row_fraction: Share of writes answered 400 UNABLE_TO_LOCK_ROW.
        expire_sessions_fraction: Share of calls that first expire every session (so they and
            later calls get 401 INVALID_SESSION_ID until the client logs in again).
    """

    latency_seconds: float = 0.0
    error_503_fraction: float = 0.0
    request_limit_fraction: float = 0.0
    lock_row_fraction: float = 0.0
    expire_sessions_fraction: float = 0.0

    def validate(self) -> None:
        """Check the values.

        Raises:
            ValueError: a negative latency or a fraction outside [0, 1]; the message says which.
        """
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must be 0 or more")
        for spec in fields(self):
            if spec.name.endswith("_fraction"):
                value = getattr(self, spec.name)
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{spec.name} must be between 0 and 1, not {value}")

    def update(self, values: dict[str, Any]) -> None:
        """Set some of the faults from a JSON object, all or nothing.

        Raises:
            ValueError: an unknown name or a value out of range.
            TypeError: a value that is not a number.
        """
        known = {spec.name for spec in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(known)}")
        candidate = ApiFaults(**{**asdict(self), **values})
        for name, value in asdict(candidate).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number, not {value!r}")
        candidate.validate()
        for name, value in asdict(candidate).items():
            setattr(self, name, float(value))


@dataclass
class SandboxOptions:
    """How to build a sandbox.

    Attributes:
        seed: Seeds ids, credentials and fault decisions (None: different every run).
        multi_currency: Whether the org has multi-currency (`CurrencyIsoCode` fields).
        session_lifetime_seconds: How long an access token stays valid.
        data_path: SQLite file to keep the state in across restarts (None: memory only).
        key_dir: Where the JWT key pair and certificate live; default: `<data_path>.keys`
            next to the data file, else a fresh temporary directory.
        faults: Injected faults (the sandbox keeps and mutates this object).
        org_profile: The org's customisations (`orgprofile.load_profile`); None: a clean org.
        daily_api_limit: `DailyApiRequests.Max` over a rolling 24 hours.
    """

    seed: int | None = None
    multi_currency: bool = True
    session_lifetime_seconds: float = 7200.0
    data_path: Path | None = None
    key_dir: Path | None = None
    faults: ApiFaults = field(default_factory=ApiFaults)
    daily_api_limit: int = 15000  # a Developer Edition org's DailyApiRequests.Max
    org_profile: OrgProfile | None = None  # customisations (`orgprofile`); None: a clean org


def stage_rules() -> dict[str, StageRule]:
    """The org's Opportunity stage rules, from the schema's stage table."""
    return {
        s.name: StageRule(
            name=s.name,
            probability=float(s.default_probability),
            is_closed=s.is_closed,
            is_won=s.is_won,
            forecast_category=s.forecast_category,
        )
        for s in OPPORTUNITY_STAGES
    }


def change_origin(version: str, call_options: str | None) -> str:
    """CDC `changeOrigin` of a REST call: `com/salesforce/api/rest/<ver>;client=<client>`."""
    origin = f"com/salesforce/api/rest/{version}"
    for part in (call_options or "").split(","):
        key, _, value = part.partition("=")
        if key.strip().lower() == "client" and value.strip():
            return f"{origin};client={value.strip()}"
    return origin


class SalesforceSandbox:
    """One emulated Salesforce org, as a FastAPI app (`app`).

    Args:
        base_url: The URL the app is reachable at (instance URL, login URL, ...).
        clock: The sandbox clock; an `OffsetClock` when not given.
        options: Seed, currency mode, session lifetime, persistence, faults, API limit.
        schema: The org's schema; `orgschema.build_schema()` when not given (tests pass small
            ones).
    """

    def __init__(
        self,
        *,
        base_url: str,
        clock: Clock | None = None,
        options: SandboxOptions | None = None,
        schema: Schema | None = None,
    ) -> None:
        self.options = options or SandboxOptions()
        self.options.faults.validate()
        self._temporary_key_dir: Path | None = None
        self.base_url = base_url.rstrip("/")
        self.clock: Clock = clock or OffsetClock()
        self.faults = self.options.faults
        root = random.Random(self.options.seed)  # noqa: S311 - emulation, not security
        self._fault_rng = random.Random(root.getrandbits(64))  # noqa: S311
        identity_rng = random.Random(root.getrandbits(64))  # noqa: S311
        self._base_schema = schema or build_schema(multi_currency=self.options.multi_currency)
        self.schema = self._base_schema
        profile = OrgProfile()
        if self.options.org_profile is not None:
            self.schema = copy.deepcopy(self._base_schema)
            profile = apply_profile(self.schema, self.options.org_profile)
        self.ids = IdFactory(root)
        try:
            self._state = SqliteState(self.options.data_path) if self.options.data_path else None
            saved = self._state.meta() if self._state and not self._state.is_empty() else None
        except sqlite3.Error as exc:
            raise SandboxDataError(
                f"cannot use {self.options.data_path} as the sandbox's data file ({exc}); "
                "delete it or pass another --data"
            ) from exc
        if saved is not None:
            try:
                self.ids.restore(saved["ids"])
                org = saved["org"]
            except (KeyError, TypeError, ValueError) as exc:
                raise SandboxDataError(
                    f"{self.options.data_path} is not a data file of this sandbox ({exc!r}); "
                    "delete it or pass another --data"
                ) from exc
        else:
            org = {
                "org_id": self.ids.new("00D"),
                "integration_user_id": self.ids.new("005"),
                "seller_user_id": self.ids.new("005"),
            }
        self.org_id: str = org["org_id"]
        self.integration_user_id: str = org["integration_user_id"]
        self.seller_user_id: str = org["seller_user_id"]
        self.identity = SalesforceIdentity(
            self.clock,
            base_url=self.base_url,
            org_id=self.org_id,
            user_id=self.integration_user_id,
            username=INTEGRATION_USERNAME,
            rng=identity_rng,
            key_dir=self._key_dir(),
            session_lifetime_seconds=self.options.session_lifetime_seconds,
        )
        self.change_log = ChangeLog()
        self.store = RecordStore(
            self.schema, self.clock, self.ids, stage_rules=stage_rules(), change_log=self.change_log
        )
        self.store.profile = profile
        self.usage = ApiUsage(self.options.daily_api_limit)
        self.api = RestApi(
            self.store,
            clock=self.clock,
            ids=self.ids,
            usage=self.usage,
            schema_changed_at=self.clock.now(),
        )
        composite.install(self.api)
        self.stats: Counter[tuple[str, str, int]] = Counter()
        self._saved_replay_id = 0
        self._next_purge: datetime | None = None
        if saved is not None:
            try:
                self._load(saved)
            except (KeyError, TypeError, ValueError, sqlite3.Error) as exc:
                raise SandboxDataError(
                    f"{self.options.data_path} is not a data file of this sandbox version "
                    f"({exc!r}); delete it or pass another --data"
                ) from exc
        else:
            self.seed_org()
            self._save_everything()
        self.store.on_commit.append(self._persist)
        from cosell_sandbox.salesforce.pubsub.service import PubSubService

        self.pubsub = PubSubService(self)
        """The Pub/Sub API (gRPC) over the change log; served by `pubsub.start(port)`."""
        self.sync_permissions()  # a data file of an older sandbox has no permission sets
        self.pubsub_endpoint: str | None = None
        """`host:port` of the served Pub/Sub API, once known (it goes into `info()`)."""
        self.store.on_commit.append(lambda _tx: self.pubsub.wake())
        self.app = self._build_app()

    # ----------------------------------------------------------------- public

    def info(self) -> dict[str, Any]:
        """URLs and working credentials (the start-up line of `cosell sandbox salesforce`)."""
        creds = self.identity.info()
        return {
            "sandbox": "salesforce",
            "base_url": self.base_url,
            "instance_url": self.base_url,
            "login_url": creds["login_url"],
            "token_url": creds["token_url"],
            "control_api": f"{self.base_url}/control",
            "api_version": API_VERSION,
            "org_id": self.org_id,
            "username": creds["username"],
            "password": creds["password"],
            "security_token": creds["security_token"],
            "consumer_key": creds["consumer_key"],
            "consumer_secret": creds["consumer_secret"],
            "private_key_path": creds["private_key_path"],
            "certificate_path": creds["certificate_path"],
            "refresh_token": creds["refresh_token"],
            "integration_user_id": self.integration_user_id,
            "seller_user_id": self.seller_user_id,
            "seller_username": SELLER_USERNAME,
            "pubsub_endpoint": self.pubsub_endpoint,
        }

    def actor(self, user_id: str, *, origin: str = "") -> Actor:
        """An `Actor` for `user_id` (an existing User)."""
        return Actor(user_id=user_id, change_origin=origin, api_version=API_VERSION)

    def seed_org(self) -> None:
        """Create the users and stage rows of a fresh org."""
        users = [
            (self.integration_user_id, "Cosell", "Integration", INTEGRATION_USERNAME, "cosint"),
            (self.seller_user_id, "Sam", "Seller", SELLER_USERNAME, "sseller"),
        ]
        for user_id, first, last, username, alias in users:
            self.store.insert_system(
                "User",
                {
                    "Id": user_id,
                    "FirstName": first,
                    "LastName": last,
                    "Username": username,
                    "Email": username,
                    "Alias": alias,
                    "IsActive": True,
                    "TimeZoneSidKey": "GMT",
                    "LocaleSidKey": "en_US",
                    "EmailEncodingKey": "UTF-8",
                    "LanguageLocaleKey": "en_US",
                    "CompanyName": "Cosell Sandbox",
                },
                user_id=self.integration_user_id,
            )
        if self.schema.sobject("OpportunityStage") is not None:
            for stage in OPPORTUNITY_STAGES:
                self.store.insert_system(
                    "OpportunityStage",
                    {
                        "MasterLabel": stage.name,
                        "ApiName": stage.name,
                        "IsActive": True,
                        "SortOrder": stage.sort_order,
                        "IsClosed": stage.is_closed,
                        "IsWon": stage.is_won,
                        "ForecastCategory": stage.forecast_category_api,
                        "ForecastCategoryName": stage.forecast_category,
                        "DefaultProbability": float(stage.default_probability),
                    },
                    user_id=self.integration_user_id,
                )

    def sync_permissions(self) -> None:
        """The integration user's permission sets, as SOQL shows them, follow `/control/cdc`.

        The org has the profile's own permission set (`IsOwnedByProfile`, no View All Data),
        `Cosell_Integration` and `Cosell_Change_Events`, all assigned to the integration user;
        `Cosell_Change_Events` has one `ObjectPermissions` row per object it covers, whose
        `PermissionsViewAllRecords` is the Pub/Sub API's `view_all_records` of that object
        (what delivery enforces). Creates what is missing; idempotent.
        """
        names = {"PermissionSet", "PermissionSetAssignment", "ObjectPermissions"}
        if any(self.schema.sobject(name) is None for name in names):
            return  # an org profile without them
        by_name = {
            str(row["Name"]): str(row["Id"])
            for row in self.store.rows("PermissionSet", include_deleted=False)
        }
        user = self.integration_user_id
        wanted = (
            (PROFILE_PERMISSION_SET, "Cosell Integration Profile", True),
            ("Cosell_Integration", "Cosell Integration", False),
            (CHANGE_EVENTS_PERMISSION_SET, "Cosell Change Events", False),
        )
        for name, label, profile in wanted:
            if name in by_name:
                continue
            by_name[name] = self.store.insert_system(
                "PermissionSet",
                {
                    "Name": name,
                    "Label": label,
                    "IsOwnedByProfile": profile,
                    "PermissionsViewAllData": False,
                },
                user_id=user,
            )
            self.store.insert_system(
                "PermissionSetAssignment",
                {"AssigneeId": user, "PermissionSetId": by_name[name]},
                user_id=user,
            )
        parent = by_name[CHANGE_EVENTS_PERMISSION_SET]
        rows = {
            str(row["SobjectType"]): str(row["Id"])
            for row in self.store.rows("ObjectPermissions", include_deleted=False)
            if row["ParentId"] == parent
        }
        settings = self.pubsub.settings
        for obj in VIEW_ALL_OBJECTS:
            values = {
                "PermissionsRead": True,
                "PermissionsViewAllRecords": settings.can_view_all(obj),
            }
            if obj in rows:
                self.store.update_system("ObjectPermissions", rows[obj], values)
            else:
                self.store.insert_system(
                    "ObjectPermissions",
                    {"ParentId": parent, "SobjectType": obj, **values},
                    user_id=user,
                )

    def set_profile(self, profile: OrgProfile | None) -> None:
        """Make the org the one `profile` describes (None: clean) and reset it (`reset`).

        The schema is rebuilt from the clean one, so records of the old schema cannot survive.

        Raises:
            OrgProfileError: the profile names an unknown object or field (nothing changed).
        """
        schema = self._base_schema
        applied = OrgProfile()
        if profile is not None:
            schema = copy.deepcopy(self._base_schema)
            applied = apply_profile(schema, profile)
        self.schema = self.store.schema = self.api.schema = schema
        self.store.profile = applied
        self.api.schema_changed_at = self.clock.now()
        self.reset()

    def reset(self) -> None:
        """Back to a fresh org: no records but the seeded ones, an empty change log."""
        self.store.clear()
        self.change_log.clear()
        self.usage.reset()
        self.stats.clear()
        self.seed_org()
        self.sync_permissions()
        if self._state is not None:
            self._state.wipe()
        self._save_everything()

    def close(self) -> None:
        """Save the identity, close the data file (if any), remove a temporary key directory."""
        if self._state is not None:
            self._state.save(rows=[], events=[], meta=self._meta())
            self._state.close()
            self._state = None
        if self._temporary_key_dir is not None:
            shutil.rmtree(self._temporary_key_dir, ignore_errors=True)
            self._temporary_key_dir = None

    # ----------------------------------------------------------------- persistence

    def _key_dir(self) -> Path:
        if self.options.key_dir is not None:
            return self.options.key_dir
        if self.options.data_path is not None:
            path = self.options.data_path
            return path.with_name(path.name + ".keys")
        # Without a data file the key pair lives only as long as this sandbox: close() removes it.
        self._temporary_key_dir = Path(tempfile.mkdtemp(prefix="cosell-sf-keys-"))
        return self._temporary_key_dir

    def _meta(self) -> dict[str, Any]:
        return {
            "ids": self.ids.snapshot(),
            "org": {
                "org_id": self.org_id,
                "integration_user_id": self.integration_user_id,
                "seller_user_id": self.seller_user_id,
            },
            "change_log": self.change_log.snapshot(),
            "stamp": self.store.clock_state(),
            "identity": self.identity.snapshot(),
        }

    def _load(self, saved: dict[str, Any]) -> None:
        assert self._state is not None
        for table, rid, row, deleted_at, blobs in self._state.records():
            if row is not None:
                self.store.load_row(table, rid, row, deleted_at, blobs)
        events = self._state.changes()
        self.change_log.restore(saved["change_log"], events)
        self._saved_replay_id = self.change_log.latest_replay_id
        self.store.restore_clock_state(saved.get("stamp"))
        self.identity.restore(saved["identity"])

    def _save_everything(self) -> None:
        if self._state is None:
            return
        rows = list(self.store.export_rows())
        self._state.save(rows=rows, events=self.change_log.events(), meta=self._meta())
        self._saved_replay_id = self.change_log.latest_replay_id

    def _persist(self, tx: Transaction) -> None:
        if self._state is None or not tx.touched:
            return
        rows = [self.store.row_state(table, rid) for table, rid in sorted(tx.touched)]
        events = self.change_log.events_after(self._saved_replay_id)
        self._state.save(
            rows=rows,
            events=events,
            meta=self._meta(),
            dropped_through=self.change_log.snapshot()["dropped_through"],
        )
        self._saved_replay_id = self.change_log.latest_replay_id

    def _purge_recycle_bin(self) -> None:
        now = self.clock.now()
        if self._next_purge is not None and now < self._next_purge:
            return
        self._next_purge = now + _PURGE_INTERVAL
        gone = self.store.purge_deleted(now - RECYCLE_BIN_RETENTION)
        if gone and self._state is not None:
            self._state.save(
                rows=[(table, rid, None, None, None) for table, rid in gone],
                events=[],
                meta=self._meta(),
            )

    def save_identity(self) -> None:
        """Save the identity's sessions (after a login), when persisting."""
        if self._state is not None:
            self._state.save(rows=[], events=[], meta={"identity": self.identity.snapshot()})

    # ----------------------------------------------------------------- the app

    def _build_app(self) -> FastAPI:
        from cosell_sandbox.salesforce.control import control_router

        app = FastAPI(
            title="Salesforce sandbox",
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
        )
        app.router.redirect_slashes = False
        install_error_handlers(app)
        app.add_exception_handler(Exception, _on_unexpected)
        # The partner SOAP endpoint: login() (identity), then convertLead() with its session.
        app.add_api_route("/services/Soap/u/{version}", self._soap, methods=["POST"])
        app.add_api_route("/services/Soap/u/{version}/{org}", self._soap, methods=["POST"])
        app.include_router(self.identity.router)
        app.include_router(control_router(self))
        app.add_api_route("/services/data", self._versions, methods=["GET"])
        app.add_api_route(
            "/services/data/{rest:path}",
            self._data,
            methods=["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"],
        )
        app.middleware("http")(self._middleware)
        return app

    async def _versions(self) -> JSONResponse:
        return JSONResponse(versions_list(), media_type=JSON_UTF8)

    async def _middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        is_data = path.startswith((_DATA_PREFIX + "v", _DATA_PREFIX + "latest"))
        if is_data:
            response = await self._faulty(request, call_next)
        else:
            response = await call_next(request)
        if path.startswith("/services/data"):
            response.headers["Sforce-Limit-Info"] = self.usage.header(self.clock.now())
        route = getattr(request.state, "route", None) or _stats_path(path)
        self.stats[(request.method, route, response.status_code)] += 1
        if path.startswith(("/services/oauth2", "/services/Soap")):
            self.save_identity()
        return response

    async def _faulty(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        faults = self.faults
        if faults.latency_seconds > 0:
            await self.clock.sleep(faults.latency_seconds)
        if self._roll(faults.expire_sessions_fraction):
            self.identity.expire_sessions()
        if self._roll(faults.error_503_fraction):
            return SalesforceSandboxError(
                503,
                "SERVER_UNAVAILABLE",
                "Server temporarily unavailable (injected fault); retry with backoff",
            ).response()
        if self._roll(faults.request_limit_fraction):
            return SalesforceSandboxError(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded. (injected fault: a transient limit; the "
                "daily allocation is not used up, retry with backoff)",
            ).response()
        if request.method in _WRITE_METHODS and self._roll(faults.lock_row_fraction):
            return SalesforceSandboxError(
                400,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records (injected "
                "fault); retry with backoff",
            ).response()
        return await call_next(request)

    def _roll(self, fraction: float) -> bool:
        return fraction > 0 and self._fault_rng.random() < fraction

    async def _data(self, request: Request, rest: str) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        raw_text = raw_path.decode("latin-1").split("?", 1)[0]
        raw_rest = raw_text[len(_DATA_PREFIX) :] if raw_text.startswith(_DATA_PREFIX) else rest
        raw_segments = raw_rest.split("/")
        while raw_segments and raw_segments[-1] == "":
            raw_segments.pop()
        if not raw_segments:
            return await self._versions()
        version = parse_version(raw_segments[0])
        if version is None:
            raise SalesforceSandboxError(
                404,
                "NOT_FOUND",
                f"The requested resource does not exist: API version {raw_segments[0]!r} is not "
                f"served; use v31.0 to v{API_VERSION}",
            )
        segments = tuple(raw_segments[1:])
        headers = {k.lower(): v for k, v in request.headers.items()}
        api_request = ApiRequest(
            method=request.method if request.method != "HEAD" else "GET",
            segments=tuple(unquote(s) for s in segments),
            query=dict(request.query_params),
            headers=headers,
            body=await request.body(),
            raw_segments=segments,
        )
        request.state.route = self._stats_route(self.api.route_name(api_request))
        session = self.identity.authenticate(request)
        now = self.clock.now()
        if self.usage.exhausted(now):
            raise SalesforceSandboxError(
                403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
            )
        self.usage.record(now)
        actor = Actor(
            user_id=session.user_id,
            change_origin=change_origin(version, headers.get("sforce-call-options")),
            api_version=version,
        )
        response = self.execute(api_request, actor, version)
        return _to_http(response)

    @staticmethod
    def _stats_route(route: str) -> str:
        return f"/services/data/vXX.X/{route}".rstrip("/")

    async def _soap(self, version: str, request: Request) -> Response:
        body = await request.body()
        try:
            check_soap_version(version)
            header, operation = parse_envelope(body)
            if operation_name(operation) == "login":
                return await self.identity.soap_login(version, body)
            converts = parse_converts(operation)
            token = session_id(header)
            try:
                session = self.identity.session_for(token or "")
            except SalesforceSandboxError:
                raise SoapFaultError(
                    "Invalid Session ID found in SessionHeader: Illegal Session",
                    exception_code="INVALID_SESSION_ID",
                ) from None
        except SoapFaultError as fault:
            return Response(fault.xml(), status_code=500, media_type=XML_CONTENT_TYPE)
        now = self.clock.now()
        self.usage.record(now)
        actor = Actor(
            user_id=session.user_id,
            change_origin=f"com/salesforce/api/soap/{version}",
            api_version=version,
        )
        tx = self.store.begin(actor)
        first_open = next(s.name for s in OPPORTUNITY_STAGES if not s.is_closed)
        results = [
            convert(self.store, tx, item, today=now.date(), first_open_stage=first_open)
            for item in converts
        ]
        self.store.commit(tx)
        return Response(convert_response(results), status_code=200, media_type=XML_CONTENT_TYPE)

    def execute(self, request: ApiRequest, actor: Actor, version: str) -> ApiResponse:
        """Run one data call in its own transaction: committed on success, else rolled back."""
        self._purge_recycle_bin()
        tx = self.store.begin(actor)
        tx.allow_duplicate_save = allows_duplicate_save(
            request.header("Sforce-Duplicate-Rule-Header")
        )
        ctx = CallContext(actor=actor, tx=tx, version=version)
        try:
            response = self.api.dispatch(request, ctx)
        except BaseException:
            self.store.rollback(tx)
            raise
        if response.status < 400:
            self.store.commit(tx)
        else:
            self.store.rollback(tx)
        return response


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    """A bug in the sandbox still answers in Salesforce's shape (500 UNKNOWN_EXCEPTION)."""
    return SalesforceSandboxError(
        500,
        "UNKNOWN_EXCEPTION",
        f"An unexpected error occurred in the sandbox ({type(exc).__name__}); please report it "
        "with the request that caused it",
    ).response()


def _stats_path(path: str) -> str:
    if path.startswith("/services/Soap/u/"):
        return "/services/Soap/u/{version}"
    if path.startswith("/id/"):
        return "/id/{org}/{user}"
    if path.startswith("/control/records/"):
        return "/control/records/..."
    return path


def _to_http(response: ApiResponse) -> Response:
    if response.raw is not None:
        return Response(
            response.raw,
            status_code=response.status,
            headers=response.headers,
            media_type=response.media_type,
        )
    if response.status in (204, 304):
        return Response(status_code=response.status, headers=response.headers)
    return JSONResponse(
        response.body, status_code=response.status, headers=response.headers, media_type=JSON_UTF8
    )
