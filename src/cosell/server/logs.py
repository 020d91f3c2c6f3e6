"""Structured logs for the service: one JSON object per line, secrets masked.

`configure_logging(format)` sets up structlog *and* the standard `logging` tree (the engine,
DBOS and uvicorn log through it) to render through the same processor chain, so every line
the service writes has the same shape: `timestamp` (UTC, ISO 8601), `level`, `logger`,
`event`, and the event's fields.

Invariant: `redact_secrets` runs before rendering on every event. It replaces with `***` the
value of any field whose name mentions a secret (`secret`, `token`, `password`, `passwd`,
`authorization`, `assertion`, `api_key`, `cookie`, `signature`, `private_key`), at any depth
of nested mappings and sequences, and any `pydantic.SecretStr` value wherever it appears; in
any text (the message included) it masks `Bearer <token>`, `Signature <base64>` and the
password of a `scheme://user:password@host` URL. The webhook endpoint never logs a request
body, so a callback's content cannot leak either.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Final, Literal

import structlog
from pydantic import SecretStr

MASK: Final = "***"
_SECRET_NAME = re.compile(
    r"secret|token|passw|authorization|assertion|api[_-]?key|cookie|signature|private[_-]?key",
    re.IGNORECASE,
)
# Credentials that travel inside text: `Bearer <token>`, `Signature <b64>`, `scheme://user:pw@`.
_SECRET_IN_TEXT = re.compile(r"(?i)\b(bearer|signature)\s+[A-Za-z0-9._~+/=-]{8,}")
_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_DOTTED_I: Final = str.maketrans({"\u0131": "i", "\u0130": "i"})
_MAX_DEPTH = 8  # log fields nest a level or two; deeper structures are masked whole


def _masked_text(text: str) -> str:
    # Cheap tests first: most texts (an event name, a path, a key) hold neither pattern. The
    # folding finds every spelling the case-blind pattern does (dotless and dotted I match `i` there).
    folded = text.translate(_DOTTED_I).casefold()
    if "bearer" in folded or "signature" in folded:
        text = _SECRET_IN_TEXT.sub(lambda m: f"{m.group(1)} {MASK}", text)
    if "@" in text and "://" in text:
        text = _PASSWORD_IN_URL.sub(rf"\1{MASK}@", text)
    return text


@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    """Whether a field named `name` holds a secret (field names repeat: the answer is kept)."""
    return _SECRET_NAME.search(name) is not None


def _masked(value: Any, depth: int = 0) -> Any:
    if value is None or type(value) in (int, float, bool):
        return value
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, str):
        return _masked_text(value)
    if depth >= _MAX_DEPTH:
        return MASK if isinstance(value, Mapping | list | tuple) else value
    if isinstance(value, Mapping):
        return {
            key: MASK if _secret_name(str(key)) else _masked(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_masked(item, depth + 1) for item in value)
    return value


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask secret-named fields and `SecretStr` values (a structlog processor; see the module)."""
    for key in list(event_dict):
        if key == "event":
            if isinstance(event_dict[key], str):
                event_dict[key] = _masked_text(event_dict[key])
            continue
        event_dict[key] = MASK if _secret_name(key) else _masked(event_dict[key])
    return event_dict


def _drop_color_message(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # uvicorn repeats its message with terminal colour codes for its own console formatter.
    event_dict.pop("color_message", None)
    return event_dict


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]


def configure_logging(
    log_format: Literal["json", "console"] = "json", *, level: int = logging.INFO
) -> None:
    """Render structlog and standard-library records alike, to stderr, secrets masked.

    Args:
        log_format: `json` (one object per line, for log shippers) or `console` (for people).
        level: the lowest level written.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared = _processors()
    structlog.configure(
        processors=[
            *shared[:1],
            structlog.stdlib.filter_by_level,
            *shared[1:],
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_color_message, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # One line per request comes from our own middleware; uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every outgoing request at INFO; /metrics counts them, errors surface as ours.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
