"""Generate text with a trained language model, token by token, for the Playground.

`load_generator(output_dir)` loads a finished run once (cached, like `load_predictor`);
`Generator.stream(prompt, ...)` yields the new text in incremental pieces as it is sampled (the
prompt itself is not repeated): join the pieces for the whole continuation, which is what
`Generator.generate` returns.

Sampling: temperature, then top-k, then top-p (nucleus) filtering, then one draw from a
`torch.Generator` on the CPU, so one seed gives one text on any device. temperature=0 is greedy.

Prompts:
- characters the vocabulary does not know (a character tokenizer only knows the characters of
  its training text) are dropped from the prompt; `dropped_characters` tells which, for a notice;
- an empty prompt starts from the tokenizer's beginning-of-text token when it has one (GPT-2's
  <|endoftext|>), else from a newline, as a from-scratch model was trained on running text.

A Transformer sees at most its position embeddings: past that, the context keeps the most recent
tokens (nanoGPT's crop) and is re-read. An LSTM carries its state forward, one step per token.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from backend.errors import UserError
from backend.serving.model_cache import RunFolderCache
from backend.tasks.text_generation.templates import load_lm
from backend.tasks.text_generation.lstm_lm import LstmLanguageModel

log = logging.getLogger(__name__)

REPLACEMENT = "\ufffd"  # what decoding shows for an incomplete UTF-8 character (byte-level tokens)


class Generator:
    """A language model ready to write: model (eval mode, on its device), tokenizer and context length."""

    def __init__(self, model: nn.Module, tokenizer: PreTrainedTokenizerBase, context_length: int,
                 device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.context_length = max(int(context_length), 2)
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer is not safe to share between threads

    # --- prompts ------------------------------------------------------------------------------
    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of the prompt; unknown characters dropped; an empty prompt gives the start token."""
        unknown = self.tokenizer.unk_token_id
        with self._tokenizer_lock:
            ids = [i for i in self.tokenizer.encode(prompt or "", add_special_tokens=False) if i != unknown]
            if ids:
                return ids
            if self.tokenizer.bos_token_id is not None:
                return [self.tokenizer.bos_token_id]
            newline = self.tokenizer.encode("\n", add_special_tokens=False)
        if newline and unknown not in newline:
            return newline
        return [self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0]

    def dropped_characters(self, prompt: str) -> str:
        """The distinct characters of `prompt` that the vocabulary lacks (dropped when generating)."""
        unknown = self.tokenizer.unk_token_id
        if unknown is None or not prompt:
            return ""
        try:
            with self._tokenizer_lock:
                encoding = self.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        except NotImplementedError:  # a slow (Python) tokenizer has no offsets to point at characters
            return ""
        dropped = {prompt[start:end] for token, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"])
                   if token == unknown}
        return "".join(sorted(dropped))

    # --- generation ---------------------------------------------------------------------------
    def stream(self, prompt: str, *, max_new_tokens: int = 200, temperature: float = 0.8, top_k: int = 50,
               top_p: float = 0.95, seed: int | None = None,
               should_stop: Callable[[], bool] | None = None) -> Iterator[str]:
        """Yield the continuation of `prompt` in incremental pieces (not the prompt, not accumulated).

        Stops after max_new_tokens, at the end-of-text token of a pretrained model, or as soon
        as should_stop() is true. Same seed, same prompt and settings -> same text.
        """
        _check_settings(max_new_tokens, temperature, top_k, top_p)
        sampler = torch.Generator(device="cpu")
        if seed is None:
            sampler.seed()
        else:
            sampler.manual_seed(int(seed))
        stepper = self._stepper()
        logits = stepper.start(self.prompt_ids(prompt))
        end_of_text = self.tokenizer.eos_token_id if self.tokenizer.bos_token_id is not None else None
        generated: list[int] = []
        emitted = ""
        for _ in range(max_new_tokens):
            if should_stop is not None and should_stop():
                break
            token = sample_token(logits, temperature, top_k, top_p, sampler)
            if token == end_of_text:  # a pretrained model ends its document here
                break
            generated.append(token)
            text = self._decode(generated)
            if text.endswith(REPLACEMENT):  # half of a multi-byte character: wait for the rest
                logits = stepper.step(token)
                continue
            piece = _new_text(emitted, text)
            emitted = text
            if piece:
                yield piece
            logits = stepper.step(token)
        text = self._decode(generated)
        if text != emitted:
            yield _new_text(emitted, text)

    def generate(self, prompt: str, **settings) -> str:
        """The whole continuation of `prompt` (the joined pieces of `stream`)."""
        return "".join(self.stream(prompt, **settings))

    def _decode(self, ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _stepper(self) -> "_LstmStepper | _TransformerStepper":
        if isinstance(self.model, LstmLanguageModel):
            return _LstmStepper(self.model, self.device)
        return _TransformerStepper(self.model, self.device, self.context_length)


def _new_text(emitted: str, text: str) -> str:
    # Decoding is prefix-stable for our tokenizers; if a tokenizer ever rewrites earlier text,
    # emit what follows the common prefix rather than repeat it.
    if text.startswith(emitted):
        return text[len(emitted):]
    common = 0
    while common < min(len(text), len(emitted)) and text[common] == emitted[common]:
        common += 1
    return text[common:]


def _check_settings(max_new_tokens: int, temperature: float, top_k: int, top_p: float) -> None:
    if max_new_tokens < 0:
        raise UserError(f"max_new_tokens must be 0 or more (got {max_new_tokens}).")
    if temperature < 0:
        raise UserError(f"temperature must be 0 (greedy) or more (got {temperature}).")
    if top_k < 0:
        raise UserError(f"top_k must be 0 (off) or more (got {top_k}).")
    if not 0 < top_p <= 1:
        raise UserError(f"top_p must be above 0 and at most 1 (got {top_p}); 1 turns it off.")


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
        # Drop a token when the ones before it already reach top_p: the first token always stays.
        drop = torch.cumsum(probabilities, dim=-1) - probabilities >= top_p
        logits = logits.index_fill(0, order[drop], float("-inf"))
    probabilities = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probabilities, 1, generator=sampler))


