"""Public demo links: an unguessable token opens one finished run's try-it page, and nothing else.

A token (`secrets.token_urlsafe(24)`, 32 characters) is looked up in the database on every call,
so a revoked or expired link stops working at once. Everything a demo page does goes through
`open_demo(repo, token)`: it hands back that token's run or raises `DemoUnavailable`, and the
predict / generate functions here never take a run id from the caller.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from backend.errors import UserError
from backend.serving.startup import load_model_stack
from backend.tasks.registry import get_task
from storage.models import utcnow
from storage.records import DemoRecord, RunRecord
from storage.repository import NotFound, Repository

log = logging.getLogger(__name__)

TOKEN_BYTES = 24
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # what token_urlsafe produces; anything else is unknown
MAX_EXPIRY_HOURS = 24 * 365
DEMO_PATH = "/demo"  # a demo link is <server>/demo/<token>
MAX_DEMO_TEXT_CHARS = 10_000
MAX_DEMO_NEW_TOKENS = 500
REVOCATION_CHECK_S = 1.0  # a streaming generation re-checks its token this often


class DemoUnavailable(UserError):
    """The token is unknown, revoked or expired, or its run has no usable model any more."""


@dataclass(frozen=True)
class DemoTarget:
    """What a valid token opens: the demo link and its run."""

    demo: DemoRecord
    run: RunRecord

    @property
    def model_dir(self) -> Path:
        return Path(self.run.output_dir or "")


def demo_path(token: str) -> str:
    """The server-relative URL of a demo link."""
    return f"{DEMO_PATH}/{token}"


def publish_demo(repo: Repository, run_id: int, expires_in_hours: float | None = None) -> DemoRecord:
    """Create a demo link for a succeeded run; it never expires when `expires_in_hours` is 0 or None."""
    run = repo.get_run(run_id)
    _check_publishable(run)
    expires_at = None
    if expires_in_hours:
        hours = float(expires_in_hours)
        if not 0 < hours <= MAX_EXPIRY_HOURS:
            raise UserError(f"Expiry must be between 0 and {MAX_EXPIRY_HOURS} hours (got {expires_in_hours}); "
                            "0 means the link never expires.")
        expires_at = utcnow() + timedelta(hours=hours)
    demo = repo.add_demo(run.id, secrets.token_urlsafe(TOKEN_BYTES), expires_at)
    log.info("published demo %d of run %d (expires %s)", demo.id, run.id, expires_at or "never")
    return demo


def _check_publishable(run: RunRecord) -> None:
    if run.status != "succeeded":
        raise UserError(f"Run #{run.id} is {run.status}; only a succeeded run can get a demo link. "
                        "Pick a run that finished training.")
    if not get_task(run.task).has_demo_page:
        raise UserError(f"Run #{run.id} is a {get_task(run.task).model_noun}: demo links do not show these models "
                        "yet. Share it as a zip (Export) instead, and try it in the Playground.")
    weights = get_task(run.task).weights_files
    if not run.output_dir or not any((Path(run.output_dir) / name).is_file() for name in weights):
        raise UserError(f"Run #{run.id} has no saved model ({' or '.join(weights)}) in its folder any more; "
                        "train it again or import the model, then publish.")


def revoke_demo(repo: Repository, demo_id: int, run_id: int | None = None) -> DemoRecord:
    """Turn a demo link off at once; with `run_id`, only a link of that run."""
    demo = repo.get_demo(int(demo_id))
    if run_id is not None and demo.run_id != int(run_id):
        raise UserError(f"Demo link {demo_id} belongs to run #{demo.run_id}, not #{run_id}. "
                        "Pick a link from this run's list.")
    return repo.revoke_demo(demo.id)


def open_demo(repo: Repository, token: str | None) -> DemoTarget:
    """The run a token opens right now; DemoUnavailable when it does not open anything."""
    token = (token or "").strip()
    demo = repo.find_demo(token) if TOKEN_PATTERN.match(token) else None
    if demo is None:
        raise DemoUnavailable("This demo is not available: the link is not valid. "
                              "Check that it was copied whole, or ask its owner for a new one.")
    status = demo.status(utcnow())
    if status == "revoked":
        raise DemoUnavailable("This demo is not available: its owner turned the link off. "
                              "Ask them for a new link.")
    if status == "expired":
        raise DemoUnavailable(f"This demo is not available: the link expired on "
                              f"{demo.expires_at:%Y-%m-%d %H:%M} UTC. Ask its owner for a new link.")
    try:
        run = repo.get_run(demo.run_id)
        _check_publishable(run)
    except (NotFound, UserError) as exc:
        log.info("demo %d points at an unusable run: %s", demo.id, exc)
        raise DemoUnavailable("This demo is not available: its model was removed. "
                              "Ask its owner for a new link.") from None
    return DemoTarget(demo=demo, run=run)


def demo_takes_files(repo: Repository, token: str | None) -> bool:
    """True when the token opens a demo whose model takes a file, so its page may upload one."""
    try:
        return get_task(open_demo(repo, token).run.task).takes_files  # today's tasks take text only
    except (DemoUnavailable, ValueError):  # no such link, or a task this version does not offer
        return False


def model_card(target: DemoTarget) -> str:
    """The run's model card (README.md in its folder) without its YAML front matter; '' when there is none."""
    path = target.model_dir / "README.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    return strip_front_matter(text)


def strip_front_matter(markdown: str) -> str:
    """Markdown without a leading '---' YAML block (Hub metadata a reader need not see)."""
    if markdown.startswith("---\n"):
        end = markdown.find("\n---", 4)
        if end >= 0:
            return markdown[end + 4:].lstrip("\n")
    return markdown


