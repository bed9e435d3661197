"""A log formatter that escapes control characters, so a user's string cannot forge a log line.

A dataset called "x\\n2026-12-01 INFO modelsmith: admin logged in" would otherwise print a second,
fake line. Every message is escaped where it is formatted, so no call site can forget it;
tracebacks (added after the message) keep their own line breaks.
"""

from __future__ import annotations

import logging
import re

# C0 controls (newline and carriage return included), DEL, C1 controls, Unicode line/paragraph separators
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """'a\\nb' -> 'a\\\\nb': control characters spelled as Python escapes."""
    return CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class SafeFormatter(logging.Formatter):
    """logging.Formatter that escapes control characters in the message (not in the traceback)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with timestamps, control characters escaped."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
