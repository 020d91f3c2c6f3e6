"""`cosell check`: is this installation ready to sync? A checklist that says what to fix.

Each line is one check with one of three marks: ✓ passed, ✗ failed (with what to do), a dash
for not checked (with why). The checks, in order:

1. Settings: `cosell.toml` (or `--config`) loads, and each side has every key its sign-in
   needs (`PartnerCenterSettings.missing()`, `SalesforceSettings.missing()`). If the file does
   not load, nothing else can be checked and every other line says so. With no settings file
   at all (only `COSELL_*` variables), the line says so instead of "loaded".
   Store: the database `[store] url` names can be reached, is migrated to this cosell's
   schema (a SQLite file that does not exist is reported, not created) and takes a write
   (written and rolled back).
2. Partner Center: a token for the Referrals API (the configured grant), then one Referrals
   call (`list`, `$top=1`), which proves the user has a Referrals role.
3. Salesforce: a token (the configured OAuth flow), then `limits()` (the daily API budget).
4. Salesforce schema: the describe of Opportunity and `Microsoft_Solution__c` (and Lead when
   `[sync] lead_sync` is on) has every field cosell needs: the fields of cosell's metadata
   (`cosell.salesforce.metadata`), the mapping's `opportunity` fields, and the mapping's custom
   (`__c`) fields. One line per missing field or object, each saying how to deploy the metadata.
   A missing standard field is the mapping's problem and shows under 5.
   With `changes = "cdc"`, also whether the integration user receives each object's events:
   View All Records on it (View All Data: all), read from its permission sets with SOQL, or,
   where the org does not answer that query, from the single-object channels' refusals
   (`_view_all_records`). Missing: ✗, naming the objects and the Cosell_Change_Events
   permission set.
5. Permission set: a SOQL query on `PermissionSetAssignment` for the integration user (the
   user id of the Salesforce token's identity URL) and `Cosell_Integration`. Decision: an org
   that does not let the integration user read that object (`INVALID_TYPE` or no access) is
   reported "not checked", with how to check by hand, never as a failure: the user may have
   the access through a profile, which no query can see either.
6. Mapping: the mapping file loads, and `cosell.mapping.check_mapping` finds no problem
   against the org's describe of Opportunity and Account (and the picklist values of
   Opportunity's record types, for the sales process of the record type cosell creates with).
7. Webhooks: the tenant's registration (`WebhooksClient.show`) exists, covers the four
   referral events and points at `[server] public_url`.

Independence: each check catches the errors of its own API calls and becomes a ✗ line; a
later check that needs an earlier one's result (the schema needs a Salesforce session) is "not
checked" with the reason, and every check that does not depend on a failed one still runs.
The exit status is 0 when no line failed ("not checked" lines do not fail the run), else 1.
Secrets never appear: error messages of the clients and the settings carry none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import typer
from rich.console import Console
from rich.text import Text

from cosell.commands import ConfigOption, quiet_client_logs
from cosell.commands.webhooks import REFERRAL_EVENTS, webhooks_client

# The Referrals API tokens exactly as `cosell sync` builds them (one builder, not a copy).

if TYPE_CHECKING:  # imported when a command runs, so that the CLI starts quickly
    from cosell.clock import Clock
    from cosell.config import Settings
    from cosell.mapping import Mapping, MappingError
    from cosell.salesforce.client import SalesforceClient
    from cosell.salesforce.schema import ObjectDescription


Mark = Literal["pass", "fail", "skip"]
LEAD = "Lead"
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # describes are large but quick
MAX_MAPPING_PROBLEMS = 10  # shown on the checklist; `cosell mapping check` lists them all
DEPLOY_FIX = (
    "deploy cosell's metadata: cosell salesforce metadata --out cosell-metadata, then "
    "sf project deploy start --source-dir force-app --target-org <alias> (in that folder)"
)
_SYMBOLS = {
    "pass": ("✓", "green"),
    "fail": ("✗", "red"),
    "skip": ("\u2013", "yellow"),
}  # an en dash


_STREAM_PROBE_SECONDS = 2.0  # a refused Subscribe answers at once; an open one stays quiet


@dataclass(frozen=True)
class CheckLine:
    """One line of the checklist.

    Attributes:
        mark: `pass`, `fail` or `skip` (not checked).
        area: what was checked (`Settings`, `Partner Center`, `Salesforce`, ...).
        text: what was found.
        fix: what to do (failures), or why it was not checked.
    """

    mark: Mark
    area: str
    text: str
    fix: str | None = None


@dataclass
class _Clients:
    salesforce: SalesforceClient | None = None
    user_id: str | None = None
    username: str | None = None
    descriptions: dict[str, ObjectDescription] = field(default_factory=dict)
    record_type_values: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)


def metadata_fields() -> dict[str, set[str]]:
    """The fields of cosell's Salesforce metadata, by object (from the packaged project)."""
    from cosell.salesforce.metadata import project_files

    found: dict[str, set[str]] = {}
    for relative, _ in project_files():
        parts = relative.split("/")
        if "objects" not in parts:
            continue
        obj = parts[parts.index("objects") + 1]
        found.setdefault(obj, set())
        if parts[-1].endswith(".field-meta.xml"):
            found[obj].add(parts[-1].removesuffix(".field-meta.xml"))
    return found


