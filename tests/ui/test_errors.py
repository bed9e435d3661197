"""ui/errors.py: our own errors become messages; any other exception is logged with its traceback."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from backend.config import apply_overrides, default_config
from backend.errors import UserError
from ui.errors import shows_errors, user_message


def test_a_user_error_is_shown_as_is_and_not_logged(caplog):
    @shows_errors
    def handler():
        raise UserError("Pick a dataset first.")

    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error) as raised:
        handler()
    assert raised.value.message == "Pick a dataset first."
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_unexpected_key_error_is_logged_with_its_traceback_and_shown_generically(caplog):
    @shows_errors
    def handler():
        return {}["internal_field"]  # a bug, not something the person typed

    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error) as raised:
        handler()
    assert raised.value.message == "Something went wrong (KeyError). The details are in the server log."
    assert "internal_field" not in raised.value.message
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None and errors[0].exc_info[0] is KeyError


def test_an_unknown_setting_is_still_a_readable_user_error(caplog):
    config = default_config(1, "lstm")
    with pytest.raises(UserError) as raised:
        apply_overrides(config, {"epochz": "3"})
    assert user_message(raised.value).startswith("unknown setting 'epochz'. Did you mean 'epochs'?")

    @shows_errors(fallback=lambda message: message)
    def handler():
        apply_overrides(config, {"epochz": "3"})

    with caplog.at_level(logging.ERROR):
        assert handler().startswith("unknown setting 'epochz'")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
