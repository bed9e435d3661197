"""The model card (README.md) of a language model: what it does, on what data, how good, how to use."""

from __future__ import annotations

from backend.config import TrainConfig
from backend.sharing.model_card import front_matter, metrics_section, training_section
from backend.tasks.text_generation.task import TASK
from storage.records import DatasetRecord

TEMPLATE_NAMES = {
    "lstm-lm": "LSTM language model trained from scratch",
    "transformer-lm": "GPT-2-style Transformer language model trained from scratch",
    "transformer-lm-finetune": "fine-tuned pretrained causal language model",
}


def render_card(config: TrainConfig, dataset: DatasetRecord, metrics: dict, *, best_step: int = 0,
                           stop_reason: str = "completed") -> str:
    """Model card of a language model: data, settings, validation loss / perplexity / bits per char, usage."""
    kind = config.template.kind
    hugging_face = kind != "lstm-lm"
    tokenizer = getattr(config.template, "tokenizer", None)
    tokenization = {"char": "one token per character", "bpe": "a byte-level BPE vocabulary trained on the text",
                    None: "the base model's tokenizer"}[tokenizer]
    front = front_matter(hugging_face, TASK.pipeline_tag, kind)
    lines = [*front, f"# {config.name or dataset.name + ' language model'}", "",
             f"A {TEMPLATE_NAMES.get(kind, kind)} that writes text like **{dataset.name}**, "
             f"with {tokenization}.", "",
             "## Data", "",
             f"- Dataset: **{dataset.name}** (text from `{dataset.text_column}`; the validation part is the "
             "held-out end of the text)", "",
             *training_section(config, TASK.best_metric_label, best_step, stop_reason), "",
             *metrics_section(metrics, [("loss", "loss (nats per token)"), ("perplexity", "perplexity"),
                                        ("bits_per_char", "bits per character"), ("train_loss", "training loss")])]
    lines += ["", "Bits per character compare models with different tokenizers.", "", "## How to use", ""]
    if hugging_face:
        lines += ["With Hugging Face transformers:", "", "```python", "from transformers import pipeline", "",
                  'writer = pipeline("text-generation", model="path/to/this/folder")',
                  'print(writer("Once upon a time", max_new_tokens=100, do_sample=True)[0]["generated_text"])',
                  "```", ""]
    lines += ["With Modelsmith (in this project):", "", "```python", "from backend.tasks.text_generation.generator import load_generator", "",
              'generator = load_generator("path/to/this/folder")',
              'print(generator.generate("Once upon a time", max_new_tokens=100, seed=0))',
              "```", ""]
    return "\n".join(lines)