def required_fields(mapping: Mapping | None, *, lead_sync: bool) -> dict[str, set[str]]:
    """The objects and fields cosell needs in the org (see the module docstring, check 4)."""
    from cosell.mapping.model import OPPORTUNITY

    needed = {k: set(v) for k, v in metadata_fields().items() if k != LEAD or lead_sync}
    if mapping is not None:
        needed.setdefault(OPPORTUNITY, set()).update(mapping.opportunity.names().values())
        for mapped in mapping.fields:
            if mapped.salesforce and mapped.salesforce.endswith("__c"):
                obj, _, name = mapped.salesforce.partition(".")
                needed.setdefault(obj, set()).add(name)
    return needed


class Checklist:
    """Runs the checks of `cosell check`; `run()` returns the lines.

    Args:
        settings_file: the settings file; None for `./cosell.toml`.
        clock: the clock of tokens and retries.
        pc_http: the HTTP client for Partner Center (tests); None for a new one.
        sf_http: the HTTP client for Salesforce (tests); None for a new one.
    """

    def __init__(
        self,
        settings_file: Path | None,
        *,
        clock: Clock | None = None,
        pc_http: httpx.AsyncClient | None = None,
        sf_http: httpx.AsyncClient | None = None,
    ) -> None:
        from cosell.clock import SystemClock

        self._file = settings_file
        self._clock = clock or SystemClock()
        self._pc_http = pc_http
        self._sf_http = sf_http
        self.lines: list[CheckLine] = []

    def _add(self, mark: Mark, area: str, text: str, fix: str | None = None) -> None:
        self.lines.append(CheckLine(mark, area, text, fix))

    async def run(self) -> list[CheckLine]:
        """Run every check; the checklist."""
        from cosell.config import ConfigError, Settings

        try:
            settings = Settings.load(self._file)
        except ConfigError as exc:
            self._add(
                "fail", "Settings", str(exc), "fix the settings file (cosell init writes one)"
            )
            for area in (
                "Store",
                "Partner Center",
                "Salesforce",
                "Permission set",
                "Change events",
                "Mapping",
                "Webhooks",
            ):
                self._add("skip", area, "not checked", "the settings do not load")
            return self.lines
        self._settings_lines(settings)
        await asyncio.to_thread(self._store, settings)
        async with self._http() as (pc_http, sf_http):
            await self._partner_center(settings, pc_http)
            clients = await self._salesforce(settings, sf_http)
            self._token_health(settings)
            mapping = self._load_mapping(settings)
            await self._schema(settings, clients, mapping)
            await self._permission_set(clients)
            await self._change_events(settings, clients)
            self._mapping(mapping, clients, lead_sync=settings.sync.lead_sync)
            await self._webhooks(settings, pc_http)
        return self.lines

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
        owned: list[httpx.AsyncClient] = []
        pc, sf = self._pc_http, self._sf_http
        if pc is None:
            pc = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
            owned.append(pc)
        if sf is None:
            sf = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
            owned.append(sf)
        try:
            yield pc, sf
        finally:
            for client in owned:
                await client.aclose()

    def _settings_lines(self, settings: Settings) -> None:
        from cosell.config import DEFAULT_CONFIG_FILE

        if self._file is not None:
            self._add("pass", "Settings", f"loaded from {self._file}")
        elif DEFAULT_CONFIG_FILE.is_file():
            self._add("pass", "Settings", f"loaded from ./{DEFAULT_CONFIG_FILE}")
        else:
            self._add(
                "skip",
                "Settings",
                f"no settings file: ./{DEFAULT_CONFIG_FILE} does not exist, so only the "
                "defaults and COSELL_* variables are used",
                "run cosell init to write one, or pass --config PATH",
            )
        for section, missing in (
            ("partner_center", settings.partner_center.missing()),
            ("salesforce", settings.salesforce.missing()),
        ):
            auth = getattr(settings, section).auth
            if missing:
                keys = ", ".join(f"{section}.{key}" for key in missing)
                variables = ", ".join(f"COSELL_{section.upper()}__{k.upper()}" for k in missing)
                self._add(
                    "fail",
                    "Settings",
                    f"[{section}] auth = {auth!r} needs {keys}",
                    f"set them in the settings file or as {variables}",
                )

    def _store(self, settings: Settings) -> None:
        from cosell.store import Store, StoreError
        from cosell.store.database import describe, normalise_url

        url = normalise_url(settings.store.url)
        shown = describe(url)
        fix = "run cosell db upgrade (or start cosell serve once), or correct [store] url"
        file = url.database if url.get_backend_name() == "sqlite" else None
        if file not in (None, "", ":memory:") and not Path(file or "").is_file():
            self._add("fail", "Store", f"no SQLite store at {file}", fix)
            return
        try:
            store = Store.open(settings.store.url, clock=self._clock, migrate=False)
        except StoreError as exc:
            self._add("fail", "Store", str(exc), fix)
            return
        try:
            store.check_writable()
            store.health()
        except StoreError as exc:
            self._add("fail", "Store", str(exc), None)
            return
        finally:
            store.close()
        self._add("pass", "Store", f"{shown}: reachable, migrated and writable")

    def _token_health(self, settings: Settings) -> None:
        from cosell.tokenhealth import token_health

        for health in token_health(settings, clock=self._clock):
            text = f"{health.label}: {health.summary()}"
            if health.problem:
                self._add("fail", "Sign-in", text, health.problem)
            else:
                self._add("pass", "Sign-in", text, health.warning)

    async def _partner_center(self, settings: Settings, http: httpx.AsyncClient) -> None:
        from cosell.partnercenter.auth import RoutingHttpClient
        from cosell.partnercenter.client import ReferralsClient
        from cosell.partnercenter.errors import AccessDeniedError, PartnerCenterError
        from cosell.sync.io.context import partner_center_tokens

        pc = settings.partner_center
        if pc.missing():
            self._add("skip", "Partner Center", "sign-in not checked", "settings incomplete")
            return
        routed: httpx.Client | None = None
        try:
            msal_http: Any = None
            if pc.route_to:
                routed = httpx.Client(timeout=HTTP_TIMEOUT)
                msal_http = RoutingHttpClient(pc.route_to, routed)
            tokens = partner_center_tokens(settings, clock=self._clock, msal_http_client=msal_http)
            try:
                await tokens.token()
            except PartnerCenterError as exc:
                self._add(
                    "fail",
                    "Partner Center",
                    f"no token for the Referrals API ({pc.auth} grant): {exc}",
                    _token_fix(pc.auth),
                )
                return
            self._add("pass", "Partner Center", f"signed in ({pc.auth} grant)")
            client = ReferralsClient(http, tokens, base_url=pc.api_base_url, clock=self._clock)
            try:
                page = await client.list_page(top=1)
            except AccessDeniedError as exc:
                fix = (
                    "the Referrals API takes App+User tokens only: set [partner_center] auth = "
                    "'refresh_token' (an admin's consent) instead of client_credentials"
                    if pc.auth == "client_credentials"
                    else "give the user the Referrals admin role in Partner Center (Account "
                    "settings > User management)"
                )
                self._add("fail", "Partner Center", f"the Referrals API refused: {exc}", fix)
                return
            except PartnerCenterError as exc:
                self._add("fail", "Partner Center", f"the Referrals API failed: {exc}", None)
                return
            self._add(
                "pass",
                "Partner Center",
                f"the Referrals API answers (list top=1: {len(page.referrals)} referral(s))",
            )
        finally:
            if routed is not None:
                routed.close()

    async def _salesforce(self, settings: Settings, http: httpx.AsyncClient) -> _Clients:
        from cosell.config import ConfigError
        from cosell.salesforce.client import SalesforceClient
        from cosell.salesforce.errors import SalesforceError

        clients = _Clients()
        sf = settings.salesforce
        if sf.missing():
            self._add("skip", "Salesforce", "sign-in not checked", "settings incomplete")
            return clients
        try:
            flow = sf.auth_flow(clock=self._clock)
        except ConfigError as exc:
            self._add("fail", "Salesforce", "cannot sign in", str(exc))
            return clients
        client = SalesforceClient(http, flow, api_version=sf.api_version, clock=self._clock)
        try:
            token = await client.session.token()
        except SalesforceError as exc:
            self._add(
                "fail",
                "Salesforce",
                f"no token ({sf.auth} flow): {exc}",
                "check the connected app's consumer key and secret, its OAuth policies (the "
                "integration user pre-authorised, the flow enabled) and login_url",
            )
            return clients
        self._add("pass", "Salesforce", f"signed in ({sf.auth} flow) at {token.instance_url}")
        try:
            limits = await client.limits()
        except SalesforceError as exc:
            self._add("fail", "Salesforce", f"the REST API failed: {exc}", exc.hint)
            return clients
        daily = limits.get("DailyApiRequests")
        budget = ""
        if isinstance(daily, dict) and "Remaining" in daily and "Max" in daily:
            budget = f": {daily['Remaining']} of {daily['Max']} daily API requests left"
        self._add("pass", "Salesforce", f"the REST API answers (limits{budget})")
        clients.salesforce = client
        clients.user_id = token.user_id
        clients.username = sf.username
        return clients

    def _load_mapping(self, settings: Settings) -> Mapping | MappingError:
        from cosell.mapping import MappingError, load_mapping

        try:
            return load_mapping(settings.sync.mapping_file)
        except MappingError as exc:
            return exc

    async def _schema(
        self, settings: Settings, clients: _Clients, mapping: Mapping | MappingError
    ) -> None:
        from cosell.mapping import Mapping
        from cosell.mapping.model import ACCOUNT
        from cosell.salesforce.errors import NotFoundError, SalesforceError

        client = clients.salesforce
        if client is None:
            self._add("skip", "Salesforce", "schema not checked", "not signed in to Salesforce")
            return
        needed = required_fields(
            mapping if isinstance(mapping, Mapping) else None, lead_sync=settings.sync.lead_sync
        )
        missing: list[tuple[str, str | None]] = []
        children = (
            [c.object for c in mapping.collections.objects().values()]
            if isinstance(mapping, Mapping)
            else []
        )
        for obj in sorted({*needed, ACCOUNT, *children}):
            try:
                clients.descriptions[obj] = await client.describe(obj)
            except NotFoundError:
                missing.append((obj, None))
            except SalesforceError as exc:
                self._add("fail", "Salesforce", f"cannot describe {obj}: {exc}", exc.hint)
                return
        from cosell.commands.mapping import opportunity_record_type_values

        try:
            clients.record_type_values = await opportunity_record_type_values(
                client, clients.descriptions.get("Opportunity")
            )
        except SalesforceError as exc:
            self._add(
                "fail",
                "Salesforce",
                f"cannot read the picklist values of Opportunity's record types: {exc}",
                exc.hint,
            )
        for obj in sorted(needed):
            description = clients.descriptions.get(obj)
            if description is None:
                continue
            missing += [(obj, name) for name in sorted(needed[obj]) if not description.field(name)]
        for obj, name in missing:
            what = f"object {obj}" if name is None else f"field {obj}.{name}"
            self._add(
                "fail",
                "Salesforce",
                f"{what} missing (or hidden from cosell's user by "
                f"{'object permissions' if name is None else 'field-level security'})",
                f"{DEPLOY_FIX}; if it is deployed, give the integration user read and edit "
                "access to it (the Cosell_Integration permission set does)",
            )
        if not missing:
            count = sum(len(names) for names in needed.values())
            self._add(
                "pass",
                "Salesforce",
                f"schema: the {count} fields cosell needs on {', '.join(sorted(needed))} exist",
            )

    async def _change_events(self, settings: Settings, clients: _Clients) -> None:
        """With `changes = "cdc"`: a topic per needed object, the channel, and a stream opens."""
        sf = settings.salesforce
        if sf.changes != "cdc":
            self._add(
                "pass",
                "Change events",
                'Salesforce changes are polled ([salesforce] changes = "poll")',
            )
            return
        if clients.salesforce is None:
            self._add("skip", "Change events", "not checked", "not signed in to Salesforce")
            return
        from cosell.salesforce.errors import SalesforceError
        from cosell.salesforce.pubsub.client import (
            ChangeEventsPermissionError,
            PubSubClient,
            Replay,
        )
        from cosell.sync.engine.changestream import OBJECTS

        objects = [o for o in OBJECTS if o != "Lead" or settings.sync.lead_sync]
        pubsub = PubSubClient(sf.pubsub_endpoint, clients.salesforce.session, tls=sf.pubsub_tls)
        try:
            missing = []
            refused = []  # single-object channels refused: no View All Records (or Data)
            for obj in objects:
                topic = f"/data/{obj.removesuffix('__c') + '__' if obj.endswith('__c') else obj}ChangeEvent"
                try:
                    info = await pubsub.get_topic(topic)
                except ChangeEventsPermissionError:
                    refused.append(obj)
                except SalesforceError as exc:
                    missing.append(obj)
                    self._add("fail", "Change events", f"{obj}: {exc.message}", exc.hint or None)
                else:
                    if not info.can_subscribe:
                        refused.append(obj)
            if not missing:
                self._add("pass", "Change events", f"CDC is on for {', '.join(objects)}")
            await self._view_all_records(clients, objects, refused)
            try:
                subscription = await pubsub.subscribe(sf.channel, Replay.latest(), batch=1)
                try:
                    stream = aiter(subscription)
                    opened = asyncio.ensure_future(anext(stream))
                    done, _ = await asyncio.wait({opened}, timeout=_STREAM_PROBE_SECONDS)
                    if done:
                        opened.result()  # an answer: events or an error
                    else:
                        opened.cancel()
                finally:
                    await subscription.close()
            except SalesforceError as exc:
                self._add(
                    "fail",
                    "Change events",
                    f"the stream on {sf.channel} does not open: {exc.message}",
                    exc.hint or None,
                )
            else:
                self._add(
                    "pass",
                    "Change events",
                    f"a stream on {sf.channel} opens at {sf.pubsub_endpoint}",
                )
        finally:
            await pubsub.close()

    async def _view_all_records(
        self, clients: _Clients, objects: Sequence[str], refused: Sequence[str]
    ) -> None:
        """Whether the integration user receives each object's change events.

        Salesforce delivers an object's change events only to a user with View All Records on
        it (View All Data: every object); on `/data/ChangeEvents` and custom channels the
        others are silently not delivered, so the stream opening proves nothing. The user's
        permission sets (the profile's included: `PermissionSetAssignment` lists it too) are
        read with SOQL; an org that does not answer (`INVALID_TYPE`, no access: the Salesforce
        sandbox) is judged by its single-object channels (`refused`: `GetTopic` said
        PERMISSION_DENIED, as Salesforce checks those channels at subscription).
        """
        from cosell.salesforce.metadata import CHANGE_EVENTS_PERMISSION_SET

        client = clients.salesforce
        granted: set[str] | None = None
        how = "its permission sets"
        if client is not None and clients.user_id:
            granted = await self._view_all_by_query(client, clients.user_id, objects)
        if granted is None:
            granted = {o for o in objects if o not in refused}
            how = "its single-object channels"
        # OpportunityContactRole has no View All Records of its own (it follows Opportunity);
        # Salesforce documents View All Data for such objects. Not judged when unsure.
        parentless = [o for o in objects if o == "OpportunityContactRole" and o not in granted]
        denied = [o for o in objects if o not in granted and o not in parentless]
        fix = (
            f"assign the {CHANGE_EVENTS_PERMISSION_SET} permission set to the integration user "
            f"(sf org assign permset --name {CHANGE_EVENTS_PERMISSION_SET} --target-org <alias> "
            f"--on-behalf-of {clients.username or '<integration user>'})"
        )
        if denied:
            self._add(
                "fail",
                "Change events",
                f"the integration user lacks View All Records on {', '.join(denied)} (by "
                f"{how}): Salesforce does not deliver their change events, so cosell would miss "
                "those changes",
                fix,
            )
        else:
            shown = [o for o in objects if o not in parentless]
            self._add(
                "pass",
                "Change events",
                f"the integration user may receive the events of {', '.join(shown)} "
                f"(View All Records, by {how})",
            )
        if parentless:
            self._add(
                "skip",
                "Change events",
                f"{', '.join(parentless)} not checked: it has no View All Records permission; "
                "Salesforce documents View All Data for the events of such objects",
                "if its changes do not arrive, give the integration user View All Data or rely "
                "on the opportunity's own events",
            )

    async def _view_all_by_query(
        self, client: SalesforceClient, user_id: str, objects: Sequence[str]
    ) -> set[str] | None:
        """The objects the user has View All Records on, by SOQL (None: the org did not say)."""
        from cosell.salesforce.errors import SalesforceError
        from cosell.salesforce.values import soql_quote

        try:
            assigned = [
                str(row["PermissionSetId"])
                async for row in client.query(
                    "SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = "  # noqa: S608
                    + soql_quote(user_id)
                )
            ]
            if not assigned:
                return set()
            ids = ", ".join(soql_quote(i) for i in assigned)
            view_all_data = [
                row
                async for row in client.query(
                    "SELECT Id FROM PermissionSet WHERE PermissionsViewAllData = true "  # noqa: S608
                    f"AND Id IN ({ids}) LIMIT 1"
                )
            ]
            if view_all_data:
                return set(objects)
            names = ", ".join(soql_quote(o) for o in objects)
            return {
                str(row["SobjectType"])
                async for row in client.query(
                    "SELECT SobjectType FROM ObjectPermissions WHERE "  # noqa: S608
                    f"PermissionsViewAllRecords = true AND ParentId IN ({ids}) "
                    f"AND SobjectType IN ({names})"
                )
            }
        except SalesforceError:  # INVALID_TYPE, no access, or a failure: judge by the channels
            return None

    async def _permission_set(self, clients: _Clients) -> None:
        from cosell.salesforce.errors import AccessDeniedError as SalesforceAccessDeniedError
        from cosell.salesforce.errors import NotFoundError, QueryError, SalesforceError
        from cosell.salesforce.metadata import PERMISSION_SET
        from cosell.salesforce.values import soql_quote

        client = clients.salesforce
        if client is None or not clients.user_id:
            self._add("skip", "Permission set", "not checked", "not signed in to Salesforce")
            return
        soql = (
            "SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = "  # noqa: S608 - soql_quote
            f"{soql_quote(clients.user_id)} AND PermissionSet.Name = "
            f"{soql_quote(PERMISSION_SET)} LIMIT 1"
        )
        who = clients.username or f"user {clients.user_id}"
        try:
            rows = [row async for row in client.query(soql)]
        except (QueryError, NotFoundError, SalesforceAccessDeniedError) as exc:
            self._add(
                "skip",
                "Permission set",
                f"{PERMISSION_SET} not checked: the org does not let the integration user read "
                f"PermissionSetAssignment ({exc.error_code or type(exc).__name__})",
                f"check in Setup > Users > {who} > Permission Set Assignments",
            )
            return
        except SalesforceError as exc:
            self._add("fail", "Permission set", f"the query failed: {exc}", exc.hint)
            return
        if rows:
            self._add("pass", "Permission set", f"{PERMISSION_SET} is assigned to {who}")
        else:
            self._add(
                "fail",
                "Permission set",
                f"{PERMISSION_SET} is not assigned to {who}",
                f"sf org assign permset --name {PERMISSION_SET} --target-org <alias> "
                f"--on-behalf-of {clients.username or '<integration user>'}",
            )

    def _mapping(
        self, mapping: Mapping | MappingError, clients: _Clients, *, lead_sync: bool
    ) -> None:
        from cosell.mapping import MappingError, check_mapping
        from cosell.mapping.model import ACCOUNT, OPPORTUNITY

        if isinstance(mapping, MappingError):
            problems: Sequence[object] = mapping.problems
            self._add(
                "fail",
                "Mapping",
                f"the mapping file has {len(problems)} problem(s): "
                + "; ".join(str(p) for p in problems[:MAX_MAPPING_PROBLEMS]),
                "fix the mapping file ([sync] mapping_file)",
            )
            return
        if clients.salesforce is None:
            self._add(
                "skip", "Mapping", "not checked against the org", "not signed in to Salesforce"
            )
            return
        descriptions = clients.descriptions
        if OPPORTUNITY not in descriptions or ACCOUNT not in descriptions:
            self._add("skip", "Mapping", "not checked", "Opportunity or Account not described")
            return
        if lead_sync and "Lead" not in descriptions:
            self._add("skip", "Mapping", "not checked", "Lead not described")
            return
        found = check_mapping(
            mapping,
            lambda name: descriptions[name],
            lead_sync=lead_sync,
            record_type_values=clients.record_type_values,
        )
        if found:
            shown = found[:MAX_MAPPING_PROBLEMS]
            more = len(found) - len(shown)
            self._add(
                "fail",
                "Mapping",
                f"{len(found)} problem(s) in {mapping.source}:\n"
                + "\n".join(f"      {problem}" for problem in shown)
                + (f"\n      ... and {more} more" if more else ""),
                f"fix the mapping, or deploy the missing fields; cosell mapping check --mapping "
                f"{mapping.source} lists every problem",
            )
            return
        self._add("pass", "Mapping", f"{mapping.source}: {len(mapping.fields)} fields fit the org")

    async def _webhooks(self, settings: Settings, http: httpx.AsyncClient) -> None:
        from cosell.config import ConfigError
        from cosell.partnercenter.errors import (
            AuthConfigurationError,
            AuthenticationError,
            PartnerCenterError,
        )

        public_url = settings.server.public_url
        if settings.partner_center.missing():
            self._add("skip", "Webhooks", "registration not checked", "settings incomplete")
            return
        try:
            async with webhooks_client(settings, clock=self._clock, http=http) as client:
                registration = await client.show()
        except (ConfigError, AuthConfigurationError, AuthenticationError) as exc:
            self._add(
                "fail",
                "Webhooks",
                f"cannot read the registration: {exc}",
                "the Webhooks API takes app-only tokens: set partner_center.client_secret "
                "(COSELL_PARTNER_CENTER__CLIENT_SECRET) of an app registered in Partner Center "
                "(Account settings > App management)",
            )
            return
        except PartnerCenterError as exc:
            self._add("fail", "Webhooks", f"cannot read the registration: {exc}", None)
            return
        register = f"cosell webhooks register --url {public_url or '<public url>'}"
        if registration is None:
            self._add(
                "fail",
                "Webhooks",
                "no webhook registration: Partner Center sends no events",
                register,
            )
            return
        lacking = [event for event in REFERRAL_EVENTS if event not in registration.webhook_events]
        ok = True
        if lacking:
            ok = False
            self._add(
                "fail",
                "Webhooks",
                f"the registration lacks {', '.join(lacking)}",
                register + " --overwrite",
            )
        if public_url is None:
            ok = False
            self._add(
                "fail",
                "Webhooks",
                f"registered at {registration.webhook_url}, but [server] public_url is not set",
                "set [server] public_url to the https URL cosell serve is reached at",
            )
        elif registration.webhook_url != public_url:
            ok = False
            self._add(
                "fail",
                "Webhooks",
                f"registered at {registration.webhook_url}, not at [server] public_url "
                f"{public_url}",
                register + " --overwrite",
            )
        if ok:
            self._add(
                "pass",
                "Webhooks",
                f"registered at {public_url} for the {len(REFERRAL_EVENTS)} referral events",
            )


