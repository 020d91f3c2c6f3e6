"""Errors of the Salesforce sandbox, rendered in Salesforce's shape.

The REST API answers errors with a JSON array `[{"message", "errorCode", "fields"?}]`
(spec §2.7); a 401 also carries `WWW-Authenticate: Token`. Routers raise
`SalesforceSandboxError`; `install_error_handlers` renders it, FastAPI's validation errors and
unknown routes in the same shape. (sObject Collections per-item errors use `statusCode`
instead of `errorCode`; those are built by the collections code, not raised.)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

JSON_UTF8 = "application/json;charset=UTF-8"


class SalesforceSandboxError(Exception):
    """An error response of the emulated Salesforce REST API."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        fields: list[str] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.extra = extra or {}  # more keys of the error object, e.g. `duplicateResult`
        self.status = status
        self.error_code = error_code
        self.message = message
        self.fields = fields
        self.headers = headers or {}

    def item(self) -> dict[str, Any]:
        """One error object of the array body."""
        item: dict[str, Any] = {**self.extra, "message": self.message, "errorCode": self.error_code}
        if self.fields is not None:
            item["fields"] = self.fields
        return item

    def response(self) -> JSONResponse:
        """The error as a response with the array body."""
        headers = dict(self.headers)
        if self.status == 401:
            headers.setdefault("WWW-Authenticate", "Token")
        return JSONResponse(
            [self.item()], status_code=self.status, headers=headers, media_type=JSON_UTF8
        )


def session_invalid(message: str = "Session expired or invalid") -> SalesforceSandboxError:
    """The 401 a data call gets with an expired, revoked or unknown token."""
    return SalesforceSandboxError(401, "INVALID_SESSION_ID", message)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of `app` in Salesforce's error shape."""

    async def on_sandbox_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SalesforceSandboxError)
        return exc.response()

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        return SalesforceSandboxError(
            400, "JSON_PARSER_ERROR", f"The request is invalid: {first.get('msg', 'bad input')}"
        ).response()

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return SalesforceSandboxError(
                404, "NOT_FOUND", "The requested resource does not exist"
            ).response()
        if exc.status_code == 405:
            return SalesforceSandboxError(
                405, "METHOD_NOT_ALLOWED", f"HTTP Method not allowed: {exc.detail}"
            ).response()
        return SalesforceSandboxError(
            exc.status_code, "UNKNOWN_EXCEPTION", str(exc.detail)
        ).response()

    app.add_exception_handler(SalesforceSandboxError, on_sandbox_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
