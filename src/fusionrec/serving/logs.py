"""What the service writes to its logs and tells clients about failures.

Ids come from clients, so a log line shows them with control characters escaped and at most
`MAX_LOGGED` characters: a client cannot forge log lines, recolour a terminal or flood the log. A
failure a client can cause is one line, never a traceback. Messages sent to clients carry no server
file paths (an absolute path becomes its last part).
"""

from __future__ import annotations

import logging
import re
from typing import Any

MAX_LOGGED = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# An absolute POSIX path of two parts or more; not a URL's "//host/..." nor "application/json".
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s/'\"`:;,()\[\]{}]+/)+([^\s/'\"`:;,()\[\]{}]*)")
# The servers' loggers whose records carry client input (request lines, bad requests).
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


def printable(value: object, limit: int = MAX_LOGGED) -> str:
    """``value`` as text fit for one log line: cut at ``limit`` characters, control characters as ``\\xNN``."""
    text = str(value)
    if len(text) > limit:
        text = f"{text[:limit]}…(+{len(text) - limit} characters)"
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def without_paths(detail: Any) -> Any:
    """``detail`` (text, or lists and dicts of it) with every absolute file path cut to its last part."""
    if isinstance(detail, str):
        return _ABSOLUTE_PATH.sub(lambda match: match.group(1) or "…", detail)
    if isinstance(detail, dict):
        return {key: without_paths(value) for key, value in detail.items()}
    if isinstance(detail, list | tuple):
        return [without_paths(value) for value in detail]
    return detail


class OneLineFilter(logging.Filter):
    """Makes a record safe: its arguments `printable`, and an attached traceback folded into one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(printable(arg) if isinstance(arg, str) else arg for arg in record.args)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {printable(error)})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


def guard_server_logs() -> None:
    """Put `OneLineFilter` on the HTTP server's loggers (once; they are configured before the app starts)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineFilter) for f in logger.filters):
            logger.addFilter(OneLineFilter())
