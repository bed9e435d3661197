"""An LSTM language model trained from scratch, its output layer tied to the input embedding.

    input_ids (B, T) -> embedding (B, T, H) -> dropout -> LSTM x num_layers (B, T, H)
                     -> dropout -> linear with the embedding's weights (B, T, V)

Tying (Press & Wolf 2017, Inan et al. 2017) saves V x H parameters and helps small models; it
needs the embedding as wide as the LSTM state, hence one `hidden_size`. Generation carries the
LSTM state (h, c) from token to token, so each new token costs one step. Saved files:
`model.safetensors` (the tied output weight is stored once, as the embedding), `config.json`
(the template fields + vocab and block size) and the tokenizer files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from backend.tasks.text_generation.configs import LstmLmTemplate

MODEL_KIND = "modelsmith-lstm-lm"  # marks our config.json apart from a Hugging Face one
TIED_KEY = "head.weight"           # the same tensor as embedding.weight: never saved twice

LstmState = tuple[torch.Tensor, torch.Tensor]


class LstmLanguageModel(nn.Module):
    """Embedding -> stacked LSTM -> tied linear head; forward returns (logits, state)."""

    family = "modelsmith-lstm-lm"  # how templates.py tells it from a Hugging Face model (no isinstance)

    def __init__(self, template: LstmLmTemplate, vocab_size: int) -> None:
        super().__init__()
        self.template = template
        width = template.hidden_size
        self.embedding = nn.Embedding(vocab_size, width)
        self.dropout = nn.Dropout(template.dropout)
        self.lstm = nn.LSTM(width, width, num_layers=template.num_layers, batch_first=True,
                            dropout=template.dropout if template.num_layers > 1 else 0.0)  # torch warns on 1 layer
        self.head = nn.Linear(width, vocab_size)
        self.head.weight = self.embedding.weight
        # Small uniform embeddings (PyTorch's word_language_model): with tying they are also the
        # output weights, and N(0, 1) would start with huge logits.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, state: LstmState | None = None) -> tuple[torch.Tensor, LstmState]:
        """Next-token logits (B, T, V) for every position, and the LSTM state after the last one."""
        x = self.dropout(self.embedding(input_ids))                    # (B, T, H)
        # The recurrence runs in float32 even under mixed precision: cuDNN's RNN kernels do not
        # take every half type.
        with torch.autocast(device_type=input_ids.device.type, enabled=False):
            out, state = self.lstm(x.float(), state)                   # (B, T, H)
        return self.head(self.dropout(out)), state                     # (B, T, V)


def build_lstm_lm(template: LstmLmTemplate, tokenizer: PreTrainedTokenizerBase) -> LstmLanguageModel:
    """A freshly initialised LSTM language model sized for `tokenizer`."""
    return LstmLanguageModel(template, len(tokenizer))


def save_lstm_lm(model: LstmLanguageModel, tokenizer: PreTrainedTokenizerBase, block_size: int,
                 folder: Path) -> None:
    """Write model.safetensors, config.json and the tokenizer files into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()
             if name != TIED_KEY}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {"model_kind": MODEL_KIND, "template": model.template.model_dump(),
              "vocab_size": model.embedding.num_embeddings, "block_size": block_size}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer.save_pretrained(str(folder))  # tokenizer.json + tokenizer_config.json (special tokens)


def is_lstm_lm_folder(folder: Path) -> bool:
    """Whether `folder` holds a model saved by `save_lstm_lm`."""
    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return False
    return json.loads(config_path.read_text(encoding="utf-8")).get("model_kind") == MODEL_KIND


def load_lstm_lm(folder: Path) -> tuple[LstmLanguageModel, PreTrainedTokenizerFast, int]:
    """Rebuild a saved LSTM language model from safetensors + JSON: (model, tokenizer, block_size)."""
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    model = LstmLanguageModel(LstmLmTemplate.model_validate(config["template"]), int(config["vocab_size"]))
    load_lstm_lm_weights(model, load_file(str(Path(folder) / "model.safetensors"), device="cpu"))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    return model, tokenizer, int(config["block_size"])


def load_lstm_lm_weights(model: LstmLanguageModel, weights: dict[str, torch.Tensor]) -> None:
    """Load saved weights; the tied output weight comes back through the embedding."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if set(missing) - {TIED_KEY} or unexpected:
        raise ValueError(f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
