"""Batches for the classifier: token ids in memory, dynamic padding, length-grouped batches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from backend.data.store import load_split
from backend.errors import UserError
from backend.tasks.text_classification.tokenization import pad_batch
from storage.records import DatasetRecord

GROUP_CHUNK_BATCHES = 50  # length grouping sorts chunks of 50 batches: similar lengths, still shuffled


def read_split(dataset: DatasetRecord, split: str, labels: Sequence[str]) -> tuple[list[str], list[int]]:
    """Texts and label ids of one stored split (label names mapped through `labels`)."""
    frame = load_split(dataset, split)
    if "text" not in frame or "label" not in frame:
        raise UserError(f"The {split} split of dataset '{dataset.name}' has no text/label columns; "
                        "upload it again as a text-classification dataset.")
    label_ids = {label: i for i, label in enumerate(labels)}
    names = frame["label"].astype(str).tolist()
    unknown = sorted(set(names) - label_ids.keys())
    if unknown:
        raise UserError(f"The {split} split has labels the dataset does not list ({', '.join(unknown[:5])}). "
                        "Upload the dataset again so its label list is rebuilt.")
    texts = ["" if text is None or text != text else str(text) for text in frame["text"].tolist()]  # NaN != NaN
    return texts, [label_ids[name] for name in names]


def check_ids(rows: Sequence[Sequence[int]], label_ids: Sequence[int], vocab_size: int, num_labels: int,
              split: str = "training") -> None:
    """Raise UserError if a token or label id would index past the model's embedding or head."""
    # On CUDA an out-of-range index is a device-side assert that poisons the whole process, so
    # check on the CPU before anything reaches the device.
    bad_label = next((label for label in label_ids if not 0 <= label < num_labels), None)
    if bad_label is not None:
        raise UserError(f"The {split} split has label id {bad_label} but the model has {num_labels} classes. "
                        "Upload the dataset again so labels and classes match.")
    top = max((max(row) for row in rows if row), default=0)
    low = min((min(row) for row in rows if row), default=0)
    if top >= vocab_size or low < 0:
        raise UserError(f"The tokenizer produced token id {top if top >= vocab_size else low} but the model's "
                        f"vocabulary has {vocab_size} entries: the tokenizer and the weights do not belong together. "
                        "Pick a base model folder whose tokenizer matches its weights.")


class EncodedDataset(Dataset):
    """(token ids, label id) pairs, already tokenized and truncated."""

    def __init__(self, rows: list[list[int]], label_ids: list[int]) -> None:
        self.rows, self.label_ids = rows, label_ids

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.rows[index], self.label_ids[index]


@dataclass
class Collator:
    """Pads each batch to its own longest row (never to max_length) and adds `labels` (B,)."""

    pad_token_id: int

    def __call__(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        rows, labels = zip(*items)
        batch = pad_batch(rows, self.pad_token_id)
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
        return batch


class LengthGroupedSampler:
    """Batches of similar lengths in a seeded random order; `set_epoch` gives each epoch its own order."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Pick the epoch whose batch order `__iter__` yields (accelerate calls this too)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        chunk = self.batch_size * GROUP_CHUNK_BATCHES
        batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part[np.argsort(-self.lengths[part], kind="stable")]  # longest first within the chunk
            batches.extend(part[i:i + self.batch_size].tolist() for i in range(0, len(part), self.batch_size))
        for index in rng.permutation(len(batches)):
            yield batches[index]


def eval_loader(rows: list[list[int]], label_ids: list[int], batch_size: int, pad_token_id: int) -> DataLoader:
    """Evaluation batches in a fixed order, sorted by length so they hold little padding."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # fixed order: little padding
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return DataLoader(EncodedDataset(rows, label_ids), batch_sampler=batches, collate_fn=Collator(pad_token_id),
                      generator=torch.Generator())  # keep the global RNG untouched (see the trainer)

