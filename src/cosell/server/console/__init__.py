"""The operations console: server-rendered pages under `/console`, behind a sign-in.

```
GET  /console/login              the sign-in form          POST /console/login    sign in
POST /console/logout             sign out
GET  /console/oidc/start         sign in with Microsoft Entra ID (to the authorize page)
GET  /console/oidc/callback      Entra ID's answer: verify, map the role, start a session
GET  /console/                   overview: health and why, links by status, errors in 24 h,
                                 oldest pending change, webhook inbox, pollers' last runs,
                                 charts of synced changes and errors (24 h, 7 days), both
                                 sides' API usage against their budgets, token health
GET  /console/deals?q=&status=&direction=&stage=&offset=
                                 every link, searched and filtered (status as counted:
                                 Synced, Pending, Held, Error, Paused; direction; stage), 50
                                 a page (LIMIT/OFFSET)
GET  /console/deals/{link id}    one deal: ids, links to Partner Center and Salesforce, the
                                 last error and what to do, base values, conflicts, audit;
                                 with ?compare=1 also both sides' values now beside the base
                                 and what the next reconcile would do (`cosell plan`'s explain
                                 stage: two reads, nothing written)
POST /console/deals/{id}/retry   operator: queue a reconcile of the deal now
POST /console/retry-errors       operator: queue a reconcile of every deal in Error
POST /console/deals/{id}/sync    operator: reconcile the deal now and wait (`cosell sync KEY`'s
                                 path: the engine's `run_keys`)
POST /console/pause | /resume    operator: pause / resume all sync (`Store.set_pause`, the verb
                                 `cosell pause` / `cosell resume` call; optional `reason`)
POST /console/deals/{id}/pause | /resume
                                 operator: pause / resume sync of one deal (the same verb); a
                                 pause or resume also notifies the deal's key, so the engine
                                 writes Paused (or its status back) on the record at once
GET  /console/console.css        the stylesheet
```

Every page but the sign-in form and the stylesheet needs a session (else a redirect to the
sign-in form); every POST needs the session's CSRF token (else 403) and, for an action, the
operator role (else 403). Each action is recorded in the audit with who did it (the
deal's trail; a pause or resume of all sync in the entries of no deal, as `cosell pause`'s).
Ten failed sign-ins from one address for one user within 15 minutes answer 429 until the
oldest of them is 15 minutes old (`auth.SignInThrottle`).
Sessions and users: `cosell.server.console.auth`; Entra sign-in: `cosell.server.console.sso`.
With single sign-on and no users file, sessions are signed with a secret drawn at start (a
restart signs everyone out).

Actions reuse the service's seam for "this key may be out of date": the engine's `notify`
(the webhook drainer's path), which enqueues one durable reconcile of the key unless one is
already waiting. "Retry every deal in Error" notifies the first key of each link in Error,
the links `cosell sync` retries on each pass. Store reads run in a worker thread.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, quote

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from cosell.clock import Clock
from cosell.partnercenter.oidc import (
    EntraSignInError,
    OtherTenantError,
    decode_pending,
    encode_pending,
)
from cosell.server.console import auth, pages
from cosell.server.console.health import judge
from cosell.server.console.sso import SsoOptions
from cosell.server.console.usage import TokenSource, UsageSource
from cosell.store import Link, LinkNotFoundError, Store, StoreError, SyncStatus
from cosell.store.console_queries import (
    STATES,
    activity,
    deal,
    overview,
    search_links,
    stages,
)
from cosell.store.types import DIRECTIONS, record_key, referral_key
from cosell.tokenhealth import TokenHealth

if TYPE_CHECKING:  # the explain stage's types only; the service passes the function
    from cosell.sync.run.explain import PlanReport

log = structlog.get_logger("cosell.console")

BASE: Final = pages.BASE
LOGIN_COOKIE: Final = "cosell_console_login"
OIDC_COOKIE: Final = "cosell_console_oidc"
OIDC_SECONDS: Final = 600  # an Entra sign-in must come back within ten minutes
PAGE_SIZE: Final = 50
MAX_FORM_BYTES: Final = 16 * 1024  # a sign-in or an action form is a few hundred bytes
_LINK_PAGE: Final = 500
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

Notify = Callable[[str], Awaitable[bool]]
"""`Engine.notify`: enqueue a key's reconcile unless one is waiting (True when enqueued)."""

