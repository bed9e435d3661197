"""Tokenizers for language models trained from scratch, and encoding a corpus with character counts.

Two choices, both built with the `tokenizers` library and wrapped as a fast Hugging Face
tokenizer so they save as `tokenizer.json` + `tokenizer_config.json` and `AutoTokenizer` (and so
`pipeline("text-generation")`) loads them back:
- char: one token per character seen in the training text (nanoGPT's shakespeare_char); a
  character the training text lacks becomes `<unk>`;
- bpe: byte-level BPE as in GPT-2, learned on the training text; it never needs `<unk>`.

Bits per character need to know how many characters each token stands for: `encode_corpus`
returns that count next to the ids (from the tokenizer's offsets), so runs with different
tokenizers compare on one scale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

END_OF_TEXT = "<|endoftext|>"  # GPT-2's name: end of a document, also used as padding
UNKNOWN = "<unk>"
TRAINING_CHUNK_CHARS = 100_000  # BPE learns from the text in pieces of about this size


def build_char_tokenizer(text: str, block_size: int) -> PreTrainedTokenizerFast:
    """One token per distinct character of `text` (sorted by code point), plus <|endoftext|> and <unk>."""
    vocab = {END_OF_TEXT: 0, UNKNOWN: 1}
    for character in sorted(set(text)):
        vocab[character] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNKNOWN))
    # [\s\S] is any character, newlines included: every character becomes its own "word".
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # join pieces as they are: no spaces added between characters
    log.info("built a character tokenizer with %d tokens", tokenizer.get_vocab_size())
    return wrap_lm_tokenizer(tokenizer, block_size)


def train_bpe_tokenizer(text: str, vocab_size: int, block_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE vocabulary (GPT-2 style, case and spaces kept) learned on `text`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(_chunks(text), trainer=trainer)
    log.info("trained a byte-level BPE tokenizer with %d tokens", tokenizer.get_vocab_size())
    return wrap_lm_tokenizer(tokenizer, block_size)


def _chunks(text: str) -> Iterator[str]:
    # Cut at line ends so no word is split between two pieces.
    start = 0
    while start < len(text):
        end = text.find("\n", start + TRAINING_CHUNK_CHARS)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def wrap_lm_tokenizer(tokenizer: Tokenizer, block_size: int) -> PreTrainedTokenizerFast:
    """Wrap a raw tokenizer with our special tokens; decoding never adds or removes spaces."""
    has_unknown = tokenizer.token_to_id(UNKNOWN) is not None
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT,
        unk_token=UNKNOWN if has_unknown else None, model_max_length=block_size,
        clean_up_tokenization_spaces=False)


def build_lm_tokenizer(kind: str, text: str, vocab_size: int, block_size: int) -> PreTrainedTokenizerFast:
    """The tokenizer a from-scratch template asks for: 'char' or 'bpe'."""
    if kind == "char":
        return build_char_tokenizer(text, block_size)
    if kind == "bpe":
        return train_bpe_tokenizer(text, vocab_size, block_size)
    raise ValueError(f"unknown tokenizer kind {kind!r}")


def encode_corpus(tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of a whole text (no special tokens added) and the characters each token covers.

    Byte-level tokens can split one character: a character counts for the first token that
    reaches it, so the counts of all tokens add up to the characters of the text.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer has no offsets: spread the characters evenly
        ids = np.asarray(tokenizer.encode(text, add_special_tokens=False), dtype=np.int64)
        return ids, np.full(len(ids), len(text) / max(len(ids), 1))
    ids_parts, chars_parts, offset = [], [], 0
    for piece in _chunks(text):
        encoding = backend.encode(piece, add_special_tokens=False)
        ids_parts.append(np.asarray(encoding.ids, dtype=np.int64))
        ends = np.asarray([end for _, end in encoding.offsets], dtype=np.int64).reshape(-1) + offset
        chars_parts.append(characters_per_token(ends, offset))
        offset += len(piece)
    ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int64)
    chars = np.concatenate(chars_parts) if chars_parts else np.zeros(0)
    return ids, chars.astype(np.float64)


def characters_per_token(ends: np.ndarray, start: int = 0) -> np.ndarray:
    """New characters each token covers, from the end offsets of the tokens in order."""
    reached = np.maximum.accumulate(np.concatenate([[start], ends]))
    return np.diff(reached)
