"""A scripted Salesforce over httpx.MockTransport for the client's unit tests (helpers)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cosell.clock import ManualClock
from cosell.salesforce.auth import ClientCredentialsFlow
from cosell.salesforce.client import RetryPolicy, SalesforceClient

INSTANCE = "https://acme.my.salesforce.com"
TOKEN_URL = "https://acme.my.salesforce.com/services/oauth2/token"
API = "/services/data/v62.0/"

Handler = Callable[[httpx.Request], httpx.Response]


def sf_error(status: int, code: str, message: str = "boom", **headers: str) -> httpx.Response:
    return httpx.Response(status, json=[{"message": message, "errorCode": code}], headers=headers)


@dataclass
class FakeSalesforce:
    """Answers the token endpoint and whatever routes a test registers, recording requests."""

    routes: dict[tuple[str, str], list[Handler | httpx.Response]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    tokens_issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    limit_info: str | None = "api-usage=10/15000"

    def on(self, method: str, path: str, *answers: Handler | httpx.Response) -> None:
        """Queue answers for `method path` (path relative to /services/data/v62.0/)."""
        full = path if path.startswith("/") else API + path
        self.routes.setdefault((method, full), []).extend(answers)

    def data_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if not r.url.path.endswith("/oauth2/token")]

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/services/oauth2/token":
            self.tokens_issued += 1
            token = f"00Dxx!tok{self.tokens_issued}"
            self.valid_tokens.add(token)
            return httpx.Response(
                200,
                json={
                    "access_token": token,
                    "instance_url": INSTANCE,
                    "id": "https://login.salesforce.com/id/00Dxx0000001gEREAY/005xx000001SvQeAAK",
                    "token_type": "Bearer",
                    "issued_at": "1767603600000",
                },
            )
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.valid_tokens:
            return httpx.Response(
                401,
                json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                headers={"WWW-Authenticate": "Token"},
            )
        path = request.url.raw_path.split(b"?")[0].decode()
        queue = self.routes.get((request.method, path))
        if not queue:
            return httpx.Response(404, json=[{"message": "no route", "errorCode": "NOT_FOUND"}])
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer):
            response = answer(request)
        else:  # a fresh copy: a queued answer may be served many times
            response = httpx.Response(
                answer.status_code, headers=answer.headers, content=answer.content
            )
        if self.limit_info and "sforce-limit-info" not in response.headers:
            response.headers["Sforce-Limit-Info"] = self.limit_info
        return response


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def make_client(http: httpx.AsyncClient, clock: ManualClock, **kw: Any) -> SalesforceClient:
    flow = ClientCredentialsFlow("ck", "cs-secret", TOKEN_URL, clock=clock)
    kw.setdefault("retry", RetryPolicy(random=random.Random(7)))
    return SalesforceClient(http, flow, clock=clock, **kw)