SalesforceBase = Callable[[], Awaitable[str | None]]
"""The Salesforce instance URL record links start with (None when unknown)."""

Explain = Callable[[str], Awaitable["PlanReport"]]
"""`cosell.sync.run.explain.explain` bound to the service's context: what `cosell plan` prints."""

SyncNow = Callable[[list[str]], Awaitable[bool]]
"""`Engine.run_keys` bound to the service's engine: reconcile keys now; True when all is well."""

SYNC_SECONDS: Final = 20.0  # a re-sync slower than this goes on; the page says it is running
_RUNNING: set[asyncio.Future[bool]] = set()  # re-syncs that outlived their request

EXPLAIN_SECONDS: Final = 30.0  # two reads; a side slower than this is reported, not waited on


@dataclass(frozen=True)
class ConsoleOptions:
    """What the console needs besides the store.

    Attributes:
        users_file: the users file `cosell console set-password` writes.
        partner_center_ui_url: referral pages in Partner Center are `<this>/<referral id>`.
        salesforce_base: the Salesforce instance URL, for links to records.
        secure_cookies: always mark cookies Secure (the service's public URL is https); they
            are also Secure whenever a request arrives over https.
        sso: sign-in with Microsoft Entra ID, beside the local users (None: local only).
        api_usage: both sides' API usage, for the overview (None: not shown).
        token_health: both connections' token health, for the overview (None: not shown).
        explain: compares a deal's two sides with its base on request (None: not offered).
        sync_now: reconciles keys now, in the foreground (the engine's `run_keys`, what
            `cosell sync KEY` runs); True when every key ended in sync (None: not offered).
    """

    users_file: Path
    partner_center_ui_url: str | None = None
    salesforce_base: SalesforceBase | None = None
    secure_cookies: bool = False
    sso: SsoOptions | None = None
    api_usage: UsageSource | None = None
    token_health: TokenSource | None = None
    explain: Explain | None = None
    sync_now: SyncNow | None = None


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_HEADERS)


