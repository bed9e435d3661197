"""What a person asks of a language model: sampling settings checked once, and the run they picked.

The Playground and `python app.py generate` both validate through `GenerationSettings` (defaults,
ranges and help texts live on its fields, so both surfaces show the same ones) and find the model
through `language_model_folder`, so a wrong run gets the same message in the browser and the shell.
"""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import BaseModel, Field

from backend.errors import UserError
from backend.tasks.registry import get_task

MAX_NEW_TOKENS = 2000  # a Playground request is interactive: longer texts belong in a script
MAX_PROMPT_CHARS = 10_000  # an LSTM reads the whole prompt at once: its logits grow with the prompt
MAX_SEED = 2**31 - 1


class GenerationSettings(BaseModel, frozen=True, extra="forbid"):
    """How to sample a continuation; the same seed, prompt and settings give the same text."""

    max_new_tokens: int = Field(200, ge=1, le=MAX_NEW_TOKENS, description="Tokens to write after the prompt "
                                                                          "(a character model: characters).")
    temperature: float = Field(0.8, ge=0, le=5, description="Below 1: safer, more repetitive; above 1: wilder; "
                                                            "0: always the most likely token.")
    top_k: int = Field(50, ge=0, le=100_000, description="Sample only among the k most likely tokens; 0 = off.")
    top_p: float = Field(0.95, gt=0, le=1, description="Sample only among the most likely tokens that together "
                                                       "reach this probability; 1 = off.")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Same seed, same text; empty = a random seed.")

    def with_seed(self) -> "GenerationSettings":
        """These settings with a concrete seed (a random one when none was given), to report and reuse."""
        if self.seed is not None:
            return self
        return self.model_copy(update={"seed": random.SystemRandom().randrange(MAX_SEED)})


def check_prompt(prompt: str | None) -> str:
    """The prompt as text; an empty one is fine (the model starts a text), an overlong one is refused."""
    prompt = "" if prompt is None else str(prompt)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserError(f"The prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}. "
                        "Keep the last part only: the model reads at most its context window anyway.")
    return prompt


def parse_run_id(run_id) -> int:
    """A run id from a picker or an API call (3, 3.0 or "3"); anything else says what is expected."""
    try:
        number = float(run_id)
    except (TypeError, ValueError):
        number = float("nan")
    if number != number or number != int(number) or number < 1:
        raise UserError(f"{str(run_id)[:50]!r} is not a run id: pick a run from the list, or give its number "
                        "(as `python app.py runs` shows).")
    return int(number)


def language_model_folder(repo, run_id) -> Path:
    """The model folder of a succeeded text-generation run, or a UserError saying which run to pick."""
    if run_id in (None, ""):
        raise UserError("Pick a finished text-generation run first (the Runs tab shows which ones succeeded).")
    run = repo.get_run(parse_run_id(run_id))  # NotFound says "Run N does not exist"
    if get_task(run.task).panel != "generate":
        raise UserError(f"Run #{run.id} is a {run.task} model: it classifies texts and cannot write any. "
                        "Pick a text-generation run (templates lstm-lm, transformer-lm, transformer-lm-finetune).")
    if run.status != "succeeded" or not run.output_dir:
        raise UserError(f"Run #{run.id} is {run.status}; only succeeded runs can generate. "
                        "Pick a run that finished, or wait for this one.")
    return Path(run.output_dir)
