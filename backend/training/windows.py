"""The windows strategy of the training core: a language model, random windows of a token stream.

nanoGPT's recipe (train.py, get_batch): the training text becomes one long array of token ids;
each optimizer step samples `batch_size` random windows of block_size + 1 tokens (inputs and the
tokens that follow them). Windows are drawn from a generator seeded by (seed, step), so a
resumed run draws exactly the batches the uninterrupted run would have. Evaluation runs on a
fixed set of blocks spread evenly over the validation text (`eval_batches` x `batch_size`), so
every evaluation of a run scores the same tokens.

Metrics: loss (mean token NLL in nats), perplexity (e^loss) and bits per character (total NLL
/ ln 2 / characters the scored tokens cover), which compares runs with different tokenizers.
The best model is the one with the lowest validation loss.

The learning rate warms up, then follows a cosine down to a tenth of its peak. With a time
budget, "how far along" is the larger of steps done and time spent, so a run cut short by its
budget still ends at a low learning rate.

Run by `backend.training.core.run_strategy` (resume, final evaluation, finish), from
`backend.training.run.train` (which holds the training lock and picks the accelerator); lands in
`output_dir` the same files as a classifier run, plus generation_config.json for Transformer models.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from tokenizers import Tokenizer
from torch import nn
from transformers import PreTrainedTokenizerBase

from backend.config import TrainConfig
from backend.errors import UserError
from backend.settings import Settings
from backend.tasks.text_generation.batching import (EvalBlocks, encoded_text, make_eval_blocks,  # noqa: F401
                                                    read_text, sample_batch)
from backend.tasks.text_generation.metrics import bits_per_character, lm_metrics  # noqa: F401 (re-exported)
from backend.tasks.text_generation.generator import Generator
from backend.tasks.text_generation.tokenization import wrap_lm_tokenizer
from backend.tasks.text_generation.templates import OWN_TOKENIZER_LM_KINDS, build_lm, lm_logits, save_lm
from backend.tasks.text_generation.lstm_lm import LstmLanguageModel, load_lstm_lm_weights
from backend.training.core import (LoopRun, LoopState, Meter, ProgressFn, TrainResult, best_weights, build_optimizer,
                                   clamp_length, compiled, end_of_step, keep_if_best, patience_spent, plain_model,
                                   position, restore_weights, run_strategy, save_run_checkpoint)
from storage.records import DatasetRecord

log = logging.getLogger(__name__)

MIN_LEARNING_RATE_SHARE = 0.1  # the cosine ends at a tenth of the peak (nanoGPT: min_lr = lr / 10)
ADAM_BETAS = (0.9, 0.99)  # nanoGPT's beta2 for small data: steadier early steps


@dataclass
class LmState(LoopState):
    """Where language-model training stands (best_score: the lowest validation loss); saved with every checkpoint."""


@dataclass(kw_only=True)
class _LmRun(LoopRun):
    """Everything the loop needs, built once by `_setup`."""

    tokenizer: PreTrainedTokenizerBase
    train_ids: torch.Tensor   # (N,) int64 on the CPU: the whole training text
    eval_blocks: EvalBlocks
    block_size: int
    own_tokenizer: bool
    last_train_loss: float | None = None


def evaluate_lm(model: nn.Module, blocks: EvalBlocks, batch_size: int, device: torch.device) -> dict[str, float]:
    """Loss, perplexity and bits per character of `model` on the validation blocks."""
    model.eval()
    nll = torch.zeros((), device=device, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, len(blocks.inputs), batch_size):
            inputs = blocks.inputs[start:start + batch_size].to(device)
            targets = blocks.targets[start:start + batch_size].to(device)
            logits = lm_logits(model, inputs)                                  # (B, T, V)
            nll += F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum").double()
    model.train()
    return lm_metrics(nll.item(), blocks.targets.numel(), blocks.characters)


def learning_rate_at(config: TrainConfig, progress: float) -> float:
    """Linear warm-up over `warmup_ratio` of the run, then a cosine to a tenth of the peak."""
    peak, warmup = config.learning_rate, config.warmup_ratio
    if progress < warmup:
        return peak * progress / warmup
    decayed = min((progress - warmup) / max(1.0 - warmup, 1e-9), 1.0)
    low = peak * MIN_LEARNING_RATE_SHARE
    return low + 0.5 * (1.0 + math.cos(math.pi * decayed)) * (peak - low)


# --- the run ----------------------------------------------------------------------------------

def train_lm(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, on_progress: ProgressFn,
             should_stop: Callable[[], bool], resume: bool, accelerator: Accelerator,
             settings: Settings | None = None) -> TrainResult:
    """Train `config.template` (a language model) on `dataset`; the best model lands in `output_dir`."""
    return run_strategy(WINDOWS, config, dataset, output_dir, on_progress, should_stop, resume, accelerator,
                        settings)


def _setup(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, accelerator: Accelerator,
           checkpoint: Path | None, settings: Settings) -> _LmRun:
    """Read and tokenize the text, build the model, fixed validation blocks and the optimizer; prepare them."""
    set_seed(config.seed)  # python, numpy, torch (+cuda): weights and dropout repeat
    train_text, val_text = read_text(dataset, "train"), read_text(dataset, "validation")
    kind = config.template.kind
    saved_tokenizer = None
    if checkpoint is not None and kind in OWN_TOKENIZER_LM_KINDS:  # the vocabulary must come back identical
        saved_tokenizer = wrap_lm_tokenizer(Tokenizer.from_file(str(checkpoint / "tokenizer.json")),
                                            config.template.block_size)
    model, tokenizer, block_size = build_lm(config, train_text, saved_tokenizer)
    # Cached per dataset and tokenizer: a second run or a resume reads the ids back.
    train_ids, _ = encoded_text(dataset, "train", train_text, tokenizer)
    val_ids, val_characters = encoded_text(dataset, "validation", val_text, tokenizer)
    if len(train_ids) < 2 or len(val_ids) < 2:
        raise UserError(f"Dataset '{dataset.name}' needs at least two tokens of text in both its training "
                        f"and validation parts (it has {len(train_ids)} and {len(val_ids)}). Upload more text.")
    vocab_size = model.get_input_embeddings().num_embeddings if not isinstance(model, LstmLanguageModel) \
        else model.embedding.num_embeddings
    top = int(max(train_ids.max(), val_ids.max()))
    if top >= vocab_size:  # on CUDA an out-of-range id is a device assert that poisons the process
        raise UserError(f"The tokenizer produced token id {top} but the model's vocabulary has {vocab_size} "
                        "entries: the tokenizer and the weights do not belong together. Pick a base model "
                        "folder whose tokenizer matches its weights.")
    block_size = clamp_length(block_size, len(train_ids) - 1)
    eval_blocks = make_eval_blocks(val_ids, val_characters, block_size, config.eval_batches * config.batch_size)

    optimizer = build_optimizer(model, config, accelerator.device, ADAM_BETAS)
    tokens_per_step = config.batch_size * block_size * config.gradient_accumulation_steps
    steps_per_epoch = max(1, math.ceil(len(train_ids) / tokens_per_step))
    total_steps = config.max_steps or steps_per_epoch * config.epochs

    accelerator.gradient_accumulation_steps = config.gradient_accumulation_steps  # backward divides by it
    # We accumulate by hand (no prepared dataloader): the optimizer must step and zero its
    # gradients whenever we call it, whatever an earlier run left in Accelerate's shared state.
    accelerator.gradient_state._set_sync_gradients(True)
    model, optimizer = accelerator.prepare(model, optimizer)
    model = compiled(model, config)
    log.info("training %s on %d tokens (vocabulary %d, block %d, %d steps) on %s", kind, len(train_ids),
             vocab_size, block_size, total_steps, accelerator.device)
    return _LmRun(config=config, accelerator=accelerator, model=model, tokenizer=tokenizer, optimizer=optimizer,
                  train_ids=torch.from_numpy(train_ids), eval_blocks=eval_blocks, block_size=block_size,
                  output_dir=output_dir, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                  own_tokenizer=kind in OWN_TOKENIZER_LM_KINDS)


@contextlib.contextmanager
def _recurrence_threads(run: _LmRun) -> Iterator[None]:
    """One torch thread while an LSTM trains on the CPU; the previous count back afterwards.

    The recurrence is hundreds of tiny ops per step (one per time step and gate), each a parallel
    region whose threads meet at a barrier: a second thread gains little, and when other processes
    share the cores a barrier waits for a descheduled thread. On the 2-core bench machine under a
    load of 3, two threads trained 28x slower than one (49 vs 1,366 steps in 2 minutes).
    """
    lstm_on_cpu = run.accelerator.device.type == "cpu" and isinstance(
        plain_model(run), LstmLanguageModel)
    before = torch.get_num_threads()
    if lstm_on_cpu:
        torch.set_num_threads(1)  # process-wide: inference running beside the training uses one thread too
    try:
        yield
    finally:
        if lstm_on_cpu:
            torch.set_num_threads(before)


def _progress(run: _LmRun, meter: Meter, step: int) -> float:
    """Share of the run done: steps, or time when a budget runs out first."""
    done, budget = step / run.total_steps, meter.clock.budget
    return min(max(done, meter.clock.spent() / budget) if budget else done, 1.0)


def _training_values(run: _LmRun, state: LmState, meter: Meter) -> dict[str, float]:
    """Progress values for on_progress; starts a new window."""
    run.last_train_loss, blocks_per_second = meter.take()
    return {"train_loss": run.last_train_loss, "train_perplexity": math.exp(min(run.last_train_loss, 700.0)),
            "learning_rate": float(run.optimizer.param_groups[0]["lr"]),
            "samples_per_second": blocks_per_second, "tokens_per_second": blocks_per_second * run.block_size,
            "eta_seconds": meter.clock.eta(state.global_step, run.total_steps),
            **position(state, run.steps_per_epoch, run.total_steps, _progress(run, meter, state.global_step))}


def _fit(run: _LmRun, state: LmState, on_progress: ProgressFn, should_stop: Callable[[], bool]) -> str:
    """The training loop; returns why it ended: completed, early_stopping or time_budget."""
    accelerator, config, model = run.accelerator, run.config, run.model
    meter = Meter(accelerator.device, state, config.time_budget_seconds)
    tokenizer = run.tokenizer if run.own_tokenizer else None
    eval_every = config.eval_every_steps or run.steps_per_epoch  # 0 = once per epoch of tokens
    model.train()
    while state.global_step < run.total_steps:
        learning_rate = learning_rate_at(config, _progress(run, meter, state.global_step + 1))
        for group in run.optimizer.param_groups:
            group["lr"] = learning_rate
        for micro_batch in range(config.gradient_accumulation_steps):
            inputs, targets = sample_batch(run.train_ids, run.block_size, config.batch_size, config.seed,
                                           state.global_step, micro_batch)
            inputs, targets = inputs.to(accelerator.device), targets.to(accelerator.device)
            logits = lm_logits(model, inputs)                                       # (B, T, V)
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
            accelerator.backward(loss)                                              # divides by accumulation
            meter.add(loss, config.batch_size, weight=1)  # the mean of the micro-batches' losses
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
        state.global_step += 1
        if state.global_step % config.log_every_steps == 0:
            on_progress(state.global_step, _training_values(run, state, meter))
        if state.global_step % eval_every == 0 and state.global_step < run.total_steps:
            _evaluate(run, state, on_progress, _progress(run, meter, state.global_step))
            save_run_checkpoint(run, state, meter, tokenizer)
            if patience_spent(config, state.evals_without_improvement):
                return "early_stopping"
        stop_reason = end_of_step(run, state, meter, should_stop, tokenizer)
        if stop_reason:
            return stop_reason
    return "completed"


def _evaluate(run: _LmRun, state: LmState, on_progress: ProgressFn, progress: float | None = None) -> None:
    """Evaluate, report, and save the model when its validation loss beats the best so far."""
    with run.phases.measure("evaluation"):
        metrics = evaluate_lm(run.model, run.eval_blocks, run.config.batch_size, run.accelerator.device)
    if run.last_train_loss is not None:
        metrics["train_loss"] = run.last_train_loss
        metrics["train_perplexity"] = math.exp(min(run.last_train_loss, 700.0))
    metrics["step"] = state.global_step
    # The best by validation loss (the task's best_metric) is kept and saved.
    keep_if_best(run, state, metrics, lambda model, folder: save_lm(model, run.tokenizer, run.block_size, folder))
    if progress is None:  # the final evaluation: the run is done
        progress = 1.0
    on_progress(state.global_step, {
        "eval_loss": metrics["loss"], "eval_perplexity": metrics["perplexity"],
        "eval_bits_per_char": metrics["bits_per_char"],
        **position(state, run.steps_per_epoch, run.total_steps, progress)})


def _restore_best(model: nn.Module, run: _LmRun) -> None:
    """Put the best weights back into the in-memory model (from memory, or from our saved file)."""
    weights = best_weights(run)
    if isinstance(model, LstmLanguageModel):
        load_lstm_lm_weights(model, weights)
        return
    restore_weights(model, weights, tied=("lm_head",))  # the head is tied to the embedding


def _context_length(model: nn.Module, block_size: int) -> int:
    # A Transformer sees at most its position embeddings; an LSTM carries its state, so the
    # block size only bounds how much prompt it re-reads.
    positions = getattr(getattr(model, "config", None), "n_positions", None) or \
        getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(positions) if positions else block_size


class _Windows:
    """The strategy `run_strategy` drives: random windows of the token stream, by optimizer steps."""

    State = LmState
    setup = staticmethod(_setup)
    fit = staticmethod(_fit)
    evaluate = staticmethod(_evaluate)
    restore_best = staticmethod(_restore_best)
    context = staticmethod(_recurrence_threads)

    @staticmethod
    def served(model: nn.Module, run: _LmRun) -> dict:
        return {"generator": Generator(model, run.tokenizer, _context_length(model, run.block_size),
                                       run.accelerator.device)}


WINDOWS = _Windows()
