"""The image task's gradio pieces: the Data tab's zip report (with a thumbnail grid) and the
Playground's image panel (one picture -> top classes; a zip -> a predictions CSV).

The shared tabs ask the task (`Task.upload_kind`, `Task.panel`, `Task.load_predictor`) and
call these; nothing here names a task.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import pandas as pd

from backend.data.uploads import discard_upload
from backend.serving.generation_settings import parse_run_id
from backend.errors import UserError
from backend.services import Services, get_task
from ui.downloads import download_when_ready
from ui.errors import shows_errors, user_message
from ui.formatting import error_box, format_bytes

log = logging.getLogger(__name__)

TOP_CLASSES = 5
LISTED_PROBLEMS = 10  # files listed per problem in the report (the counts are exact)


# ---- Data tab ---------------------------------------------------------------------------------

def zip_upload_info(path: str) -> str:
    """What the Data tab says about an uploaded zip: it is read on Ingest, by a task that takes zips."""
    return (f"**{Path(path).name}** — a zip of {format_bytes(Path(path).stat().st_size)}. Pick **Image classification** as the task "
            "(its folders are the classes: cat/001.jpg, dog/002.png, ...), then press **Ingest** to check and store it.")


def image_report_markdown(summary: dict, report: dict) -> str:
    """The validation report of an image dataset as Markdown: counts, sizes, problems, warnings."""
    lines = [f"### Dataset #{summary['dataset_id']} — {summary['name']}"
             + (" (already stored: reused)" if summary.get("reused") else ""),
             f"- **Images:** {summary['rows']:,} (training {summary['train_rows']:,}, "
             f"validation {summary['validation_rows']:,})"]
    if summary.get("classes"):
        lines.append(f"- **Images per class** ({len(summary['classes'])} classes): "
                     + ", ".join(f"{k} ({v:,})" for k, v in summary["classes"].items()))
    sizes = report.get("sizes")
    if sizes:
        lines.append(f"- **Image sizes (pixels):** width {sizes['width_min']:,}–{sizes['width_max']:,} (median "
                     f"{sizes['width_median']:,.0f}), height {sizes['height_min']:,}–{sizes['height_max']:,} "
                     f"(median {sizes['height_median']:,.0f})")
    lines += [f"- **Corrupt or unreadable files (left out):** {report.get('corrupt_count', 0):,}",
              f"- **Other files left out:** {report.get('skipped_count', 0):,} · **ignored** (__MACOSX, "
              f".DS_Store, hidden): {report.get('ignored_count', 0):,}",
              f"- **Exact duplicates in training:** {report.get('duplicates_in_train', 0):,} · **in both training "
              f"and validation:** {report.get('duplicates_across_splits', 0):,} · **same file, different labels:** "
              f"{len(report.get('conflicting_labels') or []):,}"]
    for key, title in (("corrupt", "Corrupt files"), ("skipped", "Files left out")):
        listed = report.get(key) or []
        if listed:
            lines.append(f"\n**{title}** (first {min(len(listed), LISTED_PROBLEMS)})")
            lines += [f"- `{path}`: {why}" for path, why in listed[:LISTED_PROBLEMS]]
    warnings = summary.get("warnings") or []
    if warnings:
        lines.append("\n**Warnings**")
        lines += [f"- Warning: {w}" for w in warnings]
    return "\n".join(lines)


def image_widths(report: dict) -> list[int]:
    """Widths of the report's sample of images, for the Data tab's size histogram."""
    return [int(width) for width, _ in report.get("sizes_sample") or []]


def thumbnail_gallery(report: dict) -> list[tuple[bytes, str]]:
    """(image, caption) pairs of the report's thumbnails: a few per class."""
    from PIL import Image

    pictures = []
    for label, encoded in (report.get("thumbnails") or {}).items():
        for item in encoded:
            pictures.append((Image.open(io.BytesIO(base64.b64decode(item))), label))
    return pictures


def build_thumbnail_grid() -> gr.Gallery:
    """The Data tab's thumbnail grid (hidden until an image dataset is ingested)."""
    return gr.Gallery(label="A few images per class", columns=8, height="auto", object_fit="contain",
                      visible=False, elem_id="image-thumbnails", allow_preview=True)


def thumbnails_update(report: dict | None):
    """The grid's update: shown with the thumbnails of an image report, hidden otherwise."""
    pictures = thumbnail_gallery(report or {})
    return gr.update(value=pictures or None, visible=bool(pictures))


# ---- Playground -------------------------------------------------------------------------------

