"""Playground tab: try a finished model on your own input, or predict a whole file.

One run picker lists every succeeded run; the panel below follows the run's task: a text
classifier gets the text box, its prediction and batch prediction; a language model gets the
generation panel (ui/generate_panel.py), which streams the continuation; image and table models
get their own panels (ui/image_panels.py, ui/tabular_panels.py).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import gradio as gr

from backend.data.store import load_split
from backend.errors import UserError
from backend.serving.generation_settings import parse_run_id
from backend.services import RunRecord, Services, task_of_run
from backend.settings import Settings
from ui.batch_prediction import batch_failed, build_batch_prediction, on_batch_click
from ui.errors import shows_errors
from ui.formatting import confusion_html, predictions_first
from ui.generate_panel import build_generate_panel
from ui.image_panels import build_image_panel
from ui.tabular_panels import build_table_panel

EXAMPLES = 6
MAX_TEXT_CHARS = 100_000
KEEP_DOWNLOADS_S = 24 * 3600  # prediction files and exports are downloads, not records: cleared after a day
BATCH_TYPES = [".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet"]
PROMPT_EXAMPLE_CHARS = 40  # a prompt example is the start of a validation line: the model writes the rest


def _succeeded(services: Services) -> list[RunRecord]:
    return services.list_runs("succeeded")


def run_choices(runs: list[RunRecord]) -> list[tuple[str, int]]:
    """(label, id) pairs that say what each run does, since both kinds share one picker."""
    return [(f"#{r.id} {r.name} · {_model_noun(r)}", r.id) for r in runs]


def _model_noun(run: RunRecord) -> str:
    try:
        return task_of_run(run).model_noun
    except ValueError:  # a task this version does not offer: say its name
        return run.task


def _run_folder(services: Services, run_id) -> Path:
    if not run_id:
        raise gr.Error("Pick a finished run first (the Runs tab shows which ones succeeded).", print_exception=False)
    try:
        run = services.get_run(parse_run_id(run_id))
    except UserError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    if run.status != "succeeded" or not run.output_dir:
        raise gr.Error(f"Run #{run.id} is {run.status}; only succeeded runs can predict.", print_exception=False)
    if _panel(run) != "classify":
        raise gr.Error(f"Run #{run.id} is a {_model_noun(run)}: it writes text rather than "
                       "classify it. Use the Generate panel (or the `generate` API), or pick a classifier.",
                       print_exception=False)
    return Path(run.output_dir)


def _panel(run: RunRecord | None) -> str | None:
    """The panel that shows a run's model ("classify", "generate"), as its task says; None when unknown."""
    try:
        return task_of_run(run).panel if run is not None else None
    except ValueError:
        return None


def _run_panel(services: Services, run_id) -> str | None:
    try:
        return _panel(services.get_run(parse_run_id(run_id))) if run_id else None
    except Exception:  # deleted meanwhile, or typed in: the handlers say so when used
        return None


def predictions_dir(settings: Settings) -> Path:
    """Where batch predictions are written for download: a temp folder in the home dir (never next to the DB)."""
    return settings.home / "tmp"


def fresh_download_folder(settings: Settings, family: str, label: str = "") -> Path:
    """A new folder `<family>-[<label>-]*` for one download; folders of the same family older than a day go.

    Downloads live under <home>/tmp, the only part of the home dir the server may hand out.
    """
    base = predictions_dir(settings)
    base.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - KEEP_DOWNLOADS_S
    for old in base.glob(f"{family}-*"):
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # removed meanwhile by another request
            pass
    return Path(tempfile.mkdtemp(prefix=f"{family}-{label}-" if label else f"{family}-", dir=base))


def on_refresh_runs(services: Services, selected):
    """The succeeded runs to choose from, keeping the choice when it is still there."""
    runs = _succeeded(services)
    ids = {r.id for r in runs}
    return gr.update(choices=run_choices(runs), value=selected if selected in ids else (runs[0].id if runs else None))