def _check_text(text: str | None, what: str) -> str:
    text = "" if text is None else str(text)
    if len(text) > MAX_DEMO_TEXT_CHARS:
        raise UserError(f"The {what} has {len(text):,} characters; this demo takes at most "
                        f"{MAX_DEMO_TEXT_CHARS:,}. Shorten it.")
    return text


def _refuse_other_inputs(task) -> None:
    """A text endpoint called on an image or table demo: say which endpoint that demo answers."""
    if task.takes_files:
        raise UserError(IMAGE_DEMO)
    if task.reads_rows:
        raise UserError(TABLE_DEMO)


def demo_predict(repo: Repository, token: str | None, text: str | None) -> dict[str, float]:
    """Class probabilities of one text from the token's classifier."""
    target = open_demo(repo, token)
    _refuse_other_inputs(get_task(target.run.task))
    if get_task(target.run.task).panel != "classify":
        raise UserError("This demo writes text: use its generate endpoint instead of predict.")
    text = _check_text(text, "text")
    if not text.strip():
        raise UserError("Type a text to classify first.")
    load_model_stack()  # torch loads only when a demo is used, in one thread at a time
    return get_task(target.run.task).load_predictor(target.model_dir).predict([text])[0]["scores"]


IMAGE_DEMO = "This demo classifies images: send an image to its classify_image endpoint."
TABLE_DEMO = ("This demo predicts from a row of a table: send the row to its predict_row endpoint, as JSON "
              'with one value per column (e.g. {"age": 39}).')
MAX_DEMO_ROW_CHARS = 100_000


def _table_target(repo: Repository, token: str | None) -> tuple[DemoTarget, object]:
    target = open_demo(repo, token)
    task = get_task(target.run.task)
    if not task.reads_rows:
        raise UserError("This demo does not read table rows: use its predict, classify_image or generate endpoint.")
    return target, task


def demo_table_form(repo: Repository, token: str | None) -> list[dict]:
    """The input columns of the token's table model, for the demo page's form (see Task.input_form)."""
    target, task = _table_target(repo, token)
    load_model_stack()  # reading the model loads torch: only when a demo is used, in one thread at a time
    return task.input_form(target.model_dir)


def demo_predict_row(repo: Repository, token: str | None, row: dict | str | None) -> dict:
    """The token's table model on one row ({column: value}, or that as JSON text).

    Returns {"prediction": class, "probabilities": {class: p}} or {"prediction": number}."""
    target, task = _table_target(repo, token)
    if isinstance(row, str):
        if len(row) > MAX_DEMO_ROW_CHARS:
            raise UserError(f"The row has {len(row):,} characters; this demo takes at most {MAX_DEMO_ROW_CHARS:,}.")
        try:
            row = json.loads(row) if row.strip() else {}
        except json.JSONDecodeError as exc:
            raise UserError(f"The row is not valid JSON ({exc.msg} at character {exc.pos}). Write it like "
                            '{"age": 39, "workclass": "State-gov"}.') from None
    if row is None:
        row = {}
    if not isinstance(row, dict):
        raise UserError('Send one row as a JSON object of column: value, e.g. {"age": 39, "workclass": "State-gov"}.')
    load_model_stack()
    return task.predict_rows(target.model_dir, [row])[0]


def demo_predict_file(repo: Repository, token: str | None, data: bytes | None,
                      name: str = "the file") -> dict[str, float]:
    """Class probabilities of one file (an image) from the token's model that reads files."""
    target = open_demo(repo, token)
    task = get_task(target.run.task)
    if not task.takes_files:
        if task.reads_rows:
            raise UserError(TABLE_DEMO)
        raise UserError("This demo reads text: send a text to its predict endpoint instead of a file.")
    if not data:
        raise UserError("Upload an image first.")
    load_model_stack()  # torch loads only when a demo is used, in one thread at a time
    return task.load_predictor(target.model_dir).predict_files([data], [name])[0]["scores"]


def demo_stream(repo: Repository, token: str | None, prompt: str | None, *, max_new_tokens: int = 200,
                temperature: float = 0.8, seed: int | None = None,
                should_stop: Callable[[], bool] | None = None) -> Iterator[str]:
    """The token's language model continuing `prompt`, in incremental pieces.

    Stops when `should_stop()` is true (the page's Stop button) or once the link is revoked.
    """
    target = open_demo(repo, token)
    _refuse_other_inputs(get_task(target.run.task))
    if get_task(target.run.task).panel != "generate":
        raise UserError("This demo classifies text: use its predict endpoint instead of generate.")
    prompt = _check_text(prompt, "prompt")
    max_new_tokens = int(max_new_tokens)
    if not 1 <= max_new_tokens <= MAX_DEMO_NEW_TOKENS:
        raise UserError(f"Length must be between 1 and {MAX_DEMO_NEW_TOKENS} tokens (got {max_new_tokens}).")
    load_model_stack()  # torch loads only when a demo is used, in one thread at a time
    generator = get_task(target.run.task).load_predictor(target.model_dir)
    checked = [time.monotonic()]

    def stopped() -> bool:
        if should_stop is not None and should_stop():
            return True
        # Looking the token up costs a query: once a second is enough to stop a revoked stream.
        if time.monotonic() - checked[0] < REVOCATION_CHECK_S:
            return False
        checked[0] = time.monotonic()
        try:
            open_demo(repo, token)
        except DemoUnavailable:
            return True
        return False

    yield from generator.stream(prompt, max_new_tokens=max_new_tokens, temperature=float(temperature),
                                seed=seed, should_stop=stopped)