def _predictor(services: Services, run_id):
    """The file predictor of a succeeded run of a task that reads files."""
    if not run_id:
        raise gr.Error("Pick a finished image run first.", print_exception=False)
    run = services.get_run(parse_run_id(run_id))
    task = get_task(run.task)
    if not task.takes_files or run.status != "succeeded" or not run.output_dir:
        raise gr.Error(f"Run {run.id} is not a finished image classifier; pick one that succeeded.",
                       print_exception=False)
    return services.load_predictor(run.id)


def _classify_failed(message: str):
    return None, error_box(message)


@shows_errors(fallback=_classify_failed)
def on_classify_image(services: Services, run_id, image_path: str | None):
    """Top classes of one uploaded image, with probabilities."""
    if not image_path:
        raise gr.Error("Upload an image first (or paste one, or use the webcam).", print_exception=False)
    data = Path(image_path).read_bytes()
    (answer,) = _predictor(services, run_id).predict_files([data], [Path(image_path).name])
    ranked = dict(sorted(answer["scores"].items(), key=lambda item: -item[1])[:TOP_CLASSES])
    return ranked, f"Predicted **{answer['label']}** ({ranked[answer['label']]:.1%})."


def _zip_failed(message: str):
    return None, error_box(message), pd.DataFrame()


@shows_errors(fallback=_zip_failed)
def on_predict_zip(services: Services, run_id, zip_path: str | None, download_folder: Callable[[], Path]):
    """Predict every image of a zip: a CSV (in a fresh `download_folder()`) to download, a summary, the first rows."""
    if not zip_path:
        raise gr.Error("Upload a .zip of images first.", print_exception=False)
    predictor = _predictor(services, run_id)
    csv_path = download_folder() / f"{Path(zip_path).stem}-predictions.csv"
    prediction = predictor.write_zip_csv(Path(zip_path), csv_path)
    summary = f"Predicted **{len(prediction.rows):,}** images."
    if prediction.metrics:
        summary += (f" Against the zip's class folders: accuracy **{prediction.metrics['accuracy']:.3f}**, "
                    f"macro F1 **{prediction.metrics['macro_f1']:.3f}**.")
    if prediction.skipped:
        summary += f" {len(prediction.skipped):,} file(s) left out (not readable images)."
    preview = pd.read_csv(csv_path).head(20)
    return str(csv_path), summary, preview


def on_show_image_panel(services: Services, run_id):
    """Show the image panel when the picked run's task renders its models with it; old results go."""
    try:
        shown = get_task(services.get_run(parse_run_id(run_id)).task).panel == "image" if run_id else False
    except Exception:  # deleted meanwhile, or typed in: the handlers say so when used
        shown = False
    return gr.update(visible=shown), None, ""


def build_image_panel(services: Services, run_picker: gr.Dropdown, download_folder: Callable[[], Path],
                      visible: bool = False) -> list[gr.Button]:
    """The Playground's image panel (shown for an image run): one image -> top classes, or a zip -> CSV.

    `download_folder()` gives a fresh folder the server may hand out (the Playground's downloads).
    Returns its buttons, which start off until the page has loaded (see build_playground_tab)."""
    with gr.Column(visible=visible, elem_id="image-panel") as panel:
        with gr.Row(equal_height=False):
            with gr.Column():
                image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard", "webcam"],
                                 height=260, elem_id="playground-image")
                classify = gr.Button("Classify", variant="primary", elem_id="classify-image", interactive=False)
            with gr.Column():
                scores = gr.Label(label="Top classes", num_top_classes=TOP_CLASSES, elem_id="image-scores")
                verdict = gr.Markdown(elem_id="image-verdict")
        with gr.Accordion("Batch prediction: a zip of images → CSV", open=False):
            with gr.Row(equal_height=False):
                zip_file = gr.File(label="Zip of images (class folders give accuracy too)", type="filepath",
                                   file_types=[".zip"], height=120, elem_id="image-batch-file")
                with gr.Column():
                    zip_button = gr.Button("Predict zip", elem_id="predict-zip", interactive=False)
                    download = gr.File(label="Predictions (CSV)", interactive=False, elem_id="image-batch-download")
                    zip_summary = gr.Markdown(elem_id="image-batch-summary")
            zip_preview = gr.Dataframe(label="First predictions", interactive=False, max_height=300)
    run_picker.change(lambda run_id: on_show_image_panel(services, run_id), run_picker, [panel, scores, verdict],
                      api_visibility="private")
    classify.click(lambda run_id, path: on_classify_image(services, run_id, path), [run_picker, image],
                   [scores, verdict], api_visibility="private")
    download_when_ready(zip_button.click(lambda run_id, path: on_predict_zip(services, run_id, path, download_folder),
                                         [run_picker, zip_file], [download, zip_summary, zip_preview],
                                         concurrency_limit=1, api_visibility="private"), download)
    return [classify, zip_button]


