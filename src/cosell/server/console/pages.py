"""The console's HTML: one layout, the three pages and the sign-in form, escaped throughout.

Plain server-rendered HTML and one stylesheet (`CSS`, served at `/console/console.css`): no
script at all, so the Content-Security-Policy forbids every script.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from cosell.server.console.auth import Session
from cosell.server.console.health import SIDE_NAMES, Health, advice
from cosell.server.console.usage import ApiUsage
from cosell.store import Circuit, Pause
from cosell.store.console_queries import (
    HELD,
    STATES,
    Activity,
    Bucket,
    Deal,
    LinkPage,
    LinkRow,
    Overview,
)
from cosell.tokenhealth import TokenHealth

if TYPE_CHECKING:  # the explain stage's types only; the service passes the function
    from cosell.sync.run.explain import PlanReport

BASE: Final = "/console"
COUNTED: Final = ("Synced", "Pending", "Error", "Paused")  # `Store.deal_counts`, each link once

PAUSED_ALL: ContextVar[Pause | None] = ContextVar("console_paused_all", default=None)
"""The pause of all sync in force while a page renders (the console sets it per request);
`layout` shows it in a banner on every page."""

CSS: Final = """
:root{--ink:#1b2330;--muted:#5b6675;--line:#dfe3e8;--bg:#f5f7fa;--card:#fff;--brand:#2456a6;
--ok:#1f7a3f;--warn:#a35f00;--bad:#b3261e;font-family:system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;color:var(--ink);background:var(--bg)}
*{box-sizing:border-box}body{margin:0;font-size:15px;line-height:1.45}
a{color:var(--brand)}header{background:#14233c;color:#fff;padding:.6rem 1rem;display:flex;
flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center}
header .brand{font-weight:700;letter-spacing:.02em;margin-right:.5rem}
header nav a{color:#d7e3f7;text-decoration:none;padding:.2rem .1rem}
header nav a.on{color:#fff;border-bottom:2px solid #7fb0ff}
header .who{margin-left:auto;font-size:.9rem;color:#c3cfe2;display:flex;gap:.6rem;
align-items:center}
header .who button{background:none;border:1px solid #6c7f9e;color:#fff;border-radius:4px;
padding:.15rem .5rem;cursor:pointer}
main{max-width:1200px;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.4rem 0 .6rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:.8rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem}
.card .label{color:var(--muted);font-size:.85rem}.card .value{font-size:1.5rem;font-weight:600}
.card .sub{color:var(--muted);font-size:.85rem}
a.card{text-decoration:none;color:inherit}a.card:hover{border-color:var(--brand)}
.card .value.small{font-size:1rem;font-weight:500}header nav{display:flex;gap:1rem}
.banner{border-radius:8px;padding:.8rem 1rem;margin-bottom:1rem;border:1px solid}
.banner.healthy{background:#e8f5ec;border-color:#a9d8b8}
.banner.degraded{background:#fff4e0;border-color:#f0c983}
.banner.failing{background:#fde8e7;border-color:#eeaaa6}
.banner strong{text-transform:capitalize}.banner ul{margin:.4rem 0 0 1.2rem;padding:0}
.notice{background:#e9f0fc;border:1px solid #b7cbef;border-radius:8px;padding:.6rem 1rem;
margin-bottom:1rem}.notice.bad{background:#fde8e7;border-color:#eeaaa6}
.badge{display:inline-block;border-radius:999px;padding:.05rem .55rem;font-size:.8rem;
font-weight:600;border:1px solid}
.badge.Synced{color:var(--ok);border-color:#a9d8b8;background:#e8f5ec}
.badge.Pending{color:var(--warn);border-color:#f0c983;background:#fff4e0}
.badge.Error{color:var(--bad);border-color:#eeaaa6;background:#fde8e7}
.badge.Paused{color:#4b4f8a;border-color:#b9bce6;background:#eeeffc}
.badge.Held{color:var(--warn);border-color:#f0c983;background:#fff}
.banner.paused{background:#eeeffc;border-color:#b9bce6;display:flex;flex-wrap:wrap;gap:.6rem;
align-items:center}.banner.paused form{margin-left:auto}
.banner.paused strong{text-transform:none}
.circuit.open{border-color:#eeaaa6;background:#fde8e7}.circuit.closed{border-color:#a9d8b8}
.scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.5rem .7rem;
border-bottom:1px solid var(--line);vertical-align:top}th{font-size:.8rem;color:var(--muted);
text-transform:uppercase;letter-spacing:.03em;background:#fafbfc}tr:last-child td{border:0}
td.mono,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem;
word-break:break-all}
form.search{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:.8rem}
input,select,button{font:inherit}input[type=search],input[type=text],input[type=password],
select{padding:.45rem .6rem;border:1px solid #c5ccd6;border-radius:6px;background:#fff}
input[type=search]{flex:1 1 240px}
.btn{background:var(--brand);color:#fff;border:0;border-radius:6px;padding:.45rem .9rem;
cursor:pointer}.btn.secondary{background:#fff;color:var(--brand);border:1px solid var(--brand)}
.pager{display:flex;gap:1rem;align-items:center;margin:.8rem 0;color:var(--muted)}
.error-box{background:#fde8e7;border:1px solid #eeaaa6;border-radius:8px;padding:.8rem 1rem}
.error-box p{margin:.3rem 0}.muted{color:var(--muted)}
.login{max-width:380px;margin:8vh auto;background:var(--card);border:1px solid var(--line);
border-radius:10px;padding:1.5rem}.login label{display:block;margin:.8rem 0 .2rem}
.login input{width:100%}.login .btn{width:100%;margin-top:1.2rem}
a.btn{display:inline-block;text-align:center;text-decoration:none}
.btn.microsoft{background:#2f2f2f}.login .or{text-align:center;margin:1rem 0 0}
.actions{display:flex;flex-wrap:wrap;gap:.6rem;margin:.6rem 0}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:.8rem;
margin-top:.8rem}.chart{margin:0}.chart figcaption{display:flex;justify-content:space-between;
flex-wrap:wrap;gap:.3rem;margin-bottom:.4rem}.chart .sum{color:var(--muted);font-size:.85rem}
.chart svg{width:100%;height:90px;display:block}.chart rect.synced{fill:#2456a6}
.chart rect.errors{fill:var(--bad)}.chart rect.hit{fill:transparent}
.chart g.bar:hover rect.hit{fill:rgba(36,86,166,.08)}
.chart .ticks{display:flex;justify-content:space-between;color:var(--muted);font-size:.75rem}
#comparison tr.write td{background:#e9f0fc}#comparison tr.conflict td{background:#fff4e0}
#comparison tr.refused td,#comparison tr.held td{background:#fde8e7}
#comparison tr.differs td.action{color:var(--muted)}
.meter{width:100%;max-width:320px;height:8px;display:block;margin:.2rem 0}
.meter rect.track{fill:var(--line)}.meter.ok rect.used{fill:var(--ok)}
.meter.warn rect.used{fill:var(--warn)}.meter.bad rect.used{fill:var(--bad)}
@media (max-width:700px){.wide{display:none}main{padding:.6rem}h1{font-size:1.2rem}
header .who{margin-left:0;width:100%}}
"""

_NOTICES: Final = {
    "retried": "A retry of this deal was queued; the page shows its result once it has run.",
    "already": "A reconcile of this deal was already waiting; it will run shortly.",
    "signed-out": "You are signed out.",
    "paused-all": "All sync is paused: nothing is written to either side until it is resumed.",
    "resumed-all": "All sync resumed: what waited is synced at the service's next poll.",
    "paused": "Sync of this deal is paused: its changes wait until it is resumed.",
    "resumed": "Sync of this deal resumed: what waited is synced at the service's next poll.",
    "unchanged": "Nothing changed: it was already so.",
    "synced": "The deal was synced now; the page shows the result.",
    "sync-failed": "The deal was reconciled now but did not end in sync; the page says why.",
    "sync-running": "The sync of this deal is still running; reload the page in a moment.",
}


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def when(value: datetime | None, now: datetime) -> str:
    """A time as `2026-12-07 22:04 UTC (3 min ago)`, or an em dash."""
    if value is None:
        return "—"
    seconds = int((now - value).total_seconds())
    if seconds < 0:
        ahead = -seconds
        ago = (
            f"in {ahead} s"
            if ahead < 60
            else f"in {ahead // 60} min"
            if ahead < 3600
            else f"in {ahead // 3600} h"
        )
    elif seconds < 60:
        ago = f"{seconds} s ago"
    elif seconds < 3600:
        ago = f"{seconds // 60} min ago"
    elif seconds < 86400:
        ago = f"{seconds // 3600} h ago"
    else:
        ago = f"{seconds // 86400} d ago"
    return f'<time datetime="{value.isoformat()}">{value:%Y-%m-%d %H:%M} UTC</time> ({ago})'


def badge(status: str) -> str:
    """A sync status as a coloured badge."""
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


def layout(title: str, body: str, *, session: Session | None, active: str = "") -> str:
    """A whole page around `body`."""
    nav = ""
    if session is not None:
        items = (("overview", f"{BASE}/", "Overview"), ("deals", f"{BASE}/deals", "Deals"))
        links = "".join(
            f'<a href="{href}" class="{"on" if key == active else ""}">{label}</a>'
            for key, href, label in items
        )
        nav = (
            f"<nav>{links}</nav>"
            f'<div class="who"><span>{_e(session.user)} · {_e(session.role.value)}</span>'
            f'<form method="post" action="{BASE}/logout">{csrf_field(session)}'
            '<button type="submit">Sign out</button></form></div>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)} · cosell</title>"
        f'<link rel="stylesheet" href="{BASE}/console.css"></head><body>'
        f'<header><span class="brand">cosell</span>{nav}</header><main>'
        f"{paused_banner(session)}{body}</main></body></html>"
    )


def paused_banner(session: Session | None) -> str:
    """While all sync is paused: who paused it, since when, why (and, for an operator, Resume)."""
    paused = PAUSED_ALL.get()
    if paused is None or session is None:
        return ""
    why = f" — {_e(paused.reason)}" if paused.reason else ""
    resume = ""
    if session.can_act:
        resume = (
            f'<form method="post" action="{BASE}/resume">{csrf_field(session)}'
            '<button class="btn" type="submit" id="resume-all">Resume all sync</button></form>'
        )
    return (
        f'<div class="banner paused" id="paused-banner" role="status"><span>'
        f"<strong>All sync is paused</strong> by {_e(paused.by)} since "
        f"{paused.since:%Y-%m-%d %H:%M} UTC{why}. Changes wait as Pending.</span>{resume}</div>"
    )


def csrf_field(session: Session) -> str:
    """The hidden field every form that acts carries."""
    return f'<input type="hidden" name="csrf" value="{_e(session.csrf)}">'


def notice(code: str | None, text: str | None = None) -> str:
    """A notice above the page: a known code's sentence, or `text` (an error)."""
    if text:
        return f'<div class="notice bad" role="alert">{_e(text)}</div>'
    if code in _NOTICES:
        return f'<div class="notice" role="status">{_e(_NOTICES[code])}</div>'
    if code and code.startswith("retried-"):
        count = code.removeprefix("retried-")
        if count.isdigit():
            return (
                f'<div class="notice" role="status">Retries of {int(count)} deal(s) in Error '
                "were queued.</div>"
            )
    return ""


def login_page(
    *,
    error: str | None,
    login_token: str,
    ready: bool,
    user: str = "",
    next_path: str = "",
    sso: bool = False,
) -> str:
    """The sign-in form (or why no one can sign in yet), and Microsoft sign-in when set up."""
    microsoft = ""
    if sso:
        microsoft = (
            f'<a class="btn microsoft" id="sso" href="{BASE}/oidc/start?'
            f'{_e(urlencode({"next": next_path}))}">Sign in with Microsoft</a>'
        )
    if not ready and sso:
        form = ""
    elif not ready:
        form = (
            "<p>No console user exists yet. On the server, run</p>"
            '<p class="mono">cosell console set-password --user admin</p>'
            "<p>then reload this page.</p>"
        )
    else:
        form = (
            f'<form method="post" action="{BASE}/login?{urlencode({"next": next_path})}">'
            f'<input type="hidden" name="login_token" value="{_e(login_token)}">'
            '<label for="username">User</label>'
            f'<input id="username" name="username" type="text" autocomplete="username" '
            f'required value="{_e(user)}">'
            '<label for="password">Password</label>'
            '<input id="password" name="password" type="password" '
            'autocomplete="current-password" required>'
            '<button class="btn" type="submit">Sign in</button></form>'
        )
    error_html = f'<div class="notice bad" role="alert">{_e(error)}</div>' if error else ""
    divider = '<p class="or muted">or with a console password</p>' if sso and form else ""
    body = (
        f'<div class="login"><h1>Sign in to the cosell console</h1>{error_html}{microsoft}'
        f"{divider}{form}</div>"
    )
    return layout("Sign in", body, session=None)


def sign_in_refused_page(title: str, text: str) -> str:
    """Why a sign-in with Microsoft was refused, and the way back to the sign-in page."""
    body = (
        f'<div class="login" id="refused"><h1>{_e(title)}</h1>'
        f'<div class="notice bad" role="alert">{_e(text)}</div>'
        f'<a class="btn" href="{BASE}/login" id="back">Back to sign-in</a></div>'
    )
    return layout(title, body, session=None)


def chart(buckets: list[Bucket], *, ident: str, label: str, hourly: bool) -> str:
    """A bar chart (inline SVG, no script): synced changes stacked on errors, per bucket."""
    width, height, gap = 24, 80, 4
    top = max([b.synced + b.errors for b in buckets] + [1])
    bars = []
    for index, bucket in enumerate(buckets):
        x = index * (width + gap)
        synced_h = round(height * bucket.synced / top)
        errors_h = round(height * bucket.errors / top)
        when_text = f"{bucket.start:%H}:00" if hourly else f"{bucket.start:%a %d %b}"
        title = f"{when_text}: {bucket.synced} synced, {bucket.errors} errors"
        bars.append(
            f'<g class="bar" data-synced="{bucket.synced}" data-errors="{bucket.errors}">'
            f"<title>{_e(title)}</title>"
            f'<rect x="{x}" y="{height - synced_h - errors_h}" width="{width}" '
            f'height="{synced_h}" class="synced"/>'
            f'<rect x="{x}" y="{height - errors_h}" width="{width}" height="{errors_h}" '
            'class="errors"/>'
            f'<rect x="{x}" y="0" width="{width}" height="{height}" class="hit"/></g>'
        )
    total = len(buckets) * (width + gap) - gap
    first = buckets[0].start if buckets else None
    ticks = ""
    if first is not None:
        ends = (f"{first:%H}:00", "now") if hourly else (f"{first:%d %b}", "today")
        ticks = f'<div class="ticks"><span>{ends[0]}</span><span>{ends[1]}</span></div>'
    synced = sum(b.synced for b in buckets)
    errors = sum(b.errors for b in buckets)
    return (
        f'<figure class="chart card" id="{ident}"><figcaption><span class="label">{_e(label)}'
        f'</span> <span class="sum">{synced:,} synced · {errors:,} errors</span></figcaption>'
        f'<svg viewBox="0 0 {total} {height}" preserveAspectRatio="none" role="img" '
        f'aria-label="{_e(label)}: {synced} synced, {errors} errors">{"".join(bars)}</svg>'
        f"{ticks}</figure>"
    )


def _usage_row(usage: ApiUsage, now: datetime) -> str:
    cap = usage.cap
    if usage.used is not None and cap:
        ratio = usage.used / cap
        share = min(1.0, ratio)
        level = "bad" if ratio >= 1 else "warn" if ratio >= 0.8 else "ok"
        against = "cosell's budget" if usage.budget else "the org's limit"
        meter = (
            f'<svg class="meter {level}" viewBox="0 0 100 6" preserveAspectRatio="none" '
            f'data-share="{share:.3f}" aria-hidden="true"><rect width="100" height="6" '
            f'class="track"/><rect width="{share * 100:.1f}" height="6" class="used"/></svg>'
            f"<div>{usage.used:,} of {cap:,} ({ratio:.0%} of {against}) in 24 h, reported "
            f"{when(usage.observed_at, now)}</div>"
        )
        if usage.budget and usage.limit:
            meter += f'<div class="muted">org limit {usage.limit:,}</div>'
    elif usage.side == "partner_center":
        meter = (
            '<div class="muted">Partner Center publishes no daily budget; it throttles per '
            "tenant (429 with Retry-After, counted here).</div>"
        )
    else:
        meter = '<div class="muted">Not reported yet (the first API call reports it).</div>'
    calls = "—" if usage.calls is None else f"{usage.calls:,}"
    return (
        f'<tr id="usage-{usage.side}"><td>{_e(usage.label)}</td><td>{meter}</td>'
        f'<td class="calls">{calls}</td><td class="throttled">{usage.throttled:,}</td></tr>'
    )


def _token_row(token: TokenHealth) -> str:
    if token.problem:
        state, text = "Error", token.problem
    elif token.warning:
        state, text = "Pending", token.warning
    else:
        state, text = "Synced", "nothing: the sign-in is usable"
    shown = {"Error": "unusable", "Pending": "expires soon", "Synced": "ok"}[state]
    return (
        f'<tr id="token-{token.side}"><td>{_e(token.label)}</td>'
        f'<td><span class="badge {state}">{shown}</span></td>'
        f"<td>{_e(token.summary())}</td><td>{_e(text)}</td></tr>"
    )


def connections_section(usage: list[ApiUsage], tokens: list[TokenHealth], now: datetime) -> str:
    """Both sides' API usage against their budgets, and both connections' token health."""
    parts = []
    if usage:
        rows = "".join(_usage_row(u, now) for u in usage)
        parts.append(
            "<h2>API usage</h2><div class='scroll'><table id='api-usage'><thead><tr>"
            "<th>API</th><th>Usage against the budget</th><th>Calls since start</th>"
            f"<th>Throttled</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    if tokens:
        rows = "".join(_token_row(t) for t in tokens)
        parts.append(
            "<h2>Connections' sign-in</h2><div class='scroll'><table id='tokens'><thead><tr>"
            "<th>Connection</th><th>Token</th><th class='wide'>How it signs in</th>"
            f"<th>What to do</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )
    return "".join(parts)


def overview_page(
    overview: Overview,
    health: Health,
    *,
    now: datetime,
    session: Session,
    flash: str,
    activity: Activity | None = None,
    usage: list[ApiUsage] | None = None,
    tokens: list[TokenHealth] | None = None,
) -> str:
    """Health, deals counted once, each side's circuit, errors, pending work, the pollers."""
    oldest = overview.deals.oldest_unsynced_at if overview.deals else overview.oldest_pending_at
    circuits = "".join(circuit_card(side, overview.circuits.get(side), now) for side in SIDE_NAMES)
    reasons = "".join(f"<li>{_e(r)}</li>" for r in health.reasons)
    banner = (
        f'<div class="banner {health.state}" id="health"><strong>{health.state}</strong>'
        f"{f'<ul>{reasons}</ul>' if reasons else ' — every link is in sync or on its way.'}</div>"
    )
    status_cards = "".join(
        f'<a class="card link" href="{BASE}/deals?{urlencode({"status": status})}" '
        f'id="count-{status}">'
        f'<div class="label">{badge(status)}</div>'
        f'<div class="value">{overview.links_by_status.get(status, 0):,}</div>'
        '<div class="sub">links</div></a>'
        for status in COUNTED
    )
    figures = (
        _card("Errors in the last 24 h", f"{overview.errors_24h:,}", "reconcile failures", "errors")
        + _card(
            "Oldest unsynced change",
            when(oldest, now),
            "pending, held by a circuit or a pause",
            "oldest",
            raw=True,
        )
        + _card(
            "Webhook inbox",
            f"{overview.inbox_pending:,}",
            "waiting, oldest " + when(overview.oldest_event_at, now),
            "inbox",
            raw_sub=True,
        )
        + _card("Last sync", when(overview.last_synced_at, now), "", "last-sync", raw=True)
    )
    cursors = (
        "".join(
            f"<tr><td class='mono'>{_e(c.name)}</td><td>{when(c.updated_at, now)}</td></tr>"
            for c in overview.cursors
        )
        or '<tr><td colspan="2" class="muted">No poller has run yet.</td></tr>'
    )
    errors = overview.links_by_status.get("Error", 0)
    action = ""
    if session.can_act and errors:
        action = (
            f'<form method="post" action="{BASE}/retry-errors" class="actions">'
            f'{csrf_field(session)}<button class="btn" type="submit" id="retry-errors">'
            f"Retry every deal in Error ({errors:,})</button></form>"
        )
    if session.can_act and overview.all_paused is None:
        action += (
            f'<form method="post" action="{BASE}/pause" class="actions">{csrf_field(session)}'
            '<input type="text" name="reason" id="pause-reason" maxlength="200" '
            'placeholder="Why (shown to everyone)" aria-label="Why pause">'
            '<button class="btn secondary" type="submit" id="pause-all">Pause all sync'
            "</button></form>"
        )
    charts = ""
    if activity is not None:
        charts = (
            "<div class='charts'>"
            + chart(activity.hours, ident="chart-24h", label="Last 24 hours", hourly=True)
            + chart(activity.days, ident="chart-7d", label="Last 7 days", hourly=False)
            + "</div>"
        )
    body = (
        f"{flash}<h1>Overview</h1>{banner}<div class='cards'>{status_cards}</div>"
        f"<h2>Sides</h2><div class='cards' id='circuits'>{circuits}</div>"
        f"<h2>Activity</h2><div class='cards'>{figures}</div>{action}{charts}"
        f"{connections_section(usage or [], tokens or [], now)}"
        "<h2>Change sources</h2><div class='scroll'><table><thead><tr><th>Cursor</th>"
        f"<th>Last run</th></tr></thead><tbody>{cursors}</tbody></table></div>"
    )
    return layout("Overview", body, session=session, active="overview")


def circuit_card(side: str, circuit: Circuit | None, now: datetime) -> str:
    """A side's circuit breaker: closed (syncing), or open with its cause, fix and next probe."""
    name = SIDE_NAMES.get(side, side)
    if circuit is None or not circuit.is_open:
        since = f"since {when(circuit.since, now)}" if circuit else "never opened"
        return (
            f'<div class="card circuit closed" id="circuit-{side}"><div class="label">{name}'
            '</div><div class="value small"><span class="badge Synced">syncing</span> circuit '
            f'closed</div><div class="sub">{since}</div></div>'
        )
    return (
        f'<div class="card circuit open" id="circuit-{side}"><div class="label">{name}</div>'
        '<div class="value small"><span class="badge Error">paused</span> circuit open since '
        f"{when(circuit.since, now)}</div>"
        f'<div class="cause"><strong>Cause:</strong> {_e(circuit.cause)}</div>'
        f'<div class="fix"><strong>Fix:</strong> {_e(circuit.fix)}</div>'
        f'<div class="sub probe">Next probe: {when(circuit.next_probe_at, now)}; sync resumes '
        "by itself when it succeeds.</div></div>"
    )


def _card(
    label: str, value: str, sub: str, ident: str, *, raw: bool = False, raw_sub: bool = False
) -> str:
    shown = value if raw else _e(value)
    below = sub if raw_sub else _e(sub)
    return (
        f'<div class="card" id="{ident}"><div class="label">{_e(label)}</div>'
        f'<div class="value{" small" if raw else ""}">{shown}</div>'
        f'<div class="sub">{below}</div></div>'
    )


def _options(choices: list[tuple[str, str]], chosen: str) -> str:
    return "".join(
        f'<option value="{_e(v)}"{" selected" if v == chosen else ""}>{_e(label)}</option>'
        for v, label in choices
    )


def deals_page(
    page: LinkPage,
    *,
    query: str,
    status: str,
    now: datetime,
    session: Session,
    direction: str = "",
    stage: str = "",
    stages: list[str] | None = None,
) -> str:
    """The searchable, filtered (status, direction, stage), paged list of links."""
    labels = {HELD: "Pending (held by an open circuit)"}
    statuses = _options(
        [("", "Every status")] + [(name, labels.get(name, name)) for name in STATES], status
    )
    directions = _options(
        [
            ("", "Both directions"),
            ("Incoming", "Incoming (from Microsoft)"),
            ("Outgoing", "Outgoing (shared by you)"),
            ("unknown", "Direction unknown"),
        ],
        direction,
    )
    known = list(stages or [])
    if stage and stage not in known:
        known.append(stage)
    stage_options = _options([("", "Every stage")] + [(s, s) for s in known], stage)
    form = (
        f'<form class="search" method="get" action="{BASE}/deals" role="search">'
        f'<input type="search" name="q" id="q" value="{_e(query)}" '
        'placeholder="Deal, customer, referral id, opportunity id, status" '
        'aria-label="Search deals">'
        f'<select name="status" id="status" aria-label="Sync status">{statuses}</select>'
        f'<select name="direction" id="direction" aria-label="Direction">{directions}</select>'
        f'<select name="stage" id="stage" aria-label="Stage">{stage_options}</select>'
        '<button class="btn" type="submit">Search</button></form>'
    )
    rows = "".join(_deal_row(row, now) for row in page.rows) or (
        '<tr><td colspan="8" class="muted">No deal matches.</td></tr>'
    )
    first = page.offset + 1 if page.rows else 0
    last = page.offset + len(page.rows)
    pager = f'<div class="pager"><span id="range">{first:,}&ndash;{last:,} of {page.total:,}</span>'
    params = {"q": query, "status": status, "direction": direction, "stage": stage}
    if page.offset > 0:
        previous = urlencode({**params, "offset": max(0, page.offset - page.limit)})
        pager += f'<a href="{BASE}/deals?{previous}" rel="prev">Previous</a>'
    if last < page.total:
        following = urlencode({**params, "offset": last})
        pager += f'<a href="{BASE}/deals?{following}" rel="next">Next</a>'
    pager += "</div>"
    table = (
        "<div class='scroll'><table id='deals'><thead><tr><th>Deal</th>"
        "<th class='wide'>Customer</th><th>Status</th><th class='wide'>Direction</th>"
        "<th class='wide'>Stage</th><th class='wide'>Referral</th>"
        "<th class='wide'>Salesforce</th><th>Changed</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )
    body = f"<h1>Deals</h1>{form}{pager}{table}"
    return layout("Deals", body, session=session, active="deals")


def _deal_row(row: LinkRow, now: datetime) -> str:
    name = row.name or row.referral_id or row.record_id or row.id
    return (
        f'<tr><td><a href="{BASE}/deals/{_e(row.id)}">{_e(name)}</a></td>'
        f"<td class='wide'>{_e(row.customer or '—')}</td><td>{badge(row.shown_state)}"
        f"{held_mark(row)}</td>"
        f"<td class='wide direction'>{_e(row.direction or '—')}</td>"
        f"<td class='wide stage'>{_e(row.stage or '—')}</td>"
        f"<td class='wide mono'>{_e(row.referral_id or '—')}</td>"
        f"<td class='wide mono'>{_e(row.sobject)} {_e(row.record_id or '—')}</td>"
        f"<td>{when(row.updated_at, now)}</td></tr>"
    )


def held_mark(row: LinkRow) -> str:
    """A note beside a Pending deal whose change waits for a side's open circuit."""
    if row.held and row.shown_state == "Pending":
        return ' <span class="badge Held" title="waits for a side\'s circuit to close">held</span>'
    return ""


def _action(link_id: str, verb: str, label: str, session: Session, css: str) -> str:
    return (
        f'<form method="post" action="{BASE}/deals/{_e(link_id)}/{verb}">{csrf_field(session)}'
        f'<button class="{css}" type="submit" id="{verb}">{_e(label)}</button></form>'
    )


def _value(value: object) -> str:
    if value is None:
        return '<span class="muted">(unset)</span>'
    if isinstance(value, str):
        return _e(value)
    return _e(json.dumps(value))


def deal_page(
    deal: Deal,
    *,
    now: datetime,
    session: Session,
    flash: str,
    referral_url: str | None,
    record_url: str | None,
    can_retry: bool,
    can_compare: bool = False,
    can_sync: bool = False,
    comparison: PlanReport | str | None = None,
) -> str:
    """One link: ids and links out, the last error and advice, base, conflicts, audit.

    On request (`comparison`), both sides' values now beside the base (`compare_section`).
    """
    link = deal.link
    title = link.name or link.referral_id or link.record_id or link.id
    pause_note = ""
    if deal.pause is not None:
        why = f": {_e(deal.pause.reason)}" if deal.pause.reason else ""
        pause_note = (
            f" <span class='muted' id='paused-by'>paused by {_e(deal.pause.by)} since "
            f"{deal.pause.since:%Y-%m-%d %H:%M} UTC{why}</span>"
        )
    if link.retry_at is not None:
        retry_at = when(link.retry_at, now)
    elif link.sync_status == "Error":
        retry_at = "none scheduled: retried when either side changes, or by Retry"
    else:
        retry_at = "—"
    outside = []
    if referral_url:
        outside.append(
            f'<a href="{_e(referral_url)}" rel="noopener noreferrer" target="_blank" '
            'id="pc-link">Referral in Partner Center</a>'
        )
    if record_url:
        outside.append(
            f'<a href="{_e(record_url)}" rel="noopener noreferrer" target="_blank" '
            f'id="sf-link">{_e(link.sobject)} in Salesforce</a>'
        )
    facts = (
        "<div class='kv'>"
        f"<span class='muted'>Status</span><span id='status'>{badge(link.shown_state)}"
        f"{held_mark(link)}{pause_note}</span>"
        f"<span class='muted'>Next automatic retry</span><span id='retry-at'>{retry_at}</span>"
        f"<span class='muted'>Retries so far</span><span id='retries'>{link.retries}</span>"
        f"<span class='muted'>Customer</span><span>{_e(link.customer or '—')}</span>"
        f"<span class='muted'>Referral id</span><span class='mono'>{_e(link.referral_id or '—')}</span>"
        f"<span class='muted'>Engagement id</span><span class='mono'>{_e(deal.engagement_id or '—')}</span>"
        f"<span class='muted'>Salesforce</span><span class='mono'>{_e(link.sobject)} "
        f"{_e(link.record_id or '—')}</span>"
        f"<span class='muted'>Last synced</span><span>{when(link.last_synced_at, now)}</span>"
        f"<span class='muted'>Changed</span><span>{when(link.updated_at, now)}</span>"
        f"<span class='muted'>Link id</span><span class='mono'>{_e(link.id)}</span></div>"
    )
    error = ""
    if link.last_error:
        error = (
            f'<h2>Last error</h2><div class="error-box" id="last-error"><p><strong>'
            f"{_e(link.last_error)}</strong></p><p>{_e(advice(link.last_error))}</p></div>"
        )
    actions = ""
    if session.can_act:
        buttons = []
        if can_retry:
            buttons.append(_action(link.id, "retry", "Retry", session, "btn"))
        if can_sync:
            buttons.append(_action(link.id, "sync", "Re-sync now", session, "btn"))
        if deal.pause is None:
            buttons.append(_action(link.id, "pause", "Pause this deal", session, "btn secondary"))
        else:
            buttons.append(_action(link.id, "resume", "Resume this deal", session, "btn"))
        actions = f"<div class='actions'>{''.join(buttons)}</div>"
    else:
        actions = '<p class="muted">Viewers cannot act; an operator can retry this deal.</p>'
    base_rows = (
        "".join(
            f"<tr><td class='mono'>{_e(name)}</td><td>{_value(value)}</td></tr>"
            for name, value in sorted((deal.base or {}).items())
        )
        or '<tr><td colspan="2" class="muted">No base yet: the deal has not synced once.</td></tr>'
    )
    saved = f" <span class='muted'>saved {when(deal.base_saved_at, now)}</span>"
    conflicts = "".join(
        "<tr>"
        f"<td>{when(c.at, now)}</td><td class='mono'>{_e(c.field)}</td>"
        f"<td>{_value(c.partner_center)}</td><td>{_value(c.salesforce)}</td>"
        f"<td>{_value(c.base)}</td><td>{_e(_side(c.winner))}</td>"
        f"<td>{_value(c.salesforce if c.winner == 'partner_center' else c.partner_center)}</td>"
        "</tr>"
        for c in deal.conflicts
    )
    conflict_table = (
        "<h2>Conflicts</h2><div class='scroll'><table id='conflicts'><thead><tr><th>When</th>"
        "<th>Field</th><th>Partner Center</th><th>Salesforce</th><th class='wide'>Base</th>"
        "<th>Winner</th><th>Losing value</th></tr></thead>"
        f"<tbody>{conflicts}</tbody></table></div>"
        if conflicts
        else ""
    )
    audit = (
        "".join(
            f"<tr><td>{when(entry.at, now)}</td><td>{_e(entry.message)}{_who(entry.details)}</td></tr>"
            for entry in deal.audit
        )
        or '<tr><td colspan="2" class="muted">Nothing recorded yet.</td></tr>'
    )
    body = (
        f"{flash}<p><a href='{BASE}/deals'>← Deals</a></p><h1 id='deal-name'>{_e(title)}</h1>"
        f"<div class='actions'>{' · '.join(outside)}</div>{facts}{error}{actions}"
        f"{compare_section(link.id, can_compare, comparison)}"
        f"<h2>Base values{saved if deal.base else ''}</h2><div class='scroll'><table id='base'>"
        f"<thead><tr><th>Field</th><th>Value both sides agreed on</th></tr></thead>"
        f"<tbody>{base_rows}</tbody></table></div>{conflict_table}"
        "<h2>Audit trail</h2><div class='scroll'><table id='audit'><thead><tr><th>When</th>"
        f"<th>What happened</th></tr></thead><tbody>{audit}</tbody></table></div>"
    )
    return layout(str(title), body, session=session, active="deals")


_ACTION_CLASS: Final = (
    ("conflict", "conflict"),
    ("refused", "refused"),
    ("held", "held"),
    ("write to", "write"),
    ("create in", "write"),
    ("differs", "differs"),
)


def _action_class(action: str) -> str:
    return next((css for prefix, css in _ACTION_CLASS if action.startswith(prefix)), "same")


def compare_section(link_id: str, can_compare: bool, comparison: PlanReport | str | None) -> str:
    """Both sides' values now beside the base, and what the next reconcile would do.

    The values come from the explain stage (`cosell plan`), read only when asked for: two API
    reads, nothing written.
    """
    if not can_compare:
        return ""
    heading = "<h2 id='compare'>Both sides now</h2>"
    ask = (
        f'<a class="btn secondary" id="compare-now" href="{BASE}/deals/{_e(link_id)}'
        '?compare=1#compare">'
        + ("Read both sides again" if comparison is not None else "Compare both sides now")
        + "</a>"
    )
    if comparison is None:
        return (
            f"{heading}<p class='muted'>Reads the referral and the record now (two API calls, "
            "nothing written) and shows them beside the base, as <span class='mono'>cosell "
            f"plan</span> does.</p><div class='actions'>{ask}</div>"
        )
    if isinstance(comparison, str):
        return (
            f'{heading}<div class="error-box" id="compare-error"><p>{_e(comparison)}</p></div>'
            f"<div class='actions'>{ask}</div>"
        )
    rows = (
        "".join(
            f"<tr class='{_action_class(row.action)}' data-field='{_e(row.field)}'>"
            f"<td class='mono'>{_e(row.field)}</td><td>{_value(row.partner_center)}</td>"
            f"<td>{_value(row.salesforce)}</td><td>{_value(row.base)}</td>"
            f"<td class='action'>{_e(row.action)}</td></tr>"
            for row in comparison.rows
        )
        or '<tr><td colspan="5" class="muted">No mapped field to compare.</td></tr>'
    )
    outcome = comparison.outcome
    writes = len(comparison.partner_center_operations)
    updates = sum(len(fields) for fields in comparison.salesforce_updates.values())
    summary = (
        f"<p id='compare-outcome'>The next reconcile: <strong>{_e(outcome.result)}</strong>"
        f"{' — ' + _e(outcome.message) if outcome.message else ''}. "
        f"{writes} Partner Center change(s), {updates} Salesforce field(s) to write; "
        "nothing was written.</p>"
    )
    base_note = (
        ""
        if comparison.has_base
        else ("<p class='muted'>No base yet: on the first reconcile each field's owner wins.</p>")
    )
    return (
        f"{heading}{summary}{base_note}<div class='scroll'><table id='comparison'><thead><tr>"
        "<th>Field</th><th>Partner Center</th><th>Salesforce</th><th>Base</th>"
        f"<th>Next reconcile</th></tr></thead><tbody>{rows}</tbody></table></div>"
        f"<div class='actions'>{ask}</div>"
    )


def _side(side: str) -> str:
    return {"partner_center": "Partner Center", "salesforce": "Salesforce"}.get(side, side)


def _who(details: object) -> str:
    if isinstance(details, dict) and isinstance(details.get("by"), str):
        return f" <span class='muted'>by {_e(details['by'])}</span>"
    return ""


def held_page(link_id: str, why: str, *, session: Session | None) -> str:
    """Re-sync now met a pause or an open circuit: nothing was written; why, and what to do."""
    body = (
        "<h1>Held, not synced</h1>"
        f"<p id='held'>Nothing was written for this deal: {_e(why)}.</p>"
        "<p>Its changes wait as Pending and sync by themselves once sync resumes; nothing "
        "else needs doing for this deal.</p>"
        f"<p><a href='{BASE}/deals/{_e(link_id)}'>Back to the deal</a></p>"
    )
    return layout("Held, not synced", body, session=session)


def message_page(title: str, text: str, *, session: Session | None) -> str:
    """A page that only says something (not found, refused, unavailable)."""
    return layout(title, f"<h1>{_e(title)}</h1><p>{_e(text)}</p>", session=session)
