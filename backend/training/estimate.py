"""Before launch: parameter count, memory and time per epoch, from a few measured training steps.

Classifiers and language models alike: a language model's steps are random windows of
`block_size` tokens, so its "epoch" is one pass over the training tokens.

The model is built as the trainer would build it (its tokenizer trained on a sample of the
data), and four optimizer steps on real batches of the dataset are timed on this process's
device. The first step pays one-off costs (allocations, kernel selection); the median of the
other three is the one we scale, and their spread (with the machine's load) is the range shown.
Memory is arithmetic plus a measurement, and labelled an estimate: weights, gradients and
AdamW's two moments take 4 bytes each per trainable parameter (fp32), and activations are the
outputs of every layer on the longest batch, which autograd keeps for the backward pass. On
CUDA the measured peak allocation is reported instead when it is larger.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backend.config import TrainConfig
from backend.data.store import load_split
from backend.errors import UserError
from backend.tasks.registry import get_task
from backend.training.core import build_optimizer, clamp_length
from storage.records import DatasetRecord

SAMPLE_ROWS = 2000  # enough text to train a representative vocabulary quickly
SAMPLE_CHARS = 200_000  # the same for a language model's corpus
BYTES_PER_VALUE = 4  # fp32
TIMED_STEPS = 3  # typical steps timed after the warm-up step: their spread is the estimate's range


@dataclass(frozen=True)
class Estimate:
    """What the Train tab shows before launch (sizes in bytes, times in seconds)."""

    parameters: int
    trainable_parameters: int
    weights_bytes: int          # all parameters
    training_state_bytes: int   # gradients + two AdamW moments of the trainable parameters
    activation_bytes: int       # layer outputs kept for the backward pass, longest batch
    memory_bytes: int           # the total to plan for
    measured_peak: bool         # memory_bytes is the device's measured peak (CUDA only)
    seconds_per_step: float
    steps_per_epoch: int
    seconds_per_epoch: float
    total_steps: int            # the whole run: max_steps if set, else epochs x steps_per_epoch
    seconds_total: float        # training steps only (evaluation and checkpoints come on top)
    device: str
    # The timed steps' fastest and slowest (per optimizer step): on a shared machine one step says
    # little, and a run's speed follows the load, which may change after the estimate.
    seconds_per_step_low: float = 0.0
    seconds_per_step_high: float = 0.0
    load_average: float | None = None  # of the last minute, when the estimate ran (None: unknown)
    cpu_count: int = 1
    # Runs that are not optimizer steps (gbdt's boosting rounds) name their unit, their set-up
    # (preprocessing, binning) and how their memory was worked out; the Train tab shows these words.
    step_name: str = "step"
    timed_steps: int = TIMED_STEPS
    setup_seconds: float = 0.0
    memory_note: str = ""

    def as_dict(self) -> dict:
        """Plain dict, for JSON output."""
        return asdict(self)


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if hasattr(value, "to_tuple"):  # transformers ModelOutput
        return _tensor_bytes(value.to_tuple())
    return 0


class _ActivationMeter:
    """Sums the output sizes of every leaf module during one forward pass."""

    def __init__(self, model: nn.Module) -> None:
        self.bytes = 0
        self._handles = [m.register_forward_hook(self._hook) for m in model.modules() if not list(m.children())]

    def _hook(self, _module, _inputs, output) -> None:
        self.bytes += _tensor_bytes(output)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def estimate(config: TrainConfig, dataset: DatasetRecord) -> Estimate:
    """Build the run's model, time a few optimizer steps on real batches, scale to an epoch (as its task trains)."""
    return get_task(config.task).estimate(config, dataset)


def estimate_classifier(config: TrainConfig, dataset: DatasetRecord) -> Estimate:
    """A classifier: a step on the longest batch, then typical batches of the training texts."""
    from backend.tasks.text_classification.templates import build_model, logits_of
    from backend.tasks.text_classification.tokenization import encode, pad_batch
    from backend.training.devices import default_device
    from backend.training.epochs import ADAM_BETAS

    frame = load_split(dataset, "train")
    texts = frame["text"].astype(str).tolist()
    if not texts:
        raise UserError(f'Dataset "{dataset.name}" has no training rows. Upload it again with more data.')
    model, tokenizer = build_model(config, list(dataset.labels), texts[:SAMPLE_ROWS])
    device = default_device()
    max_length = clamp_length(config.max_length, tokenizer.model_max_length)
    # The longest texts make the slowest, largest batch: the memory bound. A median batch is the
    # typical step, and the one whose time we scale to an epoch.
    longest = sorted(texts, key=len, reverse=True)[: config.batch_size]
    middle = len(texts) // 2
    typical = sorted(texts, key=len)[middle: middle + config.batch_size] or longest

    def loss_of(batch_texts: list[str]) -> torch.Tensor:
        rows = encode(tokenizer, batch_texts, max_length)
        batch = {k: v.to(device) for k, v in pad_batch(rows, tokenizer.pad_token_id or 0).items()}
        return F.cross_entropy(logits_of(model, batch).float(), torch.zeros(len(rows), dtype=torch.long, device=device))

    activation_bytes, seconds = _time_steps(model, config, device,
                                            lambda step: loss_of(longest if step == 0 else typical), ADAM_BETAS)
    steps_per_epoch = math.ceil(len(texts) / config.batch_size / config.gradient_accumulation_steps)
    return _summarise(config, device, model, activation_bytes, seconds, steps_per_epoch)


