"""Errors of the Partner Center sandbox, rendered in the documented shape.

Every error the emulated Partner Center APIs return is
`{"error": {"code", "message", "target", "innerError"}}` (spec §2.6), with the HTTP status and
headers (for example `Retry-After` on 429/503) carried by `PartnerCenterSandboxError`.
Any router raises it; `install_error_handlers` renders it, and also renders FastAPI's own
validation errors and unknown routes in the same shape, so a client never sees a non-Partner
Center body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class PartnerCenterSandboxError(Exception):
    """An error response of the emulated Partner Center."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        inner_error: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.inner_error = inner_error
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The documented error body."""
        return {
            "error": {
                "code": self.code,
                "message": self.message[:1024],
                "target": self.target,
                "innerError": self.inner_error,
            }
        }

    def response(self) -> JSONResponse:
        """The error as a response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


_CODE_BY_STATUS = {
    400: "invalidRequest",
    401: "unauthenticated",
    403: "accessDenied",
    404: "itemNotFound",
    405: "invalidRequest",
    412: "preconditionFailed",
    413: "invalidRequest",
    415: "invalidRequest",
    429: "tooManyRequests",
    503: "serviceNotAvailable",
}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of `app` in Partner Center's documented error shape."""

    async def on_sandbox_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PartnerCenterSandboxError)
        return exc.response()

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        target = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return PartnerCenterSandboxError(
            400,
            "invalidRequest",
            f"The request is invalid: {first.get('msg', 'bad input')}",
            target=target,
        ).response()

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODE_BY_STATUS.get(exc.status_code, "generalException")
        return PartnerCenterSandboxError(exc.status_code, code, str(exc.detail)).response()

    app.add_exception_handler(PartnerCenterSandboxError, on_sandbox_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
