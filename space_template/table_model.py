"""Load and run this Space's table model: no Modelsmith code, only numpy, pandas, LightGBM (gbdt) or
torch + safetensors (mlp, ft-transformer).

./model holds what Modelsmith saved: template.json (which template, its sizes), preprocessing.json
(the transform fitted on the training split: means and standard deviations, vocabularies, the
classes) and model.txt (LightGBM's text format) or model.safetensors (the network's weights). The
transform below is a standalone copy of Modelsmith's backend/tasks/tabular/preprocessing.py and
the networks of its mlp.py and ft_transformer.py, so the Space gives the app's predictions.
"""

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

MISSING_CODE, UNKNOWN_CODE = 0, 1
_TRUE = {"true", "yes", "y", "t", "1"}
_FALSE = {"false", "no", "n", "f", "0"}


# --- the transform (preprocessing.json) ------------------------------------------------------------

def to_numbers(series: pd.Series) -> pd.Series:
    """Floats from a column of numbers or numeric strings; anything else becomes NaN."""
    if pd.api.types.is_bool_dtype(series.dtype):
        series = series.astype(float)
    out = pd.to_numeric(series, errors="coerce").astype("float64")
    return out.where(np.isfinite(out))


def parse_datetimes(series: pd.Series) -> pd.Series:
    """Datetimes from strings in any common format; unparsable values become NaT."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pd.to_datetime(series.astype("string"), errors="coerce", format="mixed", utc=True)


def _date_part(dates: pd.Series, part: str) -> pd.Series:
    accessor = dates.dt
    values = {"year": accessor.year, "month": accessor.month, "day_of_week": accessor.dayofweek,
              "hour": accessor.hour}[part]
    return values.astype("float64")


def category_key(value, kind: str):
    """One spelling per category: 3, 3.0 and "3" are the same; booleans become "true"/"false"; None if missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        if value == int(value):
            value = int(value)
    text = ("true" if value else "false") if isinstance(value, (bool, np.bool_)) else str(value).strip()
    if kind == "boolean":
        lowered = text.lower()
        return "true" if lowered in _TRUE else "false" if lowered in _FALSE else text
    return text if text else None


class Transform:
    """preprocessing.json applied to rows: standardised numbers (+ missing indicators) and category codes."""

    def __init__(self, data: dict):
        self.inputs: dict = data["spec"]["inputs"]          # column -> kind, in the model's order
        self.target: str = data["spec"]["target"]
        self.task: str = data["spec"]["task"]               # classification | regression
        self.numeric: list = data["numeric"]
        self.categorical: list = data["categorical"]
        self.classes: list = list(data["classes"])
        self.target_mean, self.target_std = float(data["target_mean"]), float(data["target_std"])

    @property
    def numeric_width(self) -> int:
        return len(self.numeric) + sum(1 for f in self.numeric if f["missing_indicator"])

    @property
    def cardinalities(self) -> list:
        return [len(f["values"]) + 2 for f in self.categorical]

    def __call__(self, frame: pd.DataFrame) -> tuple:
        """float32 numbers [n, numeric_width] and int64 codes [n, categorical columns]."""
        n = len(frame)
        empty = pd.Series([None] * n, index=frame.index, dtype=object)
        values, indicators, dates = [], [], {}
        for feature in self.numeric:
            raw = frame[feature["column"]] if feature["column"] in frame.columns else empty
            if feature["part"] is None:
                x = to_numbers(raw)
            else:
                if feature["column"] not in dates:
                    dates[feature["column"]] = parse_datetimes(raw)
                x = _date_part(dates[feature["column"]], feature["part"])
            x = x.to_numpy(dtype=np.float64, na_value=np.nan)
            missing = ~np.isfinite(x)
            values.append(np.where(missing, 0.0, (x - feature["mean"]) / feature["std"]))
            if feature["missing_indicator"]:
                indicators.append(missing.astype(np.float64))
        numeric = np.stack(values + indicators, axis=1).astype(np.float32) if values else np.zeros((n, 0), np.float32)
        codes = []
        for feature in self.categorical:
            lookup = {value: code for code, value in enumerate(feature["values"], start=2)}
            column = frame[feature["column"]] if feature["column"] in frame.columns else empty
            keys = [category_key(v, feature["kind"]) for v in column]
            codes.append(np.array([MISSING_CODE if k is None else lookup.get(k, UNKNOWN_CODE) for k in keys],
                                  dtype=np.int64))
        categorical = np.stack(codes, axis=1) if codes else np.zeros((n, 0), np.int64)
        return numeric, categorical