# ---- demo page --------------------------------------------------------------------------------

def on_open_demo_image_box(services: Services, token: str):
    """Show the demo's image box when the link's model reads images; hidden otherwise (or for a dead link)."""
    try:
        return gr.update(visible=get_task(services.open_demo(token).run.task).panel == "image")
    except Exception:  # not available: the page's own handler says why
        return gr.update(visible=False)


def on_demo_classify(services: Services, token: str, image_path: str | None,
                     upload_dir: str | Path | None = None) -> dict[str, float]:
    """Class probabilities of the uploaded image from the link's model (the `/classify_image` endpoint).

    The visitor's file is deleted once read, whatever the outcome: an anonymous upload must not stay
    in the server's cache (`upload_dir`, Gradio's by default; only files inside it are deleted)."""
    try:
        if not image_path:
            raise gr.Error("Upload an image first.", print_exception=False)
        try:
            data = Path(image_path).read_bytes()
        finally:
            discard_upload(image_path, upload_dir or gr.utils.get_upload_folder())
        return services.demo_predict_file(token, data, Path(image_path).name)
    except gr.Error:
        raise
    except Exception as exc:  # the visitor sees a sentence, never a trace or another run's details
        if not isinstance(exc, UserError):
            log.error("demo image call failed", exc_info=exc)
        raise gr.Error(user_message(exc), print_exception=False) from None


def build_demo_image_box(services: Services, page: gr.Blocks, token_of: Callable[[gr.Request | None], str]) -> None:
    """The demo page's image box: upload (or paste, or webcam) -> top classes; its endpoint is /classify_image.

    `token_of(request)` reads the demo token from the URL; every call looks the link up again."""

    def open_box(request: gr.Request):
        return on_open_demo_image_box(services, token_of(request))

    def classify(image_path: str | None, request: gr.Request):
        return on_demo_classify(services, token_of(request), image_path)

    with gr.Column(visible=False) as box:
        with gr.Row(equal_height=False):
            with gr.Column():
                # image_mode=None: the handler gets the uploaded file itself (no converted copy left
                # behind in the cache); the predictor converts to RGB and applies EXIF orientation.
                image = gr.Image(label="Image", type="filepath", sources=["upload", "clipboard", "webcam"],
                                 image_mode=None, height=260, elem_id="demo-image")
                button = gr.Button("Classify", variant="primary", elem_id="demo-classify-image")
            scores = gr.Label(num_top_classes=TOP_CLASSES, label="Prediction", elem_id="demo-image-prediction")
    page.load(open_box, None, box, api_visibility="private")
    button.click(classify, image, scores, api_name="classify_image", concurrency_limit=4)


# ---- Runs tab ---------------------------------------------------------------------------------

def on_show_mistakes_box(services: Services, run_id):
    """Show the misclassified-images box for a finished image run that has its dataset here; clear old images."""
    try:
        run = services.get_run(parse_run_id(run_id)) if run_id else None
        shown = (run is not None and get_task(run.task).panel == "image" and run.dataset_id is not None
                 and run.status == "succeeded")
    except Exception:  # deleted meanwhile: nothing to show
        shown = False
    return gr.update(visible=shown), None


@shows_errors
def on_misclassified_images(services: Services, run_id):
    """The run's most confident mistakes on validation images, captioned true → predicted (confidence)."""
    if not run_id:
        raise gr.Error("Pick a finished image run first.", print_exception=False)
    from PIL import Image

    pictures = services.misclassified_images(parse_run_id(run_id))
    if not pictures:
        gr.Info("The best checkpoint classified every validation image correctly.")
    return [(Image.open(io.BytesIO(data)), caption) for data, caption in pictures]


def build_misclassified_gallery(services: Services, run_picker: gr.Dropdown) -> None:
    """The Runs tab's gallery of validation images the followed image run got wrong (shown for image runs)."""
    with gr.Accordion("Misclassified validation images", open=False, visible=False) as box:
        button = gr.Button("Show misclassified images", size="sm", elem_id="find-misclassified-images")
        gallery = gr.Gallery(label="true → predicted (confidence), most confident mistakes first", columns=8,
                             height="auto", object_fit="contain", elem_id="misclassified-images")
    run_picker.change(lambda run_id: on_show_mistakes_box(services, run_id), run_picker, [box, gallery],
                      api_visibility="private")
    button.click(lambda run_id: on_misclassified_images(services, run_id), run_picker, gallery,
                 api_visibility="private")
