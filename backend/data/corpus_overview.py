"""What a person wants to know about a text-generation corpus: size, vocabulary, split and a sample.

The stored corpus is one text per split, so row counts and a per-row length say nothing here.
"""

from __future__ import annotations

import numpy as np

from backend.data.store import load_split
from storage.records import DatasetRecord

SAMPLE_CHARS = 300


def corpus_overview(record: DatasetRecord) -> dict:
    """Characters, lines, distinct characters and words, the split in characters, a sample, line lengths."""
    train = "".join(load_split(record, "train")["text"].astype(str))
    validation = "".join(load_split(record, "validation")["text"].astype(str))
    lines = train.splitlines() + validation.splitlines()  # each split was cut at a line break
    words = train.split() + validation.split()
    return {"characters": len(train) + len(validation), "train_characters": len(train),
            "validation_characters": len(validation), "lines": len(lines),
            "distinct_characters": len(set(train) | set(validation)), "distinct_words": len(set(words)),
            "words": len(words), "sample": train[:SAMPLE_CHARS],
            "line_lengths": np.fromiter((len(line) for line in lines), dtype=np.int64, count=len(lines)).tolist()}
