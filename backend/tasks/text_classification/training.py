"""How a text classifier trains: its part of the epochs strategy (backend.training.epochs).

The setup reads and tokenizes the splits (the learned vocabulary and the ids come from the dataset's
token cache after the first run), builds the model and a length-grouped dataloader; `TextClassifierTask` tells the shared loop how a batch becomes a loss,
how the model is scored, saved and served. Checkpoints carry the run's learned tokenizer (lstm,
transformer-scratch), so a resumed run gets the identical vocabulary back (and the same cached ids).

What lands in `output_dir`: model.safetensors, config.json and the tokenizer files (the best model
by validation macro F1), beside the files every run writes (backend.training.epochs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from backend.config import TrainConfig
from backend.errors import UserError
from backend.settings import Settings
from backend.tasks.text_classification.batching import (Collator, EncodedDataset, LengthGroupedSampler, check_ids,
                                                        eval_loader, read_split)
from backend.tasks.text_classification.cached_tokens import encoded_split, learned_tokenizer
from backend.tasks.text_classification.metrics import classification_metrics, progress_values
from backend.tasks.text_classification.predictor import Predictor
from backend.tasks.text_classification.templates import (OWN_TOKENIZER_KINDS, build_model, logits_of, num_labels_of,
                                                        save_model, vocab_size_of)
from backend.tasks.text_classification.tokenization import TokenizerKind, load_tokenizer_file
from backend.training.core import ProgressFn, TrainResult, best_weights_file, clamp_length, run_strategy
from backend.training.epochs import EpochRun, Epochs, prepare_run
from storage.records import DatasetRecord

log = logging.getLogger(__name__)


def train_classifier(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, on_progress: ProgressFn,
                     should_stop: Callable[[], bool], resume: bool, accelerator: Accelerator,
                     settings: Settings | None = None) -> TrainResult:
    """Train `config.template` (a classifier) on `dataset`; the best model (macro F1) lands in `output_dir`."""
    return run_strategy(TEXT_EPOCHS, config, dataset, output_dir, on_progress, should_stop, resume, accelerator,
                        settings)


@dataclass
class TextClassifierTask:
    """The text classifier's answers to the epochs loop (backend.training.epochs.EpochTask)."""

    tokenizer: PreTrainedTokenizerBase
    labels: list[str]
    max_length: int
    checkpoint_tokenizer: PreTrainedTokenizerBase | None  # a learned vocabulary must come back on resume

    def batch_loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, int]:
        logits = logits_of(model, batch)                                      # (B, C)
        return F.cross_entropy(logits.float(), batch["labels"]), len(batch["labels"])

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict:
        return evaluate(model, loader, self.labels, device)

    def progress(self, metrics: dict) -> dict[str, float]:
        return progress_values(metrics)

    def save(self, model: nn.Module, folder: Path) -> None:
        save_model(model, self.tokenizer, self.labels, self.max_length, folder)

    def saved_weights(self, output_dir: Path) -> dict[str, torch.Tensor]:
        return best_weights_file(output_dir)

    def served(self, model: nn.Module, run: EpochRun) -> dict:
        return {"predictor": Predictor(model, self.tokenizer, self.labels, self.max_length, run.accelerator.device)}


def setup(config: TrainConfig, dataset: DatasetRecord, output_dir: Path, accelerator: Accelerator,
          checkpoint: Path | None, settings: Settings) -> EpochRun:
    """Read the splits, build model and tokenizer, dataloaders, optimizer and schedule; prepare them."""
    labels = list(dataset.labels)
    if len(labels) < 2:
        raise UserError(f"Dataset '{dataset.name}' has {len(labels)} class(es); a classifier needs at least 2. "
                        "Pick another label column or add examples of other classes.")
    set_seed(config.seed)  # python, numpy, torch (+cuda): weights, dropout and shuffling repeat
    train_texts, train_labels = read_split(dataset, "train", labels)
    val_texts, val_labels = read_split(dataset, "validation", labels)
    if not train_texts or not val_texts:
        raise UserError(f"Dataset '{dataset.name}' needs rows in both its training and validation splits; "
                        "upload it again with a validation share above 0.")
    own_tokenizer = config.template.kind in OWN_TOKENIZER_KINDS
    saved_tokenizer = None
    if checkpoint is not None and own_tokenizer:
        saved_tokenizer = load_tokenizer_file(str(checkpoint / "tokenizer.json"), config.max_length)
    elif own_tokenizer and getattr(config.template, "tokenizer", None) in get_args(TokenizerKind):
        # Learned once per dataset, kind and size (token cache); an lstm on "pretrained" learns nothing.
        saved_tokenizer = learned_tokenizer(dataset, train_texts, config.template.tokenizer,
                                            config.template.vocab_size, config.max_length)
    model, tokenizer = build_model(config, labels, train_texts, saved_tokenizer)
    max_length = clamp_length(config.max_length, tokenizer.model_max_length)
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # Cached per dataset, tokenizer and length: a second run or a resume reads the ids back.
    train_rows = encoded_split(dataset, "train", train_texts, tokenizer, max_length)
    val_rows = encoded_split(dataset, "validation", val_texts, tokenizer, max_length)
    for rows, label_ids, split in ((train_rows, train_labels, "training"), (val_rows, val_labels, "validation")):
        check_ids(rows, label_ids, vocab_size_of(model), num_labels_of(model), split)

    sampler = LengthGroupedSampler([len(row) for row in train_rows], config.batch_size, config.seed)
    # A DataLoader draws a seed from the global RNG each time it is iterated, unless it has its own
    # generator; with one, dropout draws the same numbers whether or not a run was resumed.
    train_loader = DataLoader(EncodedDataset(train_rows, train_labels), batch_sampler=sampler,
                              collate_fn=Collator(pad_token_id), generator=torch.Generator().manual_seed(config.seed))
    validation = eval_loader(val_rows, val_labels, config.batch_size * 2, pad_token_id)
    task = TextClassifierTask(tokenizer, labels, max_length, tokenizer if own_tokenizer else None)
    return prepare_run(config, accelerator, model, train_loader, validation, task, output_dir,
                       f"{len(train_rows)} rows")


def evaluate(model: nn.Module, loader: DataLoader, labels: Sequence[str], device: torch.device) -> dict:
    """Loss and classification metrics of `model` over `loader`."""
    model.eval()
    loss_sum, true_ids, predicted_ids = 0.0, [], []
    with torch.no_grad():
        for batch in loader:
            batch = {key: value.to(device) for key, value in batch.items()}
            logits = logits_of(model, batch)                                  # (B, C)
            loss_sum += F.cross_entropy(logits.float(), batch["labels"], reduction="sum").item()
            predicted_ids.extend(logits.argmax(dim=-1).tolist())
            true_ids.extend(batch["labels"].tolist())
    return classification_metrics(true_ids, predicted_ids, labels, loss=loss_sum / max(len(true_ids), 1))


TEXT_EPOCHS = Epochs(setup)