# --- the networks (mlp, ft-transformer) ----------------------------------------------------------

def _networks():
    """The two network classes; torch is imported only for a network (a gbdt Space does not need it)."""
    import torch
    from torch import nn

    def embedding_size(cardinality: int, largest: int) -> int:
        return max(1, min(largest, round(1.6 * cardinality ** 0.56)))

    class TabularMlp(nn.Module):
        def __init__(self, config: dict, numeric_width: int, cardinalities: list, out_features: int):
            super().__init__()
            self.embeddings = nn.ModuleList(nn.Embedding(k, embedding_size(k, config["max_embedding_dim"]))
                                            for k in cardinalities)
            width = numeric_width + sum(e.embedding_dim for e in self.embeddings)
            layers = []
            for _ in range(config["num_layers"]):
                layers += [nn.Linear(width, config["hidden_size"]), nn.ReLU(), nn.Dropout(config["dropout"])]
                width = config["hidden_size"]
            self.blocks = nn.Sequential(*layers)
            self.head = nn.Linear(width, out_features)

        def forward(self, numeric, categorical):
            parts = [numeric] + [embed(categorical[:, i]) for i, embed in enumerate(self.embeddings)]
            return self.head(self.blocks(torch.cat(parts, dim=1)))

    class FeatureTokenizer(nn.Module):
        def __init__(self, numeric_width: int, cardinalities: list, d: int):
            super().__init__()
            self.numeric_weight = nn.Parameter(torch.zeros(numeric_width, d))
            self.numeric_bias = nn.Parameter(torch.zeros(numeric_width, d))
            self.register_buffer("offsets", torch.tensor([0] + list(cardinalities[:-1]), dtype=torch.long).cumsum(0)
                                 if cardinalities else torch.zeros(0, dtype=torch.long), persistent=False)
            self.category_embedding = nn.Embedding(max(1, sum(cardinalities)), d)
            self.category_bias = nn.Parameter(torch.zeros(len(cardinalities), d))

        def forward(self, numeric, categorical):
            tokens = numeric.unsqueeze(-1) * self.numeric_weight + self.numeric_bias
            if categorical.shape[1]:
                categories = self.category_embedding(categorical + self.offsets) + self.category_bias
                tokens = torch.cat([tokens, categories], dim=1)
            return tokens

    class ReGlu(nn.Module):
        def __init__(self, d: int, hidden: int, dropout: float):
            super().__init__()
            self.up, self.dropout, self.down = nn.Linear(d, 2 * hidden), nn.Dropout(dropout), nn.Linear(hidden, d)

        def forward(self, x):
            a, b = self.up(x).chunk(2, dim=-1)
            return self.down(self.dropout(torch.relu(a) * b))

    class Layer(nn.Module):
        def __init__(self, config: dict, first: bool):
            super().__init__()
            d = config["token_size"]
            self.attention_norm = nn.Identity() if first else nn.LayerNorm(d)
            self.attention = nn.MultiheadAttention(d, config["num_heads"], dropout=config["attention_dropout"],
                                                   batch_first=True)
            self.ffn_norm = nn.LayerNorm(d)
            self.ffn = ReGlu(d, max(1, round(config["ffn_factor"] * d)), config["ffn_dropout"])
            self.residual_dropout = nn.Dropout(config["residual_dropout"])

        def forward(self, x):
            h = self.attention_norm(x)
            x = x + self.residual_dropout(self.attention(h, h, h, need_weights=False)[0])
            return x + self.residual_dropout(self.ffn(self.ffn_norm(x)))

    class FtTransformer(nn.Module):
        def __init__(self, config: dict, numeric_width: int, cardinalities: list, out_features: int):
            super().__init__()
            d = config["token_size"]
            self.tokenizer = FeatureTokenizer(numeric_width, cardinalities, d)
            self.cls = nn.Parameter(torch.zeros(d))
            self.layers = nn.ModuleList(Layer(config, first=i == 0) for i in range(config["num_layers"]))
            self.head = nn.Sequential(nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, out_features))

        def forward(self, numeric, categorical):
            tokens = self.tokenizer(numeric, categorical)
            x = torch.cat([tokens, self.cls.expand(len(tokens), 1, -1)], dim=1)
            for layer in self.layers:
                x = layer(x)
            return self.head(x[:, -1])

    return {"mlp": TabularMlp, "ft-transformer": FtTransformer}