class _LstmStepper:
    """Feeds an LSTM its prompt once, then one token at a time, carrying (h, c)."""

    def __init__(self, model: LstmLanguageModel, device: torch.device) -> None:
        self.model, self.device, self.state = model, device, None

    def start(self, ids: list[int]) -> torch.Tensor:
        return self._run(ids)

    def step(self, token: int) -> torch.Tensor:
        return self._run([token])

    def _run(self, ids: list[int]) -> torch.Tensor:
        with torch.inference_mode():
            logits, self.state = self.model(torch.tensor([ids], device=self.device), self.state)  # (1, T, V)
        return logits[0, -1]


class _TransformerStepper:
    """Feeds a causal Transformer with a key/value cache; past the context length, crops and re-reads."""

    def __init__(self, model: nn.Module, device: torch.device, context_length: int) -> None:
        self.model, self.device, self.context_length = model, device, context_length
        self.ids: list[int] = []
        self.cache = None
        self.cache_argument = cache_argument(model)

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


def cache_argument(model: nn.Module) -> str:
    """The keyword the model's forward takes its key/value cache by.

    Transformers renamed `past_key_values` to `cache` during 5.x (5.24 takes both, warning on the
    old name; 5.0-5.17 know only `past_key_values`), so ask the signature rather than the version.
    """
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _cache_of(output) -> object:
    """The key/value cache of a forward's output under either name (see `cache_argument`)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def _load_generator(folder: Path, device: str) -> Generator:
    try:
        model, tokenizer, context_length = load_lm(folder)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"The model in {folder} could not be loaded as a language model "
                        f"({str(exc).splitlines()[0][:200]}). Pick a finished text-generation run.") from exc
    log.info("loaded language model %s on %s", folder, device)
    return Generator(model, tokenizer, context_length, device)


_GENERATORS: RunFolderCache[Generator] = RunFolderCache(_load_generator)


def load_generator(output_dir: Path | str, device: str | None = None) -> Generator:
    """The Generator of a run folder, cached (a few at a time) until its model file changes."""
    return _GENERATORS.get(output_dir, device)


def clear_cache() -> None:
    """Forget all cached generators (frees their memory)."""
    _GENERATORS.clear()
