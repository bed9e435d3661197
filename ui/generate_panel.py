"""The Playground's generation panel: a prompt, sampling settings, the continuation streamed, and Stop.

`on_generate` is a generator: Gradio sends each yielded value to the page, so the continuation
grows token by token (it is also the public `generate` API endpoint). Stop does not rely on
Gradio's `cancels=`, which cannot interrupt a running function: each browser session has its own
threading.Event that the sampler checks before every token (`StopSwitches`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

import gradio as gr
from pydantic import ValidationError

from backend.errors import UserError
from backend.serving.generation_settings import MAX_NEW_TOKENS, GenerationSettings, check_prompt
from backend.services import NotFound, Services
from ui.errors import user_message

log = logging.getLogger(__name__)

DEFAULT_SEED = 42  # the form starts with a seed, so pressing Generate twice shows the same text
MAX_TEMPERATURE = 2.0  # the slider's end; hotter than 2 is noise for every model we train
MAX_TOP_K = 200
# A small model writes hundreds of tokens a second; sending each one makes the browser re-render
# the whole text each time and fall minutes behind. At most ten updates a second still reads as
# streaming, and a slower model still shows every token as it comes.
STREAM_INTERVAL_S = 0.1


class StopSwitches:
    """One stop flag per browser session: Stop ends the generation that session is running, no other.

    It also keeps how each session's last generation ended (seed, tokens, stopped), for the line
    under the text: the public `generate` endpoint returns the text alone.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self._outcomes: dict[str, str] = {}

    def record(self, session: str, outcome: str) -> None:
        """Remember how the session's generation ended (replacing the one before)."""
        with self._lock:
            self._outcomes[session] = outcome

    def outcome(self, session: str) -> str:
        """How the session's last generation ended, once ('' when there is none)."""
        with self._lock:
            return self._outcomes.pop(session, "")

    def start(self, session: str) -> threading.Event:
        """A fresh flag for a new generation of `session` (a later Stop sets this one).

        A generation the session still runs is stopped: both would stream into the same box.
        """
        event = threading.Event()
        with self._lock:
            previous = self._events.get(session)
            self._events[session] = event
        if previous is not None:
            previous.set()
        return event

    def stop(self, session: str) -> bool:
        """Ask the session's running generation to stop; False when none runs."""
        with self._lock:
            event = self._events.get(session)
        if event is None:
            return False
        event.set()
        return True

    def finish(self, session: str, event: threading.Event) -> None:
        """Forget the flag once its generation ended (unless a newer one replaced it)."""
        with self._lock:
            if self._events.get(session) is event:
                del self._events[session]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


def _number(value):
    # An emptied Number box sends None (or NaN from some clients): "not given".
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def read_settings(max_new_tokens, temperature, top_k, top_p, seed) -> GenerationSettings:
    """The validated sampling settings of the form (an empty seed becomes a random one)."""
    given = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "top_p": top_p,
             "seed": seed}
    try:
        settings = GenerationSettings.model_validate({k: v for k, v in
                                                      ((k, _number(v)) for k, v in given.items()) if v is not None})
    except ValidationError as exc:
        raise gr.Error(user_message(exc), print_exception=False) from None
    return settings.with_seed()


def on_generate(services: Services, switches: StopSwitches, run_id, prompt, max_new_tokens, temperature, top_k,
                top_p, seed, session: str = "", interval_s: float = STREAM_INTERVAL_S) -> Iterator[str]:
    """Stream the continuation of `prompt`: yields the text written so far, growing token by token.

    Tokens that arrive within `interval_s` of the last update are sent together with the next one.
    """
    settings = read_settings(max_new_tokens, temperature, top_k, top_p, seed)
    try:
        prompt = check_prompt(prompt)
        services.language_model_folder(run_id)  # says why when the run is no finished text generator
        generator = services.load_predictor(run_id)
        dropped = generator.dropped_characters(prompt)
    except (UserError, NotFound) as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    if dropped:
        gr.Warning(f"The model never saw these characters, so they were left out of the prompt: {dropped}")
    stop = switches.start(session)
    text = sent = ""
    tokens = 0
    try:
        yield text  # clear the previous continuation at once
        sent_at = time.monotonic()
        for piece in generator.stream(prompt, should_stop=stop.is_set, **settings.model_dump()):
            text += piece
            tokens += 1
            if time.monotonic() - sent_at >= interval_s:
                yield text
                sent, sent_at = text, time.monotonic()
        if text != sent:
            yield text
        switches.record(session, outcome_text(tokens, settings.seed, stopped=stop.is_set()))
    except UserError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    except Exception as exc:  # a bug: logged with its trace, shown politely
        log.exception("generation with run %s failed", run_id)
        raise gr.Error(user_message(exc), print_exception=False) from None
    finally:
        switches.finish(session, stop)


