"""Subword tokenizers trained on the training split (HF format), plus encoding and dynamic padding.

The LSTM and the from-scratch Transformer have no pretrained vocabulary, so we learn one from
the user's texts with the `tokenizers` library and wrap it as a fast HF tokenizer: it then saves
as `tokenizer.json` + `tokenizer_config.json` and `AutoTokenizer` / `pipeline` load it back.
Every encoding is wrapped in `[CLS] ... [SEP]`, so even an empty text has two tokens (an LSTM
cannot run over an empty sequence). `encode` and `pad_batch` are shared by the trainer and the
predictor, so a model sees the same ids at training, evaluation and prediction time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

log = logging.getLogger(__name__)

# Fixed order, so [PAD] is always id 0 (the embedding's padding_idx) and [UNK] id 1.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TokenizerKind = Literal["wordpiece", "bpe"]
WORD_START = "\u2581"  # marks the first piece of a word while learning WordPiece merges


def train_tokenizer(texts: Sequence[str], kind: TokenizerKind, vocab_size: int,
                    max_length: int) -> PreTrainedTokenizerFast:
    """Learn a WordPiece or byte-level BPE vocabulary from `texts`; returns a fast HF tokenizer."""
    if kind == "wordpiece":
        tokenizer = _train_wordpiece(texts, vocab_size)
    elif kind == "bpe":
        # Byte-level BPE never produces [UNK]: any character falls back to its bytes.
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    log.info("trained a %s tokenizer with %d tokens", kind, tokenizer.get_vocab_size())
    return wrap_tokenizer(tokenizer, max_length)


def _train_wordpiece(texts: Sequence[str], vocab_size: int) -> Tokenizer:
    """A WordPiece vocabulary learned deterministically (same texts -> same vocabulary)."""
    # The `tokenizers` WordPiece trainer numbers its "##" pieces in hash-map order, so two trainings
    # on the same texts can differ (and so would the metrics of two runs with one seed). Its BPE
    # trainer is deterministic when every symbol is in the initial alphabet: learn BPE merges on
    # words marked with a start symbol, then rewrite them as WordPiece entries
    # ("\u2581good" -> "good" at a word start, "ness" -> "##ness" inside a word).
    bert_normalizer, bert_pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = bert_normalizer
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        bert_pre_tokenizer, pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always", split=False)])
    bpe.train_from_iterator(texts, length=len(texts), trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False))
    learned = sorted(bpe.get_vocab().items(), key=lambda item: item[1])
    pieces = [token for token, _ in learned if token not in SPECIAL_TOKENS]
    # Every single character must exist both at a word start and inside a word, or it becomes [UNK].
    characters = [piece for piece in pieces if len(piece) == 1 and piece != WORD_START]
    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS, *characters, *("##" + c for c in characters), *pieces]:
        if token.startswith(WORD_START):
            token = token[len(WORD_START):]
        elif len(token) > 1 and not token.startswith("##") and token not in SPECIAL_TOKENS:
            token = "##" + token
        if token and token not in vocab and len(vocab) < max(vocab_size, len(SPECIAL_TOKENS) + 2 * len(characters)):
            vocab[token] = len(vocab)
    tokenizer = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = bert_normalizer
    tokenizer.pre_tokenizer = bert_pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def wrap_tokenizer(tokenizer: Tokenizer, max_length: int) -> PreTrainedTokenizerFast:
    """Wrap a raw `tokenizers.Tokenizer` so it pads, truncates and saves like any HF tokenizer."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_length)


def load_tokenizer_file(path: str, max_length: int) -> PreTrainedTokenizerFast:
    """Load a `tokenizer.json` we wrote (plain JSON, no code) as a fast HF tokenizer."""
    return wrap_tokenizer(Tokenizer.from_file(path), max_length)


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
           chunk_size: int = 10_000) -> list[list[int]]:
    """Token ids of each text, cut to `max_length` tokens; never an empty row (empty text -> [UNK])."""
    fallback = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else tokenizer.pad_token_id
    rows: list[list[int]] = []
    for start in range(0, len(texts), chunk_size):  # chunks bound the tokenizer's temporary memory
        batch = [text if isinstance(text, str) else "" for text in texts[start:start + chunk_size]]
        encoded = tokenizer(batch, truncation=True, max_length=max_length, return_attention_mask=False,
                            return_token_type_ids=False)["input_ids"]
        rows.extend(row if row else [fallback] for row in encoded)
    return rows


def pad_batch(rows: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token rows to the longest row in *this* batch: input_ids and attention_mask (B, T)."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, :len(row)] = torch.as_tensor(row, dtype=torch.long)
        attention_mask[i, :len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}