def on_show_panel(services: Services, run_id, picked_before: bool = True):
    """Show the classifier's panel or the generation panel, after the picked run's task.

    Results of the run picked before go (they belong to another model), and so does the input of
    the panel that hides; the input of the panel that shows stays: the picker is first set while
    the page opens, when a person may already be typing. That first pick of the page
    (`picked_before` False) clears nothing: no other model's result can be on the page yet, and on
    a busy server this update can land after the answer to an early Predict, which it would wipe.
    An empty picker is no pick: the page's first refresh turns an empty picker's None into "" (a
    change) when no run has finished yet, and counting that would make the first real pick clear
    (bench/playground_first_click.py --when tab-open: an answer shown, then wiped).
    Returns (classify panel, generation panel, text, label, continuation, outcome, prompt, whether a
    run has been picked on this page).
    """
    panel = _run_panel(services, run_id)
    generates = panel == "generate"
    text = gr.update() if not generates else ""
    prompt = gr.update() if generates else ""
    results = (None, "", "") if picked_before else (gr.update(), gr.update(), gr.update())
    # The image panel (ui/image_panels.py) and the table panel (ui/tabular_panels.py) follow the picker on their own.
    return (gr.update(visible=panel in ("classify", None)), gr.update(visible=generates), text, *results, prompt,
            picked_before or bool(run_id))


def on_example(services: Services, sample, run_id=None):
    """An example fills the input of the panel that shows (the other stays empty); old results go.

    Returns (text, prompt, label, continuation, outcome).
    """
    value = sample[0] if sample else ""
    generates = _run_panel(services, run_id) == "generate"
    return (("", value) if generates else (value, "")) + (None, "", "")


def prompt_examples(texts, count: int = EXAMPLES) -> list[str]:
    """Starts of distinct non-empty lines of the texts: prompts the model can continue."""
    starts: list[str] = []
    for text in texts:
        for line in str(text).splitlines():
            start = line.strip()[:PROMPT_EXAMPLE_CHARS].rstrip()
            if start and start not in starts:
                starts.append(start)
                if len(starts) == count:
                    return starts
    return starts


