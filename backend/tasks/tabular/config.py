"""Configs of the tabular templates and of one tabular fit (typed, frozen, a description per field).

They follow backend/config.py's shape so that the future TrainConfig can take them as template
variants (`kind` is the discriminator). Defaults come from Gorishniy et al. 2021 ("Revisiting Deep
Learning Models for Tabular Data") where they give one, sized down where a 2-core CPU needs it.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, Field, model_validator

from backend.tasks.base import TemplateConfig

# The step size and weight decay of a fit are training settings (TrainConfig.learning_rate and
# weight_decay in the app, TabularFitSettings here), not the template's: one box each on the form.
# These are each template's usual values, used when a fit does not set them.
DEFAULT_LEARNING_RATES = {"mlp": 1e-3, "ft-transformer": 1e-4, "gbdt": 0.1}
DEFAULT_WEIGHT_DECAY = 1e-5


class _Frozen(BaseModel):
    model_config = {"frozen": True, "extra": "forbid"}


class MlpTemplate(TemplateConfig):
    """A dense network: standardised numbers, learned embeddings for categories, dense blocks with dropout."""

    kind: Literal["mlp"] = "mlp"
    hidden_size: int = Field(256, ge=4, le=8192, description="Width of each dense block.")
    num_layers: int = Field(3, ge=1, le=16, description="Number of dense blocks (Linear, ReLU, Dropout).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout after each dense block (training only).")
    max_embedding_dim: int = Field(32, ge=1, le=512,
                                   description="Widest category embedding; a column with k values gets "
                                               "min(this, round(1.6 k^0.56)) dimensions (fastai's rule).")


class FtTransformerTemplate(TemplateConfig):
    """FT-Transformer (Gorishniy et al. 2021): one token per column, a [CLS] token, a few Transformer layers."""

    kind: Literal["ft-transformer"] = "ft-transformer"
    token_size: int = Field(96, ge=8, le=1024, description="Width of each column's token (the paper's default "
                                                            "is 192; 96 trains about 3x faster on a CPU).")
    num_layers: int = Field(3, ge=1, le=12, description="Number of Transformer layers.")
    num_heads: int = Field(8, ge=1, le=32, description="Attention heads per layer (must divide token_size).")
    ffn_factor: float = Field(4 / 3, gt=0, le=8, description="Feed-forward width as a multiple of token_size "
                                                              "(ReGLU, as in the paper).")
    attention_dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout on attention weights.")
    ffn_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout inside the feed-forward block.")
    residual_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on each block's output.")

    @model_validator(mode="after")
    def _heads_divide_tokens(self) -> "FtTransformerTemplate":
        if self.token_size % self.num_heads:
            raise ValueError(f"token_size ({self.token_size}) must be a multiple of num_heads ({self.num_heads})")
        return self


class GbdtTemplate(TemplateConfig):
    """Gradient-boosted decision trees with LightGBM: strong and fast on most tables."""

    kind: Literal["gbdt"] = "gbdt"
    # Boosting rounds, not epochs of batches: the optimizer-loop settings do not apply (early
    # stopping is early_stopping_rounds below, regularization is l2_regularization).
    ignored_settings: ClassVar[tuple[str, ...]] = (
        "epochs", "batch_size", "weight_decay", "early_stopping_patience", "warmup_ratio",
        "gradient_accumulation_steps", "max_grad_norm", "eval_every_steps", "torch_compile")
    # LightGBM's own defaults (100 rounds of learning rate 0.1, 31 leaves) with early stopping:
    # as fast as a plain LGBMClassifier() and at least as accurate.
    num_rounds: int = Field(200, ge=1, le=100_000, description="Most boosting rounds (trees per class).")
    num_leaves: int = Field(31, ge=2, le=131_072, description="Most leaves per tree.")
    min_rows_per_leaf: int = Field(20, ge=1, le=1_000_000, description="Fewest training rows in a leaf.")
    feature_fraction: float = Field(1.0, gt=0, le=1, description="Share of columns each tree may use.")
    l2_regularization: float = Field(0.0, ge=0, le=1000, description="L2 penalty on leaf values.")
    early_stopping_rounds: int = Field(20, ge=0, le=10_000,
                                       description="Stop when the validation loss has not improved for this "
                                                   "many rounds; 0 = off.")


AnyTabularTemplate = Annotated[Union[MlpTemplate, FtTransformerTemplate, GbdtTemplate], Field(discriminator="kind")]
TABULAR_TEMPLATES: dict[str, type[BaseModel]] = {"mlp": MlpTemplate, "ft-transformer": FtTransformerTemplate,
                                                 "gbdt": GbdtTemplate}


class TabularFitSettings(_Frozen):
    """Settings of one fit shared by the templates (the neural ones use all; gbdt uses seed and time budget)."""

    epochs: int = Field(30, ge=1, le=10_000, description="Most passes over the training rows (neural templates).")
    batch_size: int = Field(256, ge=1, le=65_536, description="Rows per optimizer step (neural templates).")
    early_stopping_patience: int = Field(5, ge=0, le=1000,
                                         description="Stop after this many epochs without a better validation "
                                                     "score (accuracy, or RMSE for regression); 0 = off.")
    time_budget_seconds: float = Field(0, ge=0, description="Stop when this much time is spent and keep the best "
                                                            "model so far; 0 = no limit.")
    log_every_steps: int = Field(20, ge=1, le=100_000, description="Report training loss every N steps.")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seed for weights, shuffling, dropout and trees.")
    learning_rate: float | None = Field(None, gt=0, lt=1, description="Peak learning rate of AdamW (neural "
                                                                       "templates) or shrinkage of each new tree "
                                                                       "(gbdt); None = the template's usual value.")
    weight_decay: float | None = Field(None, ge=0, lt=1, description="AdamW weight decay (neural templates); "
                                                                     "None = 1e-5.")
    validation_chunk_rounds: int = Field(0, ge=0, le=100_000, description="Most boosting rounds scored on the "
                                         "validation rows at once (gbdt); 0 = as many as fit in a few tens of "
                                         "MB, within half a second. 1 scores and reports each round alone.")
    num_threads: int = Field(0, ge=0, le=1024, description="CPU threads LightGBM uses (gbdt); 0 = its default "
                                                            "(OpenMP's, usually every core). On a busy machine 1 "
                                                            "can be much faster.")

    def learning_rate_for(self, kind: str) -> float:
        """The learning rate a fit of template `kind` uses."""
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[kind]

    def weight_decay_or_default(self) -> float:
        """The AdamW weight decay a neural fit uses."""
        return self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY
