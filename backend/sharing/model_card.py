"""The model card (README.md) written next to a trained model: what, on what data, how good, how to use."""

from __future__ import annotations

from pathlib import Path

from backend.config import TrainConfig
from storage.records import DatasetRecord

TEMPLATE_NAMES = {
    "transformer": "Transformer (fine-tuned pretrained encoder)",
    "transformer-scratch": "Transformer trained from scratch",
    "lstm": "LSTM trained from scratch",
    "lstm-lm": "LSTM language model trained from scratch",
    "transformer-lm": "GPT-2-style Transformer language model trained from scratch",
    "transformer-lm-finetune": "fine-tuned pretrained causal language model",
}


def _front_matter(hugging_face: bool, pipeline_tag: str, kind: str) -> list[str]:
    """The card's YAML front matter (the Hub reads library, pipeline and tags from it), as lines."""
    return ["---", f"library_name: {'transformers' if hugging_face else 'pytorch'}",
            f"pipeline_tag: {pipeline_tag}", "tags:", "- modelsmith", f"- {kind}", "---", ""]


def render_model_card(config: TrainConfig, dataset: DatasetRecord, metrics: dict, *, best_step: int = 0,
                      stop_reason: str = "completed") -> str:
    """Markdown model card with front matter, settings, metrics and usage."""
    if config.task == "text-generation":
        return render_generation_card(config, dataset, metrics, best_step=best_step, stop_reason=stop_reason)
    kind = config.template.kind
    hugging_face = kind != "lstm"
    front = _front_matter(hugging_face, "text-classification", kind)
    lines = [*front, f"# {config.name or dataset.name + ' classifier'}", "",
             f"A {TEMPLATE_NAMES.get(kind, kind)} that sorts texts into {len(dataset.labels)} classes: "
             f"{', '.join(f'`{label}`' for label in dataset.labels)}.", "",
             "## Data", "",
             f"- Dataset: **{dataset.name}** ({dataset.train_rows} training rows, "
             f"{dataset.validation_rows} validation rows)",
             f"- Columns: text from `{dataset.text_column}`, label from `{dataset.label_column}`", "",
             "## Training", "",
             f"- Best model from step {best_step}, chosen by validation macro F1; training ended: "
             f"{stop_reason.replace('_', ' ')}", "",
             "| setting | value |", "|---|---|"]
    lines += _settings_rows(config)
    lines += ["", "## Validation metrics", "", "| metric | value |", "|---|---|"]
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "loss"):
        if key in metrics:
            lines.append(f"| {key} | {metrics[key]:.4f} |")
    per_class = metrics.get("per_class", {})
    if per_class:
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {label} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |"
                  for label, row in per_class.items()]
    lines += ["", "## How to use", ""]
    if hugging_face:
        lines += ["With Hugging Face transformers:", "", "```python", "from transformers import pipeline", "",
                  'classifier = pipeline("text-classification", model="path/to/this/folder")',
                  f'print(classifier(["some text"], truncation=True, max_length={config.max_length}))', "```", ""]
    lines += ["With Modelsmith (in this project):", "", "```python", "from backend.tasks.text_classification.predictor import load_predictor", "",
              'predictor = load_predictor("path/to/this/folder")',
              'print(predictor.predict(["some text"]))  # [{"label": ..., "scores": {label: probability}}]',
              "```", ""]
    return "\n".join(lines)


def _settings_rows(config: TrainConfig) -> list[str]:
    settings = config.model_dump(exclude={"template", "name", "dataset_id", "task"})
    settings.update({f"template.{key}": value for key, value in config.template.model_dump().items()})
    return [f"| {key} | {value} |" for key, value in settings.items()]


def render_generation_card(config: TrainConfig, dataset: DatasetRecord, metrics: dict, *, best_step: int = 0,
                           stop_reason: str = "completed") -> str:
    """Model card of a language model: data, settings, validation loss / perplexity / bits per char, usage."""
    kind = config.template.kind
    hugging_face = kind != "lstm-lm"
    tokenizer = getattr(config.template, "tokenizer", None)
    tokenization = {"char": "one token per character", "bpe": "a byte-level BPE vocabulary trained on the text",
                    None: "the base model's tokenizer"}[tokenizer]
    front = _front_matter(hugging_face, "text-generation", kind)
    lines = [*front, f"# {config.name or dataset.name + ' language model'}", "",
             f"A {TEMPLATE_NAMES.get(kind, kind)} that writes text like **{dataset.name}**, "
             f"with {tokenization}.", "",
             "## Data", "",
             f"- Dataset: **{dataset.name}** (text from `{dataset.text_column}`; the validation part is the "
             "held-out end of the text)", "",
             "## Training", "",
             f"- Best model from step {best_step}, chosen by validation loss; training ended: "
             f"{stop_reason.replace('_', ' ')}", "",
             "| setting | value |", "|---|---|", *_settings_rows(config),
             "", "## Validation metrics", "", "| metric | value |", "|---|---|"]
    for key, label in (("loss", "loss (nats per token)"), ("perplexity", "perplexity"),
                       ("bits_per_char", "bits per character"), ("train_loss", "training loss")):
        if key in metrics:
            lines.append(f"| {label} | {metrics[key]:.4f} |")
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


def write_model_card(output_dir: Path, config: TrainConfig, dataset: DatasetRecord, metrics: dict, *,
                     best_step: int = 0, stop_reason: str = "completed") -> Path:
    """Write README.md into `output_dir` and return its path."""
    path = Path(output_dir) / "README.md"
    path.write_text(render_model_card(config, dataset, metrics, best_step=best_step, stop_reason=stop_reason),
                    encoding="utf-8")
    return path
