"""One place that turns errors into OpenAI-shaped bodies: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import errno
import logging
import re
import sqlite3
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from saywho.errors import BackendUnavailable, SaywhoError, TooManyRequestsError

logger = logging.getLogger(__name__)


def error_type(status_code: int) -> str:
    if status_code == 401:
        return "authentication_error"
    if status_code == 429:
        return "rate_limit_error"
    if status_code >= 500:
        return "server_error"
    return "invalid_request_error"


def error_body(message: str, status_code: int, *, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status_code), "param": param, "code": code}}


def error_response(
    message: str, status_code: int, *, code: str | None = None, param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, status_code, code=code, param=param), status_code=status_code,
                        headers=headers)


def saywho_error_response(exc: SaywhoError) -> JSONResponse:
    headers = None
    if isinstance(exc, (BackendUnavailable, TooManyRequestsError)):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    return error_response(exc.message, exc.status_code, code=exc.code, param=exc.param, headers=headers)


async def _saywho_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SaywhoError)
    if exc.status_code >= 500:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.message)
    return saywho_error_response(exc)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    if param:
        message = f"{param}: {message}"
    return error_response(message, 400, code="invalid_value", param=param)


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # 400 here is Starlette's multipart parser (a part over 1 MB, no boundary...).
    code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:  # every method of the path, not just the first route's
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return error_response(str(exc.detail), exc.status_code, code=code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the API document lists for this path (routers may split one path's methods)."""
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {m.upper() for m in item}
    return sorted(methods)


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    if _disk_full(exc):  # the request fails; the server and the jobs API go on
        logger.error("%s %s: the disk is full (%s)", request.method, request.url.path, exc)
        return error_response("the server's disk is full; try again later", 507, code="insufficient_storage")
    logger.exception("%s %s failed", request.method, request.url.path)
    return error_response(f"internal error: {type(exc).__name__}", 500, code="internal_error")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(SaywhoError, _saywho_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
