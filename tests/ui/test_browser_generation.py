"""Real-browser flow for text generation: upload a .txt, train a tiny lstm-lm, stream text in the Playground.

Uses the fixtures and helpers of tests/ui/test_browser.py; saves screenshots under tests/output/screenshots/.
"""

import time

import pytest
from playwright.sync_api import expect

from tests.ui.test_browser import CHROMIUM, app_url, browser, open_tab, page, set_number, snap, wait_for_progress

__all__ = ["app_url", "browser", "page"]  # fixtures imported for pytest
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                                                 "(apt-get install -y chromium)")]
PATTERN = "the cat sat on a mat.\nbig dogs run far!\n"


def choose(page, label: str) -> None:
    """Click the visible radio option with this text (the Data and Train tabs both offer the tasks)."""
    page.locator("label:visible", has_text=label).first.click()


def generated(page) -> str:
    return page.locator("#generated textarea").input_value()


def wait_until_idle(page, timeout_s=60) -> str:
    """The continuation once it stops changing (the stream ended)."""
    deadline, last, stable_since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        value = generated(page)
        if value != last:
            last, stable_since = value, time.monotonic()
        elif value and time.monotonic() - stable_since > 1.5:
            return value
        page.wait_for_timeout(100)
    raise AssertionError(f"the continuation never settled (last: {last!r})")


def test_train_a_language_model_and_stream_text(page, app_url, tmp_path, services, monkeypatch):
    corpus = tmp_path / "pattern.txt"
    corpus.write_text(PATTERN * 60, encoding="utf-8")
    page.goto(app_url)
    open_tab(page, "Data")
    page.locator("#data-upload input[type=file]").set_input_files(str(corpus))
    page.locator("#file-info").get_by_text("rows").wait_for()
    choose(page, "Text generation")
    page.locator("#ingest").click()
    page.locator("#ingest-report").get_by_text("Dataset #").wait_for()

    open_tab(page, "Train")  # the new dataset is picked, and the form follows its task
    page.get_by_text("An LSTM language model from scratch").wait_for()  # the task's first template
    expect(page.get_by_label("Max length", exact=True)).to_have_count(0)  # unused by language models
    set_number(page, "Batch size", 16)
    set_number(page, "Learning rate", 0.01)
    page.get_by_text("Advanced settings").click()
    page.get_by_label("Max steps", exact=True).wait_for()
    page.wait_for_timeout(500)  # the accordion's first render would drop a value typed into it
    for label, value in {"Max steps": 80, "Eval every steps": 20, "Eval batches": 2, "Block size": 32,
                         "Hidden size": 48}.items():
        set_number(page, label, value)
    snap(page, "generation_train_form")
    page.locator("#launch").click()
    page.locator("#launch-output").get_by_text("queued").wait_for()

    open_tab(page, "Runs")
    assert wait_for_progress(page, lambda p: p >= 100.0, timeout_s=180) == 100.0
    page.locator("#run-progress").get_by_text("succeeded").wait_for()
    page.wait_for_timeout(1500)  # let the curves draw
    snap(page, "generation_runs_finished")
    run = services.repo.list_runs()[0]
    assert run.status == "succeeded" and run.template == "lstm-lm"
    assert (run.config.max_steps, run.config.eval_batches, run.config.template.block_size,
            run.config.template.hidden_size) == (80, 2, 32, 48)

    open_tab(page, "Playground")
    page.locator("#generate-prompt textarea").wait_for()  # the generation panel replaced the classifier's
    expect(page.locator("#playground-text")).to_have_count(0)
    page.locator("#generate-prompt textarea").fill("the cat sat")
    page.locator("#generate").click()
    first = wait_until_idle(page)
    page.locator("#generate").click()  # same seed (the form's 42), same text
    page.wait_for_timeout(300)
    assert wait_until_idle(page) == first and len(first) > 20
    # the seed used is shown, so the text can be written again
    expect(page.locator("#generate-outcome")).to_contain_text("seed 42")
    snap(page, "generation_playground")

    # Stop: a long continuation, stopped as soon as it has begun, ends well before its length.
    tokens = page.get_by_label("number input for Max new tokens")
    tokens.fill("2000")
    tokens.press("Tab")
    seed = page.locator("#generate-seed input")
    seed.fill("7")  # another seed: its text parts from `first` within a few characters
    seed.press("Tab")
    # The tiny model writes 2,000 characters in well under a second, quicker than a person (or
    # Playwright) can press Stop: 20 ms per token (40 s in all) give Stop a running generation to
    # end (at 5 ms, a CI machine at load ~4.6 once finished all 2,000 before Stop landed).
    from backend.tasks.text_generation.generator import Generator

    fast_stream = Generator.stream

    def paced_stream(self, *args, **kwargs):
        for piece in fast_stream(self, *args, **kwargs):
            time.sleep(0.02)
            yield piece

    monkeypatch.setattr(Generator, "stream", paced_stream)
    page.locator("#generate").click()
    deadline = time.monotonic() + 60
    # Under load the second generation above may still be streaming (a prefix of `first`): wait
    # until this one's own text shows, so Stop is pressed while it runs.
    while first.startswith(generated(page)) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    page.locator("#stop-generate").click()
    stopped = wait_until_idle(page)
    assert 0 < len(stopped) < 2000
    # Stop says where it stopped (a character model: one token per character)
    expect(page.locator("#generate-outcome")).to_contain_text(f"Stopped at {len(stopped):,} tokens")
    snap(page, "item8_generation_stopped")
