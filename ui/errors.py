"""Turn any exception a handler meets into a message a person can act on; never a stack trace."""

from __future__ import annotations

import functools
import logging

import gradio as gr
from pydantic import ValidationError

from backend.errors import UserError
from storage.repository import InUse, NotFound

log = logging.getLogger(__name__)


def user_message(exc: BaseException) -> str:
    """The readable message for an exception (validation errors name their field)."""
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-", "tagged-union")))
            message = error["msg"].removeprefix("Value error, ")
            parts.append(f"{field}: {message}" if field else message)
        return "Invalid settings — " + "; ".join(parts)
    if isinstance(exc, (UserError, NotFound, InUse)):
        return str(exc)
    if isinstance(exc, KeyError):
        return str(exc.args[0]) if exc.args else "Unknown setting."
    return f"Something went wrong ({type(exc).__name__}). The details are in the server log."


def shows_errors(handler):
    """Decorator: expected errors become gr.Error with their message; bugs are logged, then shown politely."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except (UserError, NotFound, InUse, ValidationError, KeyError) as exc:
            raise gr.Error(user_message(exc), print_exception=False) from None
        except Exception as exc:
            log.exception("handler %s failed", handler.__name__)
            raise gr.Error(user_message(exc), print_exception=False) from None

    return wrapper
