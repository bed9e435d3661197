"""A (bi)LSTM text classifier, with pretrained word vectors or its own subword tokenizer.

    input_ids (B, T) -> embedding (B, T, E) -> dropout -> LSTM (B, T, H * directions)
                     -> masked max/mean pooling (B, H * directions) -> dropout -> linear (B, C)

The embedding starts either from the bundled MiniLM-L6's vocabulary and input word vectors
(tokenizer "pretrained": E = 384, and words never seen in training still have a meaningful
vector), or random over a vocabulary learned from the training split ("wordpiece" / "bpe").

Padding never leaks into the result: the LSTM runs over packed sequences (each row stops at its
own length), and pooling ignores padded positions. Saved files: `model.safetensors`,
`config.json` (the template fields + labels + max_length) and `tokenizer.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

from backend.tasks.text_classification.configs import DEFAULT_ENCODER, LstmTemplate
from backend.tasks.text_classification.transformer import resolve_base_model
from backend.tasks.text_classification.tokenization import load_tokenizer_file, train_tokenizer, wrap_tokenizer

MODEL_KIND = "modelsmith-lstm"  # marks our config.json apart from a Hugging Face one
PRETRAINED_EMBEDDINGS = "embeddings.word_embeddings.weight"  # input word vectors inside the bundled encoder


class LstmClassifier(nn.Module):
    """Embedding -> (bi)LSTM -> masked pooling -> dropout -> linear head."""

    family = "modelsmith-lstm"  # how templates.py tells it from a Hugging Face model (no isinstance)

    def __init__(self, template: LstmTemplate, vocab_size: int, num_labels: int, pad_token_id: int = 0):
        super().__init__()
        self.template = template
        self.embedding = nn.Embedding(vocab_size, template.embedding_dim, padding_idx=pad_token_id)
        self.lstm = nn.LSTM(
            template.embedding_dim, template.hidden_size, num_layers=template.num_layers,
            bidirectional=template.bidirectional, batch_first=True,
            dropout=template.dropout if template.num_layers > 1 else 0.0)  # torch warns on 1 layer
        self.embedding_dropout = nn.Dropout(template.embedding_dropout)
        self.dropout = nn.Dropout(template.dropout)
        directions = 2 if template.bidirectional else 1
        self.head = nn.Linear(template.hidden_size * directions, num_labels)

    @property
    def num_labels(self) -> int:
        """Width of the classification head."""
        return self.head.out_features

    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding (the name Hugging Face models use)."""
        return self.embedding

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> torch.Tensor:
        """Class logits (B, C) for a padded batch; extra keys (token_type_ids...) are ignored."""
        batch_size, seq_len = input_ids.shape
        # Every row has >= 1 token ([CLS] ... [SEP]); clamp anyway so packing never sees a 0.
        lengths = attention_mask.sum(dim=1).clamp(min=1)
        x = self.embedding_dropout(self.embedding(input_ids))                  # (B, T, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        # The recurrence runs in float32 even under mixed precision: cuDNN's RNN kernels do not
        # take every half type, and the LSTM is a small share of the compute anyway.
        with torch.autocast(device_type=input_ids.device.type, enabled=False):
            out, _ = self.lstm(packed.float())
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=seq_len)  # (B, T, H*d)
        mask = attention_mask[:, :, None].bool()                               # (B, T, 1)
        if self.template.pooling == "max":
            pooled = out.masked_fill(~mask, torch.finfo(out.dtype).min).max(dim=1).values
        else:
            pooled = (out * mask).sum(dim=1) / lengths[:, None].to(out.dtype)  # (B, H*d)
        return self.head(self.dropout(pooled))                                 # (B, C)


def build_lstm(template: LstmTemplate, labels: Sequence[str], train_texts: Sequence[str], max_length: int,
               tokenizer: PreTrainedTokenizerFast | None = None) -> tuple[LstmClassifier, PreTrainedTokenizerFast]:
    """A freshly initialised classifier and its tokenizer (`tokenizer`, say a checkpoint's, wins if given).

    "pretrained" starts from the bundled MiniLM-L6 vocabulary and word vectors; "wordpiece" / "bpe"
    train a vocabulary on `train_texts` and start from random embeddings.
    """
    if template.tokenizer == "pretrained":
        vectors, pretrained_tokenizer = pretrained_vocabulary(max_length)
        tokenizer = tokenizer or pretrained_tokenizer
        # The vectors fix the vocabulary and width; the saved config.json records the real sizes.
        template = template.model_copy(update={"embedding_dim": vectors.shape[1], "vocab_size": vectors.shape[0]})
        model = LstmClassifier(template, len(tokenizer), len(labels), tokenizer.pad_token_id)
        with torch.no_grad():
            model.embedding.weight.copy_(vectors)
        return model, tokenizer
    if tokenizer is None:
        tokenizer = train_tokenizer(train_texts, template.tokenizer, template.vocab_size, max_length)
    model = LstmClassifier(template, len(tokenizer), len(labels), tokenizer.pad_token_id)
    return model, tokenizer


def pretrained_vocabulary(max_length: int) -> tuple[torch.Tensor, PreTrainedTokenizerFast]:
    """The bundled MiniLM-L6's input word vectors (V, 384), rescaled, and its WordPiece tokenizer."""
    folder = Path(resolve_base_model(DEFAULT_ENCODER))
    vectors = load_file(str(folder / "model.safetensors"))[PRETRAINED_EMBEDDINGS].float()
    # BERT-style input vectors are tiny (std ~0.05) next to nn.Embedding's N(0, 1) start, which the
    # LSTM's initialisation and the default learning rate are made for: bring them to unit scale.
    vectors = vectors / vectors.std()
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    raw.no_padding()  # the file pads every text to 128: we pad each batch to its own longest row
    raw.no_truncation()
    return vectors, wrap_tokenizer(raw, max_length)


def save_lstm(model: LstmClassifier, tokenizer: PreTrainedTokenizerFast, labels: Sequence[str],
              max_length: int, folder: Path) -> None:
    """Write model.safetensors, config.json and tokenizer.json into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {"model_kind": MODEL_KIND, "template": model.template.model_dump(), "labels": list(labels),
              "max_length": max_length, "vocab_size": model.embedding.num_embeddings,
              "pad_token_id": model.embedding.padding_idx}
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))


def is_lstm_folder(folder: Path) -> bool:
    """Whether `folder` holds an LSTM saved by `save_lstm`."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        return False
    return json.loads(config_path.read_text(encoding="utf-8")).get("model_kind") == MODEL_KIND


def load_lstm(folder: Path) -> tuple[LstmClassifier, PreTrainedTokenizerFast, list[str], int]:
    """Rebuild a saved LSTM from safetensors + JSON: (model, tokenizer, labels, max_length)."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    template = LstmTemplate.model_validate(config["template"])
    labels, max_length = list(config["labels"]), int(config["max_length"])
    model = LstmClassifier(template, int(config["vocab_size"]), len(labels), int(config["pad_token_id"]))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    tokenizer = load_tokenizer_file(str(folder / "tokenizer.json"), max_length)
    return model, tokenizer, labels, max_length