# --- loading ---------------------------------------------------------------------------------------

def load_table_model(model_dir: Path) -> tuple[Transform, Callable[[pd.DataFrame], np.ndarray]]:
    """(the transform, predict): predict(frame) -> class probabilities [n, k] or values [n] in the target's units."""
    model_dir = Path(model_dir)
    template = json.loads((model_dir / "template.json").read_text(encoding="utf-8"))
    transform = Transform(json.loads((model_dir / "preprocessing.json").read_text(encoding="utf-8")))
    classification = transform.task == "classification"
    if template["kind"] == "gbdt":
        import lightgbm

        booster = lightgbm.Booster(model_file=str(model_dir / "model.txt"))

        def predict(frame: pd.DataFrame) -> np.ndarray:
            numeric, categorical = transform(frame)
            output = booster.predict(np.hstack([numeric.astype(np.float64), categorical.astype(np.float64)]))
            if classification and len(transform.classes) == 2:
                return np.stack([1 - output, output], axis=1)
            return output
        return transform, predict

    import torch
    from safetensors.torch import load_model

    out = len(transform.classes) if classification else 1
    network = _networks()[template["kind"]](template, transform.numeric_width, transform.cardinalities, out)
    load_model(network, str(model_dir / "model.safetensors"))
    network.eval()

    @torch.no_grad()
    def predict(frame: pd.DataFrame) -> np.ndarray:
        numeric, categorical = transform(frame)
        logits = network(torch.from_numpy(numeric), torch.from_numpy(categorical))
        if classification:
            return torch.softmax(logits, dim=1).numpy()
        return logits[:, 0].numpy() * transform.target_std + transform.target_mean
    return transform, predict


def _plain(value: float) -> str:
    """1484705, 12345.7 or 0.0003007, never 1.4847e+06: a copy of the app's ui.formatting.readable_number
    (a Space runs without the app's packages)."""
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def form_fields(transform: Transform) -> list:
    """(column, kind, choices or None, info) per input column, for the page's form."""
    categories = {f["column"]: f["values"] for f in transform.categorical}
    numbers = {f["column"]: f for f in transform.numeric if f["part"] is None}
    fields = []
    for column, kind in transform.inputs.items():
        if column in categories:
            fields.append((column, kind, categories[column], f"{kind}; blank = missing"))
        elif column in numbers:
            seen = numbers[column]
            fields.append((column, kind, None, f"seen in training: {_plain(seen.get('minimum', 0))} to "
                                              f"{_plain(seen.get('maximum', 0))}; blank = missing"))
        else:
            fields.append((column, kind, None, "date, e.g. 2024-01-31 or 2024-01-31 14:00; blank = missing"))
    return fields