def outcome_text(tokens: int, seed: int, stopped: bool) -> str:
    """'Stopped at 57 tokens · seed 123 ...' or 'Wrote 200 tokens · seed 123 ...'."""
    count = f"{tokens:,} token{'' if tokens == 1 else 's'}"
    done = f"Stopped at {count}" if stopped else f"Wrote {count}"
    return f"{done} · seed **{seed}** (the same seed, prompt and settings write the same text again)"


def on_generation_ended(switches: StopSwitches, session: str = "") -> str:
    """The line under the continuation: tokens written, stopped or not, and the seed used."""
    return switches.outcome(session)


def on_stop(switches: StopSwitches, session: str = "") -> None:
    """Stop this session's generation after the token being sampled."""
    switches.stop(session)


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


class GeneratePanel(NamedTuple):
    """The parts of the generation panel the Playground clears when the run or an example changes, and
    Generate, which starts off until the page has loaded (see build_playground_tab)."""

    panel: gr.Column
    prompt: gr.Textbox
    output: gr.Textbox
    outcome: gr.Markdown
    generate_button: gr.Button


def build_generate_panel(services: Services, run_picker: gr.Dropdown, visible: bool) -> GeneratePanel:
    """Lay out the generation panel and wire Generate (API name `generate`) and Stop."""
    fields = GenerationSettings.model_fields
    with gr.Column(visible=visible) as panel:
        with gr.Row(equal_height=False):
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", lines=4, elem_id="generate-prompt",
                                    placeholder="Start a text and the model continues it (empty: it starts one)")
                with gr.Row():
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate", interactive=False)
                    stop_button = gr.Button("Stop", variant="stop", elem_id="stop-generate")
                max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS, step=1, precision=0,
                                           value=fields["max_new_tokens"].default, label="Max new tokens",
                                           info=fields["max_new_tokens"].description)
                with gr.Row():
                    temperature = gr.Slider(0, MAX_TEMPERATURE, step=0.05, value=fields["temperature"].default,
                                            label="Temperature", info=fields["temperature"].description)
                    top_k = gr.Slider(0, MAX_TOP_K, step=1, precision=0, value=fields["top_k"].default,
                                      label="Top-k", info=fields["top_k"].description)
                with gr.Row():
                    top_p = gr.Slider(0.01, 1, step=0.01, value=fields["top_p"].default, label="Top-p",
                                      info=fields["top_p"].description)
                    seed = gr.Number(DEFAULT_SEED, precision=0, minimum=0, label="Seed",
                                     info=fields["seed"].description, elem_id="generate-seed")
            with gr.Column():
                output = gr.Textbox(label="Continuation (streamed as it is written)", lines=14, max_lines=30,
                                    interactive=False, autoscroll=True, buttons=["copy"], elem_id="generated")
                outcome = gr.Markdown(elem_id="generate-outcome")

    switches = StopSwitches()

    # Closures rather than functools.partial: Gradio injects gr.Request only into plain functions.
    def generate(run_id, prompt, max_new_tokens, temperature, top_k, top_p, seed, request: gr.Request):
        yield from on_generate(services, switches, run_id, prompt, max_new_tokens, temperature, top_k, top_p, seed,
                               session=_session(request))

    def stop(request: gr.Request) -> None:
        on_stop(switches, _session(request))

    def ended(request: gr.Request) -> str:
        return on_generation_ended(switches, _session(request))

    generate_button.click(lambda: "", None, outcome, queue=False, api_visibility="private")
    generate_button.click(generate, [run_picker, prompt, max_new_tokens, temperature, top_k, top_p, seed], output,
                          api_name="generate", concurrency_limit=2, show_progress="minimal").then(
        ended, None, outcome, api_visibility="private")
    stop_button.click(stop, None, None, queue=False, api_visibility="private")
    return GeneratePanel(panel, prompt, output, outcome, generate_button)
