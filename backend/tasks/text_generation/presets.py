"""Published recipes the Train tab can fill in at once for text generation."""

from __future__ import annotations

from backend.tasks.base import TrainPreset

# nanoGPT's config/train_shakespeare_char.py (its GPU recipe): 6 layers, 6 heads, 384 wide,
# block 256, batch 64, dropout 0.2, learning rate 1e-3 with 100 warm-up iterations of 5,000,
# weight decay 0.1, gradient clipping 1.0, an evaluation every 250 iterations. nanoGPT reports a
# validation loss of 1.4697 nats (2.12 bits/char) after ~3 minutes on one A100.
# bench/bench_shakespeare.py --preset gpu trains exactly these values.
NANOGPT_SHAKESPEARE_GPU = TrainPreset(
    label="GPU: nanoGPT's Shakespeare recipe",
    template="transformer-lm",
    settings={"batch_size": 64, "learning_rate": 1e-3, "weight_decay": 0.1, "warmup_ratio": 0.02,
              "gradient_accumulation_steps": 1, "max_grad_norm": 1.0, "max_steps": 5000, "eval_every_steps": 250,
              "eval_batches": 20},
    template_settings={"num_layers": 6, "num_heads": 6, "hidden_size": 384, "block_size": 256, "dropout": 0.2},
    note="nanoGPT's character-level Shakespeare settings (10.7 M parameters, 5,000 steps of 64 × 256 "
         "characters). Made for a GPU: nanoGPT reaches 2.12 bits/char in about 3 minutes on one A100; "
         "on a CPU the same run takes many hours, so set a time budget there.",
)
