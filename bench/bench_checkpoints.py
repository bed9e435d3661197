"""How long a checkpoint holds up training: published in the background vs on the training thread.

A MiniLM-L6 classifier (the `transformer` template's default) with AdamW state after one step:
each checkpoint is ~270 MB (weights, two Adam moments, scheduler, RNG). `sync` is what the
training thread paid before (write, fsync every file, rename); `background` is what it pays now
(write; fsync/rename/rotation overlap the next steps), and `published` the time until that
checkpoint is on disk all the same. Run: python bench/bench_checkpoints.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup  # noqa: E402

from backend.tasks.text_classification.transformer import DEFAULT_ENCODER, resolve_base_model  # noqa: E402
from backend.training import checkpoints  # noqa: E402
from backend.training.devices import get_accelerator  # noqa: E402


@dataclass
class State:
    global_step: int = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    accelerator = get_accelerator("cpu")
    model = AutoModelForSequenceClassification.from_pretrained(resolve_base_model(DEFAULT_ENCODER), num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, 100)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    loss = model(input_ids=torch.randint(0, 1000, (4, 32)), labels=torch.tensor([0, 1, 0, 1])).loss
    accelerator.backward(loss)
    optimizer.step()  # Adam's moments exist now, as in any real checkpoint
    rows = {"sync": [], "background": [], "published": []}
    with tempfile.TemporaryDirectory() as root:
        for repeat in range(args.repeats):  # interleaved, so load changes hit both alike
            out = Path(root) / f"sync-{repeat}"
            started = time.perf_counter()
            checkpoints.save_checkpoint(accelerator, out, State(global_step=1), None)
            rows["sync"].append(time.perf_counter() - started)
            out = Path(root) / f"background-{repeat}"
            with checkpoints.publishing_in_background(out):
                started = time.perf_counter()
                checkpoints.save_checkpoint(accelerator, out, State(global_step=1), None)
                rows["background"].append(time.perf_counter() - started)
            rows["published"].append(time.perf_counter() - started)
        megabytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    median = {name: statistics.median(values) for name, values in rows.items()}
    print(json.dumps({"checkpoint_mb": round(megabytes), "median_seconds": median, "all_seconds": rows,
                      "training_thread_ratio_sync_over_background": median["sync"] / median["background"]}, indent=2))


if __name__ == "__main__":
    main()
