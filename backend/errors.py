"""Exceptions that carry a message meant for the person using the app, and how much of an input a message repeats."""

MAX_ECHO_CHARS = 120  # of one value (a label, a column name) quoted back in a message
MAX_MESSAGE_CHARS = 2_000  # of a whole message: a 1 MB label must not come back as a 1 MB error


def shorten(value, limit: int = MAX_ECHO_CHARS) -> str:
    """str(value), cut to `limit` characters with a note of how many were left out."""
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def bounded(message: str) -> str:
    """A whole error message cut to MAX_MESSAGE_CHARS (the funnel every message passes through)."""
    return shorten(message, MAX_MESSAGE_CHARS)


def listing(values, most: int = 20) -> str:
    """'a, b, c and 5 more': the first `most` values, each shortened."""
    values = [shorten(value) for value in values]
    more = f" and {len(values) - most:,} more" if len(values) > most else ""
    return ", ".join(values[:most]) + more


class UserError(Exception):
    """Bad input or a bad request: the message says what is wrong and how to fix it."""


class UnknownSetting(UserError, KeyError):
    """A `key=value` override names no field of the config (a KeyError too, for callers that look it up)."""

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return str(self.args[0]) if self.args else "unknown setting"


class Cancelled(Exception):
    """Raised by the trainer when a stop was requested; the run ends `cancelled`."""
