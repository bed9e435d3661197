"""Turn any exception a handler meets into a message a person can act on; never a stack trace."""

from __future__ import annotations

import functools
import logging

import gradio as gr
from pydantic import ValidationError

from backend.config import template_classes
from backend.errors import UserError, bounded
from backend.services import InUse, NotFound

log = logging.getLogger(__name__)


def user_message(exc: BaseException) -> str:
    """The readable message for an exception (validation errors name their field), at most MAX_MESSAGE_CHARS."""
    return bounded(_message(exc))


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors():
            # loc of a template field is ('template', '<kind>', 'field'): the kind tag adds nothing.
            loc = [str(p) for p in error["loc"] if not str(p).startswith(("function-", "tagged-union"))]
            if len(loc) >= 2 and loc[0] == "template" and loc[1] in template_classes():
                loc = ["template", *loc[2:]]
            field = ".".join(loc)
            message = error["msg"].removeprefix("Value error, ")
            parts.append(f"{field}: {message}" if field else message)
        return "Invalid settings — " + "; ".join(parts)
    if isinstance(exc, (UserError, NotFound, InUse)):
        return str(exc)
    return f"Something went wrong ({type(exc).__name__}). The details are in the server log."


def shows_errors(handler=None, *, fallback=None, toast: bool = True):
    """Decorator: expected errors become readable messages; bugs are logged, then shown politely.

    Without `fallback` the message is raised as gr.Error (a red toast; the API caller gets it too).
    With `fallback(message) -> outputs` it is shown as a gr.Warning toast and the handler returns
    `fallback`'s outputs instead, so the message can also stay on the page (say, in a report area)
    and the other outputs are left alone rather than marked as failed. `toast=False` leaves the
    toast out where the fallback's message already sits next to what the person just did.
    """
    if handler is None:
        return functools.partial(shows_errors, fallback=fallback, toast=toast)

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error as exc:
            message = bounded(str(exc.message))
        except (UserError, NotFound, InUse, ValidationError) as exc:  # ours, meant for the person
            message = user_message(exc)
        except Exception as exc:
            log.exception("handler %s failed", handler.__name__)
            message = user_message(exc)
        if fallback is None:
            raise gr.Error(message, print_exception=False) from None
        if toast:
            gr.Warning(message)
        return fallback(message)

    return wrapper


def unchanged(count: int):
    """A fallback that leaves all `count` outputs as they are (the toast carries the message)."""
    return lambda message: tuple(gr.skip() for _ in range(count)) if count > 1 else gr.skip()
