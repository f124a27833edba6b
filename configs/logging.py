"""structlog set-up: JSON in production, readable on a terminal. Entrypoints call it once.

Logs never carry secrets. `redact` runs last before the renderer, over every log line (ours and
the stdlib's), after exceptions are rendered: values under secret-sounding keys are replaced
whatever they are, and anything that looks like a secret is replaced wherever it is (a JWT, a
`token=` in a URL, a bearer credential, a cookie header, a card number), so a message, an
exception's text or a traceback cannot leak one either. Tracebacks leave out local variables:
a frame's locals are where request headers and tokens live.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from configs.settings import default_host_name

REDACTED = "[redacted]"
# Secret names (matched in lower case, "-" as "_"): as a key anywhere in a line, its value goes
# whatever it looks like; in text ("name=value", "'name': 'value'"), the value after it goes.
REDACTED_NAMES = (
    r"password|passwd|secret|token|tokens|authorization|cookie|cookies|set_cookie|card_number|"
    r"cvc|cvv|api_key|credentials|link|aioshop_access|aioshop_refresh|aioshop_csrf|aioshop_cart|"
    r"aioshop_orders"
)
SECRET_KEY = re.compile(rf"(^|_)({REDACTED_NAMES})($|_)")
SECRET_VALUES = (
    # A JWT: three base64url parts, the first two JSON ("eyJ" is '{"').
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+"), REDACTED),
    # A credential after its scheme, and the value of a cookie header.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (re.compile(r"(?i)\b((?:set-)?cookie:\s*)[^\r\n]+"), r"\1" + REDACTED),
    # A secret's value in text: ?token=... (reset links), refresh_token=..., 'aioshop-csrf': '...'
    (
        re.compile(
            r"""(?i)((?:^|[^a-z0-9])[a-z0-9_-]*(?:"""
            + REDACTED_NAMES.replace("_", "[_-]")
            + r""")[a-z0-9_-]*['"]?\s*[:=]\s*['"]?)(?!\[redacted\])[^'"\s,;&<>(){}\[\]]+"""
        ),
        r"\1" + REDACTED,
    ),
)
# A card number: 13 to 19 digits, maybe in groups split by spaces or dashes, that pass the Luhn
# check (which keeps long ids and millisecond timestamps readable, most of them).
CARD_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z])")


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group())
    return REDACTED if _luhn(digits) else match.group()


def redact_text(text: str) -> str:
    """`text` with every secret-looking part replaced."""
    for pattern, replacement in SECRET_VALUES:
        text = pattern.sub(replacement, text)
    return CARD_NUMBER.sub(_card, text)


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and SECRET_KEY.search(key.lower().replace("-", "_")) is not None


def _redacted(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if depth > 20:  # a structure this deep is no log field; say so rather than recurse on
        return REDACTED
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _is_secret_key(key) else _redacted(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted(item, depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(repr(value))  # an object's repr may show its fields


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace secrets in every key and value of the line."""
    return {
        key: REDACTED if _is_secret_key(key) else _redacted(value)
        for key, value in event_dict.items()
    }


def add_host_name(host_name: str) -> structlog.types.Processor:
    """structlog processor: every line carries `host_name`, the machine that wrote it."""

    def add(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("host_name", host_name)
        return event_dict

    return add


def configure_logging(
    log_format: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    host_name: str | None = None,
) -> None:
    """Route structlog and the stdlib through one processor chain, writing to `stream`
    (standard error by default). JSON lines carry `host_name` (default: HOST_NAME, else the OS
    host name), so the logs of several machines can be merged and still told apart."""
    out = stream if stream is not None else sys.stderr
    use_console = log_format == "console" or (log_format == "auto" and out.isatty())
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    renderer: structlog.types.Processor
    exceptions: structlog.types.Processor
    if not use_console:  # a terminal is one machine's: the name would be noise there
        shared.append(add_host_name(default_host_name() if host_name is None else host_name))
    if use_console:
        renderer = structlog.dev.ConsoleRenderer()
        exceptions = structlog.processors.format_exc_info  # plain text, which redact can read
    else:
        renderer = structlog.processors.JSONRenderer()
        exceptions = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
    structlog.configure(
        processors=[
            # First: below the level, an event costs one check, not a timestamp and a merge.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    final: list[structlog.types.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        exceptions,
        redact,
        renderer,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # our middleware logs requests
    logging.getLogger("pika").setLevel(logging.WARNING)
    # One line per Elasticsearch request (a reindex sends hundreds); failures still log.
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
