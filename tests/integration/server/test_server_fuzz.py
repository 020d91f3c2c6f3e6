"""Fuzzing the service's app in process: no request gets a 5xx, no forgery is accepted.

A seeded generator (not Hypothesis: 20,000 requests must fit in seconds, and a shrinker is of
little use when the invariant is one status check) builds requests to every route of
`cosell serve` (the webhook endpoint, `/healthz`, `/readyz`, `/metrics` and paths that are
none of them) with every method, hostile headers (certificate URLs, signature headers,
content types and lengths) and bodies (mutations of a real callback, deep nesting, lone
surrogates, bad ResourceUris, huge numbers, random bytes), some of them signed with the
trusted key so that the parser behind the signature check is reached too. Requests go
straight to the ASGI app (no HTTP client in between), so header values and bodies can be any
bytes, and the body can arrive in several chunks.

The seed is printed; rerun a failure with `COSELL_FUZZ_SEED=<seed>`. `COSELL_FUZZ_REQUESTS`
sets the number of requests (20,000 by default).
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pytest
from pc_fakes import sign
from server_kit import CERT_URL, REFERRAL_ID, WEBHOOK, Service, Signer, event_body

REQUESTS = int(os.environ.get("COSELL_FUZZ_REQUESTS", "20000"))
ROUTES = [WEBHOOK, "/healthz", "/readyz", "/metrics"]
METHODS = ["POST", "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "POST\x00", "G T"]
CERT_BASE = CERT_URL.rsplit("/", 1)[0] + "/"
CERTIFICATE_URLS = [
    CERT_URL,
    CERT_BASE,
    CERT_BASE + "other.cer",
    "http://[::1/cert/x",
    "https://[::1]/cert/x",
    "https://[zz::1]/cert/x",
    "https://3psostorageacct.blob.core.windows.net:99999/cert/x",
    "https://3psostorageacct.blob.core.windows.net:abc/cert/x",
    "https://user@3psostorageacct.blob.core.windows.net/cert/x",
    CERT_BASE + "../x",
    CERT_BASE + "%2e%2e/x",
    CERT_BASE + "a\\b",
    "file:///etc/passwd",
    "//3psostorageacct.blob.core.windows.net/cert/x",
    "https://",
    "",
    "\x00",
    "https://127.0.0.1/cert/x",
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/cloudevents+json",
    "text/plain",
    "",
    "application/json;" + "x" * 500,
    "\xff\xfe",
]
PIECES = [
    b"[",
    b"{",
    b"]",
    b"}",
    b'"',
    b"\\",
    b"\\ud800",
    b"\\udfff\\ud800",
    b"\x00",
    b"\xff",
    b"1e999999",
    b"-0",
    b"NaN",
    b"Infinity",
    b"9" * 5000,
    b'"ResourceUri":"https://[::1/referrals/x"',
    b'"ResourceName":"referral"',
    b'"EventName":"referral-updated"',
    b"null",
    b",",
    b":",
]


@dataclass
class Case:
    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    chunks: list[bytes]
    genuine: bool  # signed with the trusted key over exactly this body, at the trusted URL


def _event(rng: random.Random) -> bytes:
    """A callback: a real one, one with hostile field values, or a random JSON structure."""
    kind = rng.randrange(6)
    if kind == 0:
        return event_body()
    if kind == 1:
        referral_id = rng.choice(
            [REFERRAL_ID, ".", "..", "", "%2F", "\ud800", "a" * 300, "r\x00", "é", "a/b", "-"]
        )
        return event_body(
            event=rng.choice(["referral-created", "referral-updated", "test-created", "x"]),
            referral_id=referral_id,
        )
    if kind == 2:
        fields: dict[str, Any] = {
            "EventName": rng.choice(["referral-updated", "\udfff", "", "a\nb", 7, None]),
            "ResourceUri": rng.choice(
                [
                    "https://[::1/referrals/r1",
                    "https://x/referrals/" + "\ud800",
                    "http://[v1.x]/referrals/r",
                    "::::",
                    "",
                    None,
                    ["https://x/referrals/r"],
                ]
            ),
            "ResourceName": rng.choice(["referral", "Referral", "test", None, 1]),
            "ResourceChangeUtcDate": rng.choice(["2026-13-45", "yesterday", "", 1e308, None]),
        }
        return json.dumps(fields).encode()
    if kind == 3:
        depth = rng.choice([2, 15, 17, 100, 1000, 5000])
        return b'{"EventName":"referral-updated","x":' + b"[" * depth + b"]" * depth + b"}"
    if kind == 4:
        return b"".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 40)))
    body = bytearray(event_body())
    for _ in range(rng.randrange(1, 8)):
        position = rng.randrange(len(body))
        match rng.randrange(3):
            case 0:
                body[position] = rng.randrange(256)
            case 1:
                del body[position]
            case _:
                body[position:position] = rng.choice(PIECES)
    return bytes(body)


def _case(rng: random.Random, signer: Signer) -> Case:
    roll = rng.random()
    if roll < 0.6:
        path = WEBHOOK
    elif roll < 0.95:
        path = rng.choice(ROUTES)
    else:
        path = rng.choice(["/", "/x", "/%2e%2e/", "//", WEBHOOK + "/", "/readyz/../metrics"])
    usual = "POST" if path == WEBHOOK else "GET"
    method = usual if rng.random() < 0.85 else rng.choice(METHODS)
    body = _event(rng) if rng.random() < 0.9 else secrets.token_bytes(rng.randrange(0, 64))
    genuine = False
    content_type = "application/json" if rng.random() < 0.8 else rng.choice(CONTENT_TYPES)
    headers: dict[str, str] = {"Content-Type": content_type}
    roll = rng.random()
    if roll < 0.35:  # signed with the trusted key, over this body or (a forgery) over another
        over = body if rng.random() < 0.8 else event_body()
        headers.update(signer.headers(over))
        url = CERT_URL if rng.random() < 0.8 else rng.choice(CERTIFICATE_URLS)
        headers["X-MS-Certificate-Url"] = url
        genuine = over == body and url == CERT_URL
    elif roll < 0.7:  # signed by a key that is not trusted, or with a made-up signature
        signature = (
            sign(signer.kit.wrong_org_key, body) if rng.random() < 0.1 else secrets.token_bytes(256)
        )
        headers["Authorization"] = rng.choice(["Signature ", "signature  ", "Bearer "]) + (
            base64.b64encode(signature).decode()
        )
        headers["X-MS-Certificate-Url"] = rng.choice(CERTIFICATE_URLS) + rng.choice(
            ["", "x", "\u00e9", "%", "?", "#"]
        )
        headers["X-MS-Signature-Algorithm"] = rng.choice(["rsa-sha256", "RSA-SHA256", "sha1", ""])
    if rng.random() < 0.1:
        headers["Content-Length"] = rng.choice(["-1", "abc", "99999999999", "0", str(len(body))])
    raw_headers = [
        (name.lower().encode("latin-1"), value.encode("utf-8", "surrogatepass"))
        for name, value in headers.items()
    ]
    if rng.random() < 0.05:
        raw_headers.append((b"authorization", b"\xff\x00 Signature"))
    cut = sorted(rng.randrange(len(body) + 1) for _ in range(rng.randrange(3)))
    chunks = [body[a:b] for a, b in zip([0, *cut], [*cut, len(body)], strict=True)]
    return Case(method, path, raw_headers, chunks, genuine)


async def _call(app: Any, case: Case) -> tuple[int, bytes]:
    """One request straight to the ASGI app; returns the status and the response body."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(case.chunks) - 1}
        for i, chunk in enumerate(case.chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": case.method,
        "scheme": "http",
        "path": case.path,
        "raw_path": case.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": case.headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    try:
        await app(scope, receive, send)
    except Exception as exc:  # noqa: BLE001 - the app's 500 re-raises in process: report it
        return 500, f"{type(exc).__name__}: {exc}".encode()
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def test_no_request_gets_a_5xx_and_no_forgery_is_accepted(
    service: Service, signer: Signer, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("COSELL_FUZZ_SEED") or secrets.randbits(32))
    with capsys.disabled():
        print(f"\nfuzz: {REQUESTS} requests, COSELL_FUZZ_SEED={seed}")
    rng = random.Random(seed)
    started = time.perf_counter()
    statuses: dict[int, int] = {}
    accepted = 0
    for number in range(REQUESTS):
        case = _case(rng, signer)
        status, body = await _call(service.app, case)
        statuses[status] = statuses.get(status, 0) + 1
        where = f"request {number} of seed {seed}: {case.method} {case.path}"
        assert status < 500, f"{where} got {status}: {body[:300]!r}"
        if status == 200 and case.path == WEBHOOK and case.method == "POST":
            answer = json.loads(body)
            if answer.get("status") == "accepted":
                accepted += 1
                assert case.genuine, f"{where}: a forged callback was accepted"
    with capsys.disabled():
        print(
            f"fuzz: seed {seed}, {REQUESTS} requests in {time.perf_counter() - started:.1f} s, "
            f"{accepted} accepted, statuses {dict(sorted(statuses.items()))}"
        )
    assert accepted > 0  # the generator does reach the inbox, not only the refusals
    assert service.inbox_rows() <= accepted
