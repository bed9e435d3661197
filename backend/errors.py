"""Exceptions that carry a message meant for the person using the app."""


class UserError(Exception):
    """Bad input or a bad request: the message says what is wrong and how to fix it."""


class Cancelled(Exception):
    """Raised by the trainer when a stop was requested; the run ends `cancelled`."""
