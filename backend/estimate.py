"""Before launch: parameter count, memory and time per epoch, from two measured training steps.

Nothing here is a guess from a table: the model is built as the trainer would build it, and two
optimizer steps on real batches of the dataset are timed on this process's device. The first
step pays one-off costs (allocations, kernel selection), so the second one is the one we scale.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from backend.config import TrainConfig
from backend.errors import UserError
from backend.data import load_split
from storage.records import DatasetRecord

SAMPLE_ROWS = 2000  # enough text to train a representative vocabulary quickly
BYTES_PER_PARAM_TRAINING = 16  # fp32 weights + gradients + two AdamW moments


@dataclass(frozen=True)
class Estimate:
    """What the Train tab shows before launch."""

    parameters: int
    trainable_parameters: int
    memory_mb: float           # weights, gradients, optimizer state and measured/estimated activations
    seconds_per_step: float
    steps_per_epoch: int
    seconds_per_epoch: float
    device: str

    def as_dict(self) -> dict:
        return asdict(self)


def estimate(config: TrainConfig, dataset: DatasetRecord) -> Estimate:
    """Build the run's model, time two optimizer steps on real batches, scale to an epoch."""
    if config.task != "text-classification":
        raise UserError("Estimates are available for text classification runs only; launch the run and "
                        "watch its ETA in the Runs tab.")
    from backend.templates import build_model, logits_of
    from backend.tokenization import encode, pad_batch
    from backend.trainer import default_device

    frame = load_split(dataset, "train")
    texts = frame["text"].astype(str).tolist()
    model, tokenizer = build_model(config, list(dataset.labels), texts[:SAMPLE_ROWS])
    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    device = default_device()
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    max_length = int(min(config.max_length, tokenizer.model_max_length))
    # The longest texts make the slowest, largest batch: a fair upper bound for the epoch.
    longest = sorted(texts, key=len, reverse=True)[: config.batch_size]
    rows = encode(tokenizer, longest, max_length)
    typical = sorted(texts, key=len)[len(texts) // 2: len(texts) // 2 + config.batch_size] or longest
    typical_rows = encode(tokenizer, typical, max_length)
    label_ids = torch.zeros(len(rows), dtype=torch.long, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings = []
    for batch_rows in (rows, typical_rows):
        batch = {k: v.to(device) for k, v in pad_batch(batch_rows, tokenizer.pad_token_id or 0).items()}
        started = time.perf_counter()
        loss = F.cross_entropy(logits_of(model, batch).float(), label_ids[: len(batch_rows)])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        timings.append(time.perf_counter() - started)
    if device.type == "cuda":
        memory_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        memory_mb = trainable * BYTES_PER_PARAM_TRAINING / 2**20 + (parameters - trainable) * 4 / 2**20
    steps_per_epoch = math.ceil(len(texts) / config.batch_size / config.gradient_accumulation_steps)
    per_step = timings[-1] * config.gradient_accumulation_steps
    return Estimate(parameters=parameters, trainable_parameters=trainable, memory_mb=round(memory_mb, 1),
                    seconds_per_step=per_step, steps_per_epoch=steps_per_epoch,
                    seconds_per_epoch=per_step * steps_per_epoch, device=str(device))
