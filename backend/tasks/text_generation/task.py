"""Text generation: learn to write like a text; a prompt in, its continuation out."""

from __future__ import annotations

from backend.tasks.base import Entry, Task, has_architecture
from backend.tasks.text_generation.configs import LstmLmTemplate, TransformerLmFinetuneTemplate, TransformerLmTemplate
from backend.tasks.text_generation.presets import NANOGPT_SHAKESPEARE_GPU


def infer_settings(model_config: dict, base_model: str) -> dict | None:
    """The settings of an imported model folder, from its config.json; None when it is not a language model."""
    if model_config.get("model_kind") == "modelsmith-lstm-lm":
        return {"template": LstmLmTemplate.model_validate(model_config["template"])}
    if has_architecture(model_config, "ForCausalLM", "LMHeadModel"):
        positions = int(model_config.get("n_positions") or model_config.get("max_position_embeddings") or 128)
        return {"template": TransformerLmFinetuneTemplate(base_model=base_model, block_size=max(8, min(positions, 1024)))}
    return None


TASK = Task(
    name="text-generation",
    label="Text generation",
    upload_label="Text generation (learn to write like the text)",
    model_noun="text generator",
    templates=(LstmLmTemplate, TransformerLmTemplate, TransformerLmFinetuneTemplate),
    default_template="lstm-lm",
    panel="generate",
    needs_label_column=False,
    best_metric="loss",
    best_metric_label="validation loss",
    higher_is_better=False,
    # Perplexity (e.g. 2000 for a fresh BPE model) would flatten bits/char (~1-10) on a shared axis;
    # it is exp(validation loss), already drawn, and stays in the metrics and in Compare.
    quality_curves={"eval_bits_per_char": "bits/char"},
    quality_range=(0, None),
    uses_max_steps=True,
    stores_corpus=True,
    headline_key="eval_bits_per_char",
    headline_format="{value:.3f} {label}",
    headline_label="bits/char",
    length_title="Line length (characters)",
    prepare=Entry("backend.tasks.text_generation.prepare:prepare_generation"),
    train=Entry("backend.training.windows:train_lm"),
    estimate=Entry("backend.training.estimate:estimate_language_model"),
    load_model=Entry("backend.tasks.text_generation.templates:load_lm"),
    render_card=Entry("backend.tasks.text_generation.card:render_card"),
    load_predictor=Entry("backend.tasks.text_generation.generator:load_generator"),
    infer_settings=infer_settings,
    # Learning rates from the tiny Shakespeare bench (bench/bench_shakespeare.py).
    training_defaults={
        "lstm-lm": {"learning_rate": 4e-3},
        "transformer-lm": {"learning_rate": 5e-3},
        "transformer-lm-finetune": {"learning_rate": 5e-5},
    },
    presets=(NANOGPT_SHAKESPEARE_GPU,),
)