def _time_steps(model: nn.Module, config: TrainConfig, device: torch.device,
                loss_of: Callable[[int], torch.Tensor], betas: tuple[float, float]) -> tuple[int, list[float]]:
    """(activation bytes of step 0, seconds of each later step) of 1 + TIMED_STEPS steps of the
    training's own optimizer (core.build_optimizer) on `loss_of(step)`.

    The first step pays one-off costs (allocations, kernel selection) and is the one whose layer
    outputs are measured; the later ones are typical steps.
    """
    model.to(device).train()
    optimizer = build_optimizer(model, config, device, betas)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    activation_bytes, seconds = 0, []
    for step in range(1 + TIMED_STEPS):
        meter = _ActivationMeter(model) if step == 0 else None
        started = time.perf_counter()
        loss = loss_of(step)
        if meter is not None:
            activation_bytes = meter.bytes
            meter.close()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step > 0:
            seconds.append(time.perf_counter() - started)
    return activation_bytes, seconds


def _summarise(config: TrainConfig, device: torch.device, model: nn.Module, activation_bytes: int,
               step_seconds: list[float], steps_per_epoch: int) -> Estimate:
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights = parameters * BYTES_PER_VALUE
    training_state = trainable * BYTES_PER_VALUE * 3
    memory = weights + training_state + activation_bytes
    measured = False
    if device.type == "cuda" and torch.cuda.max_memory_allocated(device) > memory:
        memory, measured = int(torch.cuda.max_memory_allocated(device)), True
    per_step = statistics.median(step_seconds) * config.gradient_accumulation_steps
    low, high = (min(step_seconds) * config.gradient_accumulation_steps,
                 max(step_seconds) * config.gradient_accumulation_steps)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        load = None
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    return Estimate(parameters=parameters, trainable_parameters=trainable, weights_bytes=weights,
                    training_state_bytes=training_state, activation_bytes=int(activation_bytes),
                    memory_bytes=int(memory), measured_peak=measured, seconds_per_step=per_step,
                    steps_per_epoch=steps_per_epoch, seconds_per_epoch=per_step * steps_per_epoch,
                    total_steps=total_steps, seconds_total=per_step * total_steps, device=str(device),
                    seconds_per_step_low=low, seconds_per_step_high=high, load_average=load,
                    cpu_count=os.cpu_count() or 1)


def estimate_language_model(config: TrainConfig, dataset: DatasetRecord) -> Estimate:
    """A language model, built on a sample of the text: a few steps on random windows."""
    from backend.tasks.text_generation.batching import read_text, sample_batch
    from backend.tasks.text_generation.templates import build_lm, lm_logits
    from backend.tasks.text_generation.tokenization import encode_corpus
    from backend.training.devices import default_device
    from backend.training.windows import ADAM_BETAS

    text = read_text(dataset, "train")
    sample = text[:SAMPLE_CHARS]
    model, tokenizer, block_size = build_lm(config, sample)
    ids, _ = encode_corpus(tokenizer, sample)
    if len(ids) < 2:
        raise UserError(f'Dataset "{dataset.name}" has almost no training text. Upload more text.')
    block_size = clamp_length(block_size, len(ids) - 1)
    # Tokens of the whole text, scaled from the sample (tokenizing all of it could take minutes).
    total_tokens = len(ids) * max(1.0, len(text) / max(len(sample), 1))
    device = default_device()
    corpus = torch.from_numpy(ids)

    def loss_of(step: int) -> torch.Tensor:  # every window has block_size tokens: any steps will do
        inputs, targets = (t.to(device) for t in sample_batch(corpus, block_size, config.batch_size, config.seed, step))
        logits = lm_logits(model, inputs)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))

    activation_bytes, seconds = _time_steps(model, config, device, loss_of, ADAM_BETAS)
    tokens_per_step = config.batch_size * block_size * config.gradient_accumulation_steps
    steps_per_epoch = max(1, math.ceil(total_tokens / tokens_per_step))
    return _summarise(config, device, model, activation_bytes, seconds, steps_per_epoch)