def _token_fix(auth: str) -> str:
    if auth == "refresh_token":
        return (
            "check partner_center.tenant_id, client_id and client_secret; if the refresh token "
            "expired or was revoked, a Referrals admin runs `cosell connect partner-center` "
            "(signing in with MFA) to store a new one"
        )
    if auth == "password":
        return (
            "the password grant has no MFA, which Partner Center requires: run `cosell connect "
            "partner-center` and set [partner_center] auth = 'refresh_token'"
        )
    return "check partner_center.tenant_id, client_id and client_secret"


def render(lines: Sequence[CheckLine], console: Console) -> None:
    """Print the checklist: a mark, the area, what was found, and what to do."""
    for line in lines:
        symbol, style = _SYMBOLS[line.mark]
        text = Text()
        text.append(f"{symbol} ", style=f"bold {style}")
        text.append(f"{line.area}: ", style="bold")
        text.append(line.text)
        if line.fix:
            text.append(" — " if line.mark == "fail" else " (", style="dim")
            text.append(line.fix, style="dim" if line.mark == "skip" else "")
            if line.mark != "fail":
                text.append(")", style="dim")
        console.print(text, soft_wrap=True)
    failed = sum(1 for line in lines if line.mark == "fail")
    skipped = sum(1 for line in lines if line.mark == "skip")
    summary = (f"{failed} check(s) failed" if failed else "Every check passed") + (
        f", {skipped} not checked" if skipped else ""
    )
    console.print(Text(summary, style="bold red" if failed else "bold green"))


async def run_check(
    config_file: Path | None,
    *,
    console: Console,
    clock: Clock | None = None,
    pc_http: httpx.AsyncClient | None = None,
    sf_http: httpx.AsyncClient | None = None,
) -> int:
    """Run every check and print the checklist; the exit status (0 when nothing failed)."""
    lines = await Checklist(config_file, clock=clock, pc_http=pc_http, sf_http=sf_http).run()
    render(lines, console)
    return 1 if any(line.mark == "fail" for line in lines) else 0


def check(
    config: ConfigOption = None,
) -> None:
    """Check the settings, both APIs' credentials, the Salesforce schema, the mapping and the webhook."""
    with quiet_client_logs():
        status = asyncio.run(run_check(config, console=Console()))
    raise typer.Exit(code=status)
