"""Exceptions that carry a message meant for the person using the app."""


class UserError(Exception):
    """Bad input or a bad request: the message says what is wrong and how to fix it."""


class UnknownSetting(UserError, KeyError):
    """A `key=value` override names no field of the config (a KeyError too, for callers that look it up)."""

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return str(self.args[0]) if self.args else "unknown setting"


class Cancelled(Exception):
    """Raised by the trainer when a stop was requested; the run ends `cancelled`."""
