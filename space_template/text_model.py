"""Load and run this Space's model: no Modelsmith code, only torch, safetensors and tokenizers/transformers.

space.json's `family` says how the files in ./model were saved:
- "transformers": Hugging Face format; a classifier goes through `transformers.pipeline`, a
  language model through AutoModelForCausalLM with the sampling loop below;
- "lstm": Modelsmith's LSTM classifier (model.safetensors + config.json + tokenizer.json);
- "lstm-lm": Modelsmith's LSTM language model.
The LSTM classes and the sampling loop are standalone copies of Modelsmith's
backend/tasks/text_classification/lstm.py, backend/tasks/text_generation/lstm_lm.py and
backend/tasks/text_generation/generator.py, so the Space
gives the predictions (and, for one seed, the text) the app gave.
"""

import inspect
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

TOP_K, TOP_P = 50, 0.95
REPLACEMENT = "\ufffd"  # what decoding shows for half of a multi-byte character


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --- classifiers ---------------------------------------------------------------------------------

class LstmClassifier(nn.Module):
    """Embedding -> (bi)LSTM over packed sequences -> masked max/mean pooling -> dropout -> linear."""

    def __init__(self, template: dict, vocab_size: int, num_labels: int, pad_token_id: int = 0):
        super().__init__()
        self.pooling = template["pooling"]
        self.embedding = nn.Embedding(vocab_size, template["embedding_dim"], padding_idx=pad_token_id)
        self.lstm = nn.LSTM(template["embedding_dim"], template["hidden_size"], num_layers=template["num_layers"],
                            bidirectional=template["bidirectional"], batch_first=True,
                            dropout=template["dropout"] if template["num_layers"] > 1 else 0.0)
        self.dropout = nn.Dropout(template["dropout"])
        directions = 2 if template["bidirectional"] else 1
        self.head = nn.Linear(template["hidden_size"] * directions, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class logits (B, C) of a padded batch (B, T)."""
        seq_len = input_ids.shape[1]
        lengths = attention_mask.sum(dim=1).clamp(min=1)
        packed = pack_padded_sequence(self.embedding(input_ids), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.lstm(packed.float())
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=seq_len)  # (B, T, H*d)
        mask = attention_mask[:, :, None].bool()
        if self.pooling == "max":
            pooled = out.masked_fill(~mask, torch.finfo(out.dtype).min).max(dim=1).values
        else:
            pooled = (out * mask).sum(dim=1) / lengths[:, None].to(out.dtype)
        return self.head(self.dropout(pooled))


def _lstm_classifier(folder: Path) -> Callable[[str], dict]:
    from tokenizers import Tokenizer

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    labels = list(config["labels"])
    model = LstmClassifier(config["template"], int(config["vocab_size"]), len(labels), int(config["pad_token_id"]))
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    device = _device()
    model.to(device).eval()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(int(config["max_length"]))  # as in training: [CLS] text [SEP], cut to max_length
    tokenizer.no_padding()
    unknown = tokenizer.token_to_id("[UNK]") or 0
    lock = threading.Lock()  # a tokenizer is not safe to share between threads

    def classify(text: str) -> dict:
        with lock:
            ids = tokenizer.encode(text).ids or [unknown]
        input_ids = torch.tensor([ids], device=device)
        with torch.inference_mode():
            logits = model(input_ids, torch.ones_like(input_ids))
        return dict(zip(labels, torch.softmax(logits.float(), dim=-1)[0].tolist()))

    return classify


def load_classifier(folder: Path, space: dict) -> Callable[[str], dict]:
    """A function text -> {label: probability} for the model in `folder`."""
    if space["family"] == "lstm":
        return _lstm_classifier(folder)
    from transformers import pipeline

    classifier = pipeline("text-classification", model=str(folder), top_k=None, device=_device())
    max_length = int(space["max_length"])

    def classify(text: str) -> dict:
        rows = classifier([text], truncation=True, max_length=max_length)[0]
        return {row["label"]: float(row["score"]) for row in rows}

    return classify


# --- language models -----------------------------------------------------------------------------

class LstmLanguageModel(nn.Module):
    """Embedding -> stacked LSTM -> linear head tied to the embedding; forward returns (logits, state)."""

    def __init__(self, template: dict, vocab_size: int) -> None:
        super().__init__()
        width = template["hidden_size"]
        self.embedding = nn.Embedding(vocab_size, width)
        self.dropout = nn.Dropout(template["dropout"])
        self.lstm = nn.LSTM(width, width, num_layers=template["num_layers"], batch_first=True,
                            dropout=template["dropout"] if template["num_layers"] > 1 else 0.0)
        self.head = nn.Linear(width, vocab_size)
        self.head.weight = self.embedding.weight

    def forward(self, input_ids: torch.Tensor, state=None):
        out, state = self.lstm(self.dropout(self.embedding(input_ids)).float(), state)  # (B, T, H)
        return self.head(self.dropout(out)), state                                        # (B, T, V)


def sample_token(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                 sampler: torch.Generator) -> int:
    """One token id from next-token logits (V,): temperature, top-k, top-p, then a seeded draw."""
    logits = logits.detach().float().cpu()
    if temperature == 0:
        return int(logits.argmax())
    logits = logits / temperature
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True)
        probabilities = torch.softmax(ordered, dim=-1)
        drop = torch.cumsum(probabilities, dim=-1) - probabilities >= top_p
        logits = logits.index_fill(0, order[drop], float("-inf"))
    return int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=sampler))


class _LstmStepper:
    """Feeds the LSTM its prompt once, then one token at a time, carrying its state."""

    def __init__(self, model: LstmLanguageModel, device: torch.device) -> None:
        self.model, self.device, self.state = model, device, None

    def start(self, ids: list[int]) -> torch.Tensor:
        return self.step_many(ids)

    def step(self, token: int) -> torch.Tensor:
        return self.step_many([token])

    def step_many(self, ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            logits, self.state = self.model(torch.tensor([ids], device=self.device), self.state)
        return logits[0, -1]


class _TransformerStepper:
    """Feeds a causal Transformer with a key/value cache; past its context, keeps the latest tokens."""

    def __init__(self, model: nn.Module, device: torch.device, context_length: int) -> None:
        self.model, self.device, self.context_length = model, device, context_length
        self.ids: list[int] = []
        self.cache = None
        # transformers 5 renamed `past_key_values` to `cache`; the Space may get either version.
        parameters = inspect.signature(model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"

    def start(self, ids: list[int]) -> torch.Tensor:
        self.ids = list(ids)
        return self._reread()

    def step(self, token: int) -> torch.Tensor:
        self.ids.append(token)
        if self.cache is None or len(self.ids) > self.context_length:
            return self._reread()
        with torch.inference_mode():
            output = self.model(input_ids=torch.tensor([[token]], device=self.device), use_cache=True,
                                **{self.cache_argument: self.cache})
        self.cache = _cache_of(output)
        return output.logits[0, -1]

    def _reread(self) -> torch.Tensor:
        self.ids = self.ids[-self.context_length:]
        with torch.inference_mode():
            output = self.model(input_ids=torch.tensor([self.ids], device=self.device), use_cache=True)
        self.cache = _cache_of(output)
        return output.logits[0, -1]


def _cache_of(output) -> object:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def load_generator(folder: Path, space: dict) -> Callable[..., Iterator[str]]:
    """A function (prompt, max_new_tokens, temperature, seed=None) -> pieces of the continuation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = _device()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if space["family"] == "lstm-lm":
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        model = LstmLanguageModel(config["template"], int(config["vocab_size"]))
        missing, unexpected = model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
        if set(missing) - {"head.weight"} or unexpected:  # the tied head comes back through the embedding
            raise ValueError(f"weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
        make_stepper = lambda: _LstmStepper(model, device)  # noqa: E731
    else:
        model = AutoModelForCausalLM.from_pretrained(str(folder), use_safetensors=True, dtype=torch.float32)
        context = int(getattr(model.config, "n_positions", 0) or getattr(model.config, "max_position_embeddings", 0)
                      or 1_000_000)
        make_stepper = lambda: _TransformerStepper(model, device, max(context, 2))  # noqa: E731
    model.to(device).eval()
    lock = threading.Lock()

    def prompt_ids(prompt: str) -> list[int]:
        unknown = tokenizer.unk_token_id
        ids = [i for i in tokenizer.encode(prompt or "", add_special_tokens=False) if i != unknown]
        if ids:
            return ids
        if tokenizer.bos_token_id is not None:
            return [tokenizer.bos_token_id]
        newline = tokenizer.encode("\n", add_special_tokens=False)
        if newline and unknown not in newline:
            return newline
        return [tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0]

    def decode(ids: list[int]) -> str:
        with lock:
            return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def stream(prompt: str, max_new_tokens: int = 200, temperature: float = 0.8,
               seed: int | None = None) -> Iterator[str]:
        sampler = torch.Generator(device="cpu")
        if seed is None:
            sampler.seed()
        else:
            sampler.manual_seed(int(seed))
        stepper = make_stepper()
        with lock:
            start = prompt_ids(prompt)
        logits = stepper.start(start)
        end_of_text = tokenizer.eos_token_id if tokenizer.bos_token_id is not None else None
        generated: list[int] = []
        emitted = ""
        for _ in range(max_new_tokens):
            token = sample_token(logits, temperature, TOP_K, TOP_P, sampler)
            if token == end_of_text:  # a pretrained model ends its document here
                break
            generated.append(token)
            text = decode(generated)
            logits = stepper.step(token)
            if text.endswith(REPLACEMENT) or not text.startswith(emitted):
                continue  # half a character, or a rewrite of earlier text: wait for more
            if text != emitted:
                yield text[len(emitted):]
                emitted = text
        text = decode(generated)
        if text.startswith(emitted) and text != emitted:
            yield text[len(emitted):]

    return stream