def create_console(
    *, store: Store, clock: Clock, options: ConsoleOptions, notify: Notify | None
) -> Starlette:
    """The console's app, to mount at `/console`.

    Args:
        store: the store pages read and actions audit into.
        clock: the time pages show ages against and sessions expire by.
        options: users file, outside links, cookie security.
        notify: the engine's `notify`; None when no engine runs (actions are then not offered).
    """
    users = auth.UsersSource(options.users_file)
    throttle = auth.SignInThrottle()
    sso = options.sso
    # Signs SSO sessions when no users file exists (then a restart signs everyone out).
    ephemeral = auth.Users(session_secret=secrets.token_bytes(32), users={})

    def current_users() -> auth.Users | None:
        found = users.get()
        if found is None and sso is not None:
            return ephemeral
        return found

    def now() -> float:
        return clock.now().timestamp()

    known_stages: list[tuple[float, list[str]]] = []

    async def stage_choices() -> list[str]:
        # The stages the bases hold change rarely; reading them scans every base, so a
        # minute-old list serves the filter.
        if not known_stages or clock.monotonic() - known_stages[0][0] >= STAGES_SECONDS:
            known_stages[:] = [(clock.monotonic(), await asyncio.to_thread(stages, store))]
        return known_stages[0][1]

    def secure(request: Request) -> bool:
        return options.secure_cookies or request.url.scheme == "https"

    def session_of(request: Request) -> auth.Session | None:
        current = current_users()
        if current is None:
            return None
        return auth.decode_session(
            request.cookies.get(auth.COOKIE),
            current,
            now=now(),
            sso_tenant=sso.tenant if sso else None,
        )

    def to_login(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return _redirect(f"{BASE}/login?next={quote(target, safe='')}")

    async def css(_: Request) -> Response:
        return Response(
            pages.CSS,
            media_type="text/css",
            headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    def login_form(request: Request, error: str | None, status: int, user: str = "") -> Response:
        token = secrets.token_urlsafe(24)
        ready = users.get() is not None
        response = _html(
            pages.login_page(
                error=error,
                login_token=token,
                ready=ready,
                user=user,
                next_path=_next(request),
                sso=sso is not None,
            ),
            status,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=1800,
            path=BASE,
            httponly=True,
            samesite="lax",
            secure=secure(request),
        )
        return response

    async def login(request: Request) -> Response:
        try:
            if request.method == "GET":
                if session_of(request) is not None:
                    return _redirect(_next(request))
                return login_form(request, None, 200)
            form = await _form(request)
            name, password = str(form.get("username", "")), str(form.get("password", ""))
            token = request.cookies.get(LOGIN_COOKIE)
            if not token or not secrets.compare_digest(token, str(form.get("login_token", ""))):
                return login_form(
                    request, "The sign-in form expired; enter your password again.", 400, name
                )
            address = request.client.host if request.client else "-"
            wait = throttle.wait_seconds(address, name, now=now())
            if wait:
                log.warning("console.sign_in_throttled", user=name[:64])
                minutes = max(1, round(wait / 60))
                return login_form(
                    request,
                    f"Too many failed sign-ins: try again in {minutes} min.",
                    429,
                    name,
                )
            current = users.get()
            user = current.users.get(name) if current else None
            matches = await asyncio.to_thread(_password_matches, password, user)
            if current is None or user is None or not matches:
                throttle.failed(address, name, now=now())
                log.warning("console.sign_in_refused", user=name[:64])
                return login_form(request, "Wrong user or password.", 401, name)
        except auth.UsersFileError as error:
            return _html(pages.message_page("Console unavailable", str(error), session=None), 503)
        throttle.succeeded(address, name)
        response = start_session(request, user, current.session_secret, _next(request))
        response.delete_cookie(LOGIN_COOKIE, path=BASE)
        return response

    def start_session(request: Request, user: auth.User, secret: bytes, target: str) -> Response:
        session = auth.new_session(user, now=now())
        log.info("console.signed_in", user=user.name, role=user.role.value)
        response = _redirect(target)
        response.set_cookie(
            auth.COOKIE,
            auth.encode_session(session, secret),
            max_age=auth.SESSION_SECONDS,
            path=BASE,
            httponly=True,
            samesite="lax",
            secure=secure(request),
        )
        return response

    def redirect_uri(request: Request) -> str:
        assert sso is not None
        if sso.redirect_url:
            return sso.redirect_url
        return f"{request.url.scheme}://{request.url.netloc}{BASE}/oidc/callback"

    def sso_refused(title: str, text: str, status: int) -> Response:
        response = _html(pages.sign_in_refused_page(title, text), status)
        response.delete_cookie(OIDC_COOKIE, path=BASE)
        return response

    async def oidc_start(request: Request) -> Response:
        if sso is None:
            return _html(
                pages.message_page(
                    "Not available",
                    "Sign-in with Microsoft is not set up: set [console] oidc_tenant and "
                    "oidc_client_id (see the README).",
                    session=None,
                ),
                404,
            )
        current = current_users()
        assert current is not None
        try:
            url, pending = await sso.sign_in.start(redirect_uri(request))
        except EntraSignInError as error:
            log.warning("console.sso_unavailable", error=str(error))
            return sso_refused("Sign-in with Microsoft is unavailable", str(error), 503)
        sealed = auth.seal(
            current.session_secret, encode_pending(pending, {"next": _next(request)})
        )
        response = RedirectResponse(url, status_code=303, headers=_HEADERS)
        response.set_cookie(
            OIDC_COOKIE,
            sealed,
            max_age=OIDC_SECONDS,
            path=BASE,
            httponly=True,
            samesite="lax",  # the answer is a top-level GET from Entra: Lax sends it
            secure=secure(request),
        )
        return response

    async def oidc_callback(request: Request) -> Response:
        if sso is None:
            return await oidc_start(request)
        current = current_users()
        assert current is not None
        params = request.query_params
        if params.get("error"):
            text = (params.get("error_description") or params["error"]).splitlines()[0][:300]
            log.warning("console.sso_refused_by_entra", error=params["error"][:64])
            return sso_refused(
                "Sign-in was not completed",
                f"Microsoft Entra ID answered: {text}. Try again, or sign in with a password.",
                400,
            )
        found = decode_pending(
            auth.unseal(current.session_secret, request.cookies.get(OIDC_COOKIE)) or ""
        )
        state = params.get("state", "")
        if found is None or not secrets.compare_digest(found[0].state, state):
            return sso_refused(
                "Sign-in expired",
                "This sign-in was not started here or took longer than ten minutes; start "
                "it again from the sign-in page.",
                400,
            )
        pending, extra = found
        try:
            signed_in = await sso.sign_in.finish(
                params.get("code", ""), pending, redirect_uri=redirect_uri(request)
            )
        except OtherTenantError as error:
            log.warning("console.sso_other_tenant", tenant=error.tenant[:64])
            return sso_refused("Account of another tenant", str(error), 403)
        except EntraSignInError as error:
            log.warning("console.sso_refused", error=str(error))
            return sso_refused("Sign-in refused", str(error), 403)
        role = sso.role_of(signed_in)
        name = signed_in.username or signed_in.object_id
        if role is None:
            log.warning("console.sso_no_role", user=name[:64])
            return sso_refused(
                "No access to the console",
                f"{name} signed in, but has no role in the cosell console. Ask an admin to "
                f"assign you the app role {sso.viewer_role} or {sso.operator_role} on the "
                "console's app registration (or to list you in [console] viewers or "
                "operators).",
                403,
            )
        user = auth.sso_user(name, role, sso.tenant)
        target = _safe_next(extra.get("next", ""))
        response = start_session(request, user, current.session_secret, target)
        response.delete_cookie(OIDC_COOKIE, path=BASE)
        return response

    async def logout(request: Request) -> Response:
        session = session_of(request)
        if session is not None:
            form = await _form(request)
            if not auth.csrf_ok(session, _field(form.get("csrf"))):
                return _refused("The form expired; reload the page and try again.", session)
        response = _redirect(f"{BASE}/login")
        response.delete_cookie(auth.COOKIE, path=BASE)
        return response

    async def guarded(
        request: Request, page: Callable[[auth.Session], Awaitable[Response]]
    ) -> Response:
        try:
            session = session_of(request)
        except auth.UsersFileError as error:
            return _html(pages.message_page("Console unavailable", str(error), session=None), 503)
        if session is None:
            return to_login(request)
        try:
            pauses = await asyncio.to_thread(store.pauses)
            pages.PAUSED_ALL.set(next((p for p in pauses if p.target is None), None))
            return await page(session)
        except StoreError as error:
            log.warning("console.store_unavailable", error=str(error))
            return _html(
                pages.message_page("The store is unavailable", str(error), session=session), 503
            )

    async def overview_route(request: Request) -> Response:
        async def page(session: auth.Session) -> Response:
            moment = clock.now()
            figures = await asyncio.to_thread(overview, store, now=moment)
            charts = await asyncio.to_thread(activity, store, now=moment)
            flash = pages.notice(request.query_params.get("notice"))
            return _html(
                pages.overview_page(
                    figures,
                    judge(figures, now=moment),
                    now=moment,
                    session=session,
                    flash=flash,
                    activity=charts,
                    usage=list(options.api_usage()) if options.api_usage else [],
                    tokens=_tokens(options.token_health),
                )
            )

        return await guarded(request, page)

    async def deals_route(request: Request) -> Response:
        async def page(session: auth.Session) -> Response:
            query = request.query_params.get("q", "")[:200]
            status_text = request.query_params.get("status", "")
            status = status_text if status_text in STATES else ""
            offset_text = request.query_params.get("offset", "0")
            offset = int(offset_text) if offset_text.isdigit() and len(offset_text) < 9 else 0
            direction_text = request.query_params.get("direction", "")
            direction = direction_text if direction_text in _DIRECTIONS else ""
            stage = request.query_params.get("stage", "")[:MAX_STAGE_LENGTH]
            found = await asyncio.to_thread(
                search_links,
                store,
                query=query,
                status=status or None,
                direction=direction or None,
                stage=stage or None,
                offset=offset,
                limit=PAGE_SIZE,
            )
            choices = await stage_choices()
            return _html(
                pages.deals_page(
                    found,
                    query=query,
                    status=status,
                    now=clock.now(),
                    session=session,
                    direction=direction,
                    stage=stage,
                    stages=choices,
                )
            )

        return await guarded(request, page)

    async def compare(key: str, session: auth.Session) -> PlanReport | str:
        """The explain stage's report, or why it could not be made (for the page)."""
        assert options.explain is not None
        try:
            return await asyncio.wait_for(options.explain(key), EXPLAIN_SECONDS)
        except TimeoutError:
            return (
                f"Reading both sides took longer than {EXPLAIN_SECONDS:g} s; try again, or run "
                f"`cosell plan {key}`."
            )
        except Exception as exc:  # noqa: BLE001 - a side that is down is shown, not a 500
            log.warning("console.compare_failed", user=session.user, key=key, error=str(exc))
            return (
                f"Both sides could not be read ({type(exc).__name__}: {str(exc)[:300]}). "
                "`cosell check` says which connection fails."
            )

    async def deal_route(request: Request) -> Response:
        link_id = request.path_params["link_id"]

        async def page(session: auth.Session) -> Response:
            found = await asyncio.to_thread(deal, store, link_id) if _is_id(link_id) else None
            if found is None:
                return _html(
                    pages.message_page(
                        "No such deal", "There is no deal with this id.", session=session
                    ),
                    404,
                )
            link = found.link
            referral_url = None
            if link.referral_id and options.partner_center_ui_url:
                referral_url = f"{options.partner_center_ui_url.rstrip('/')}/{link.referral_id}"
            record_url = None
            if link.record_id and options.salesforce_base is not None:
                instance = await options.salesforce_base()
                if instance:
                    record_url = (
                        f"{instance.rstrip('/')}/lightning/r/{link.sobject}/{link.record_id}/view"
                    )
            keys: list[str] = []
            if link.referral_id:
                keys.append(referral_key(link.referral_id))
            if link.record_id:
                keys.append(record_key(link.sobject, link.record_id))
            comparison: PlanReport | str | None = None
            if request.query_params.get("compare") == "1" and options.explain and keys:
                comparison = await compare(keys[0], session)
            return _html(
                pages.deal_page(
                    found,
                    now=clock.now(),
                    session=session,
                    flash=pages.notice(request.query_params.get("notice")),
                    referral_url=referral_url,
                    record_url=record_url,
                    can_retry=notify is not None and bool(link.referral_id or link.record_id),
                    can_sync=options.sync_now is not None and bool(keys),
                    can_compare=options.explain is not None and bool(keys),
                    comparison=comparison,
                )
            )

        return await guarded(request, page)

    async def operating(
        request: Request, act: Callable[[auth.Session, dict[str, str]], Awaitable[Response]]
    ) -> Response:
        """An operator's action: a session, its CSRF token and the operator role, else 403."""

        async def page(session: auth.Session) -> Response:
            form = await _form(request)
            if not auth.csrf_ok(session, _field(form.get("csrf"))):
                log.warning("console.csrf_refused", user=session.user, path=request.url.path)
                return _refused("The form expired; reload the page and try again.", session)
            if not session.can_act:
                log.warning("console.viewer_refused", user=session.user, path=request.url.path)
                return _refused(
                    "Your role (viewer) cannot act; ask an operator, or sign in as one.", session
                )
            return await act(session, form)

        return await guarded(request, page)

    async def acting(
        request: Request, act: Callable[[auth.Session, Notify], Awaitable[Response]]
    ) -> Response:
        async def page(session: auth.Session, _: dict[str, str]) -> Response:
            if notify is None:
                return _html(
                    pages.message_page(
                        "No engine",
                        "This console runs without the sync engine, so nothing can be retried.",
                        session=session,
                    ),
                    409,
                )
            return await act(session, notify)

        return await operating(request, page)

    def pause_route(*, paused: bool, one: bool) -> Callable[[Request], Awaitable[Response]]:
        """Pause or resume all sync, or one deal: `Store.set_pause`, as `cosell pause` does."""

        async def route(request: Request) -> Response:
            link_id = request.path_params.get("link_id") if one else None

            async def act(session: auth.Session, form: dict[str, str]) -> Response:
                if link_id is not None and not _is_id(link_id):
                    return _no_deal(session)
                reason = " ".join(form.get("reason", "").split())[:200] or None
                try:
                    changed = await asyncio.to_thread(
                        store.set_pause,
                        link_id,
                        paused=paused,
                        by=session.user,
                        reason=reason if paused else None,
                    )
                except LinkNotFoundError:
                    return _no_deal(session)
                verb = "paused" if paused else "resumed"
                log.info(f"console.{verb}", user=session.user, link=link_id, changed=changed)
                if changed and link_id is not None and notify is not None:
                    await _show_pause(store, link_id, notify)
                code = (verb if link_id else f"{verb}-all") if changed else "unchanged"
                target = f"{BASE}/deals/{link_id}" if link_id else f"{BASE}/"
                return _redirect(f"{target}?notice={code}")

            return await operating(request, act)

        return route

    async def sync_route(request: Request) -> Response:
        """Re-sync one deal now: the engine's `run_keys`, the path of `cosell sync KEY`."""
        link_id = request.path_params["link_id"]

        async def act(session: auth.Session, _: dict[str, str]) -> Response:
            sync_now = options.sync_now
            if sync_now is None:
                return _html(
                    pages.message_page(
                        "No engine",
                        "This console runs without the sync engine, so nothing can be synced.",
                        session=session,
                    ),
                    409,
                )
            link = await asyncio.to_thread(store.get_link, link_id) if _is_id(link_id) else None
            if link is None or not link.keys:
                return _no_deal(session)
            await asyncio.to_thread(
                store.record_audit,
                link.id,
                f"sync requested by {session.user} (console)",
                details={"by": session.user, "action": "console sync"},
            )
            running = asyncio.ensure_future(sync_now([link.keys[0]]))
            try:
                ok = await asyncio.wait_for(asyncio.shield(running), SYNC_SECONDS)
            except TimeoutError:
                _keep(running)
                return _redirect(f"{BASE}/deals/{link.id}?notice=sync-running")
            except Exception as exc:  # noqa: BLE001 - the engine failed: say so, not a 500
                return _not_queued(exc, session)
            log.info("console.sync", user=session.user, link=link.id, ok=ok)
            if not ok:
                held = await asyncio.to_thread(_why_held, store, link.id)
                if held is not None:  # held by a pause or an open circuit: say so, not a failure
                    return _html(pages.held_page(link.id, held, session=session), 200)
            done = "synced" if ok else "sync-failed"
            return _redirect(f"{BASE}/deals/{link.id}?notice={done}")

        return await operating(request, act)

    async def retry_route(request: Request) -> Response:
        link_id = request.path_params["link_id"]

        async def act(session: auth.Session, notify: Notify) -> Response:
            link = await asyncio.to_thread(store.get_link, link_id) if _is_id(link_id) else None
            if link is None or not link.keys:
                return _html(
                    pages.message_page(
                        "Cannot retry", "There is no deal with this id to retry.", session=session
                    ),
                    404,
                )
            try:
                enqueued = await notify(link.keys[0])
            except Exception as exc:  # noqa: BLE001 - the engine's store or queue failed: say so
                return _not_queued(exc, session)
            await asyncio.to_thread(
                _request_retry,
                store,
                link,
                f"retry requested from the console by {session.user}",
                {"by": session.user, "action": "retry", "enqueued": enqueued},
                clock,
            )
            log.info("console.retry", user=session.user, link=link.id, enqueued=enqueued)
            done = "retried" if enqueued else "already"
            return _redirect(f"{BASE}/deals/{link.id}?notice={done}")

        return await acting(request, act)

    async def retry_errors_route(request: Request) -> Response:
        async def act(session: auth.Session, notify: Notify) -> Response:
            count = 0
            after: str | None = None
            while True:
                page = await asyncio.to_thread(
                    store.links, status=SyncStatus.ERROR, limit=_LINK_PAGE, after=after
                )
                for link in page:
                    if not link.keys:
                        continue
                    try:
                        enqueued = await notify(link.keys[0])
                    except Exception as exc:  # noqa: BLE001 - as for one deal; the rest wait
                        return _not_queued(exc, session, done=count)
                    await asyncio.to_thread(
                        _request_retry,
                        store,
                        link,
                        f"retry of every deal in Error requested from the console by "
                        f"{session.user}",
                        {"by": session.user, "action": "retry_errors", "enqueued": enqueued},
                        clock,
                    )
                    count += 1
                if len(page) < _LINK_PAGE:
                    break
                after = page[-1].id
            log.info("console.retry_errors", user=session.user, links=count)
            return _redirect(f"{BASE}/?notice=retried-{count}")

        return await acting(request, act)

    return Starlette(
        routes=[
            Route("/", overview_route, methods=["GET"]),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/oidc/start", oidc_start, methods=["GET"]),
            Route("/oidc/callback", oidc_callback, methods=["GET"]),
            Route("/console.css", css, methods=["GET"]),
            Route("/deals", deals_route, methods=["GET"]),
            Route("/deals/{link_id}", deal_route, methods=["GET"]),
            Route("/deals/{link_id}/retry", retry_route, methods=["POST"]),
            Route("/retry-errors", retry_errors_route, methods=["POST"]),
            Route("/pause", pause_route(paused=True, one=False), methods=["POST"]),
            Route("/resume", pause_route(paused=False, one=False), methods=["POST"]),
            Route("/deals/{link_id}/pause", pause_route(paused=True, one=True), methods=["POST"]),
            Route("/deals/{link_id}/resume", pause_route(paused=False, one=True), methods=["POST"]),
            Route("/deals/{link_id}/sync", sync_route, methods=["POST"]),
        ]
    )


_DIRECTIONS: Final = frozenset({*DIRECTIONS, "unknown"})
STAGES_SECONDS: Final = 60.0  # how long the deals filter's list of stages is reused
MAX_STAGE_LENGTH: Final = 100  # a status/substatus pair is a few dozen characters


@cache
def _dummy_hash() -> str:
    # Checked against when the user does not exist, so that the answer takes as long.
    return auth.hash_password(secrets.token_urlsafe(16))


def _password_matches(password: str, user: auth.User | None) -> bool:
    # In a worker thread: scrypt takes ~0.1 s, and runs for unknown users too.
    return auth.verify_password(password, user.password_hash if user else _dummy_hash())


def _field(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def _form(request: Request) -> dict[str, str]:
    """The fields of a urlencoded form (the only kind the console's pages send).

    Anything else, or a body over `MAX_FORM_BYTES`, reads as no fields at all, so the CSRF
    check refuses it.
    """
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            return {}
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def _tokens(source: TokenSource | None) -> list[TokenHealth]:
    if source is None:
        return []
    try:
        return list(source())
    except Exception as exc:  # noqa: BLE001 - an unreadable token file must not hide the page
        log.warning("console.token_health_unreadable", error=f"{type(exc).__name__}: {exc}")
        return []


def _is_id(link_id: str) -> bool:
    return len(link_id) == 32 and all(c in "0123456789abcdef" for c in link_id)


def _next(request: Request) -> str:
    return _safe_next(request.query_params.get("next", ""))


def _safe_next(target: str) -> str:
    # Only a path of the console: never another site (an open redirect).
    if target.startswith(f"{BASE}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{BASE}/"


def _request_retry(
    store: Store, link: Link, message: str, details: dict[str, object], clock: Clock
) -> None:
    """What every retry an admin asks for records (`cosell retry` too): backoff cleared, audit."""
    from cosell.sync.plan.record import retry_requested_record

    store.record([retry_requested_record(link, message, now=clock.now(), details=details)])


def _not_queued(exc: Exception, session: auth.Session, *, done: int = 0) -> Response:
    log.warning("console.retry_failed", user=session.user, error=str(exc), queued=done)
    already = f" {done} deal(s) were queued before it failed." if done else ""
    return _html(
        pages.message_page(
            "Retry not queued",
            f"The sync engine could not queue the retry ({type(exc).__name__}; the service's "
            "log says more)."
            f"{already} Check that `cosell serve` is healthy (/readyz), then try again.",
            session=session,
        ),
        503,
    )


def _why_held(store: Store, link_id: str) -> str | None:
    """Why the deal's sync is held now (a pause, an open circuit), or None: `plan.holds`."""
    from cosell.sync.plan.holds import why_held

    return why_held(store.pauses(), store.circuits(), link_id)


async def _show_pause(store: Store, link_id: str, notify: Notify) -> None:
    """Let the engine meet the deal's key now, so its record says Paused (or synced) at once.

    Paused: the engine holds the key and writes Paused on the record (`run.park.show_paused`).
    Resumed: it reconciles the key, which writes its status back. `cosell pause KEY` and
    `cosell resume KEY` reach the same engine path (a wake-up for a running service, or an
    engine of their own). The pause stands whether or not this is queued.
    """
    link = await asyncio.to_thread(store.get_link, link_id)
    if link is None or not link.keys:
        return
    try:
        await notify(link.keys[0])
    except Exception as exc:  # noqa: BLE001 - the record shows it at the deal's next change
        log.warning("console.pause_not_shown", link=link_id, error=str(exc))


def _keep(running: asyncio.Future[bool]) -> None:
    # A re-sync that outlives its request runs on; keep a reference until it ends.
    _RUNNING.add(running)
    running.add_done_callback(_RUNNING.discard)


def _no_deal(session: auth.Session) -> Response:
    return _html(
        pages.message_page("No such deal", "There is no deal with this id.", session=session),
        404,
    )


def _refused(text: str, session: auth.Session) -> Response:
    return _html(pages.message_page("Refused", text, session=session), 403)


__all__ = ["BASE", "ConsoleOptions", "create_console"]