def on_pick_run(services: Services, run_id):
    """A few validation texts of the run's dataset to click and try (a classifier: a balanced mix of classes)."""
    none = gr.update(samples=[], visible=False)  # no heading over an empty list
    if not run_id:
        return none
    try:
        run = services.get_run(int(run_id))
        if run.dataset_id is None:  # an imported model: no validation set here
            return none
        frame = load_split(services.get_dataset(run.dataset_id), "validation")
    except Exception:  # deleted datasets or runs have no examples: that is fine
        return none
    if frame.empty or _panel(run) not in ("classify", "generate"):  # examples are texts
        return none
    if _panel(run) == "generate":
        starts = prompt_examples(frame["text"])
        return gr.update(samples=[[start] for start in starts], visible=bool(starts))
    per_class = max(1, EXAMPLES // max(frame["label"].nunique(), 1)) if "label" in frame else EXAMPLES
    picks = frame.groupby("label", sort=True).head(per_class) if "label" in frame else frame
    return gr.update(samples=[[str(t)[:500]] for t in picks["text"].head(EXAMPLES)], visible=True)


@shows_errors
def on_predict(services: Services, run_id, text: str) -> dict[str, float]:
    """Class probabilities for one text (the `predict` API endpoint)."""
    text = text or ""
    if not text.strip():
        raise gr.Error("Type or paste a text first.", print_exception=False)
    if len(text) > MAX_TEXT_CHARS:
        raise gr.Error(f"The text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}. "
                       "Shorten it (the model only reads the first max-length tokens anyway).", print_exception=False)
    _run_folder(services, run_id)  # says why when the run is no finished classifier
    return services.load_predictor(run_id).predict([text])[0]["scores"]


@shows_errors(fallback=batch_failed)
def on_batch(services: Services, run_id, path: str | None):
    """Predict every row of an uploaded file; returns a CSV to download and, with labels, the scores."""
    if not path:
        raise gr.Error("Upload a CSV, TSV or TXT file with one text per row.", print_exception=False)
    _run_folder(services, run_id)  # says why when the run is no finished classifier
    predictor = services.load_predictor(run_id)
    from backend.serving.batch import predict_file

    out_dir = fresh_download_folder(services.settings, "predictions")
    result = predict_file(Path(path), predictor, out_dir, settings=services.settings)
    summary = f"Predicted **{result.rows:,}** rows from the `{result.text_column}` column."
    confusion = ""
    if result.metrics:
        summary += (f" Against the `{result.label_column}` column: accuracy **{result.metrics['accuracy']:.3f}**, "
                    f"macro F1 **{result.metrics['macro_f1']:.3f}**.")
        confusion = confusion_html(result.metrics)
    return str(result.csv_path), summary, predictions_first(result.preview), confusion


def build_playground_tab(services: Services) -> tuple[gr.Dropdown, gr.Dataset, list[gr.Component]]:
    """Lay out the Playground tab; returns the run picker and the examples, which the app refreshes, and
    the controls that send the picked run, which the app turns on once the page's first refresh is done.

    Why they start off: a click on Predict, or Shift+Enter in the text box, before that refresh has put
    a run in the picker carries no run, and is refused with "Pick a finished run first" (with both
    cores busy, 8 clicks in 10 and 9 Shift+Enters in 10: bench/playground_first_click.py). Every
    button of every panel that sends the run picked is treated the same way; the table form's
    Predict is drawn only once a table run is picked, so it cannot be clicked before.
    """
    runs = _succeeded(services)
    first = runs[0] if runs else None
    generates = _panel(first) == "generate"
    run_picker = gr.Dropdown(run_choices(runs), value=first.id if first else None, label="Finished run",
                             info="Runs that trained successfully: text classifiers and generators, image and table models.",
                             elem_id="playground-run",
                             # The server checks a value against the choices it was built with: API
                             # callers of `predict`/`generate` could never use a run trained since.
                             # The handlers check the run themselves, with a message that says why.
                             allow_custom_value=True)
    # One examples list above both panels: a click fills the text to classify and the prompt alike.
    examples_input = gr.Textbox(visible=False)
    examples = gr.Dataset(components=[examples_input], samples=[], label="Examples from the validation set "
                          "(click one)", elem_id="playground-examples", visible=False)
    with gr.Column(visible=_panel(first) in ("classify", None)) as classify_panel:
        with gr.Row(equal_height=False):
            with gr.Column():
                # Both off until the page's first refresh of the picker is done (see the docstring).
                text = gr.Textbox(label="Text", lines=4, placeholder="Type or paste a text to classify",
                                  elem_id="playground-text", interactive=False)
                predict_button = gr.Button("Predict", variant="primary", elem_id="predict", interactive=False)
            with gr.Column():
                label = gr.Label(num_top_classes=5, label="Prediction", elem_id="prediction")
        batch = build_batch_prediction("Upload a CSV, TSV or TXT file (one text per row). If it has a label column "
                                       "with the model's classes, you also get accuracy, macro F1 and a confusion "
                                       "matrix.", BATCH_TYPES)
    generation = build_generate_panel(services, run_picker, visible=generates)
    image_buttons = build_image_panel(services, run_picker,
                                      partial(fresh_download_folder, services.settings, "predictions"),
                                      visible=_panel(first) == "image")
    table = build_table_panel(services, run_picker, visible=_panel(first) == "table",
                              download_folder=fresh_download_folder)
    waits_for_page = [text, predict_button, batch.button, generation.generate_button, *image_buttons,
                      table.batch_button]

    private = {"api_visibility": "private"}
    results = [label, generation.output, generation.outcome]
    run_picker.change(partial(on_pick_run, services), run_picker, examples, **private)
    picked_before = gr.State(False)   # this page has shown a run's panel (its results may be on it)
    run_picker.change(partial(on_show_panel, services), [run_picker, picked_before],
                      [classify_panel, generation.panel, text, *results, generation.prompt, picked_before], **private)
    examples.click(partial(on_example, services), [examples, run_picker], [text, generation.prompt, *results],
                   **private)
    predict_button.click(partial(on_predict, services), [run_picker, text], label, api_name="predict",
                         concurrency_limit=4)
    text.submit(partial(on_predict, services), [run_picker, text], label, concurrency_limit=4, **private)
    on_batch_click(batch, partial(on_batch, services), run_picker)
    return run_picker, examples, waits_for_page
