"""Template configs: typed, frozen, no unknown fields, round-trip through JSON as a discriminated union."""

import pytest
from pydantic import TypeAdapter, ValidationError

from backend.tasks.tabular.config import (AnyTabularTemplate, FtTransformerTemplate, GbdtTemplate, MlpTemplate,
                                          TABULAR_TEMPLATES, TabularFitSettings)


def test_every_field_has_a_description():
    for cls in [*TABULAR_TEMPLATES.values(), TabularFitSettings]:
        for name, info in cls.model_fields.items():
            assert name == "kind" or info.description, f"{cls.__name__}.{name}"


def test_json_round_trip_picks_the_right_template():
    adapter = TypeAdapter(AnyTabularTemplate)
    for template in (MlpTemplate(dropout=0.3), FtTransformerTemplate(num_layers=2), GbdtTemplate(num_leaves=15)):
        assert adapter.validate_json(template.model_dump_json()) == template


def test_bad_values_are_refused():
    with pytest.raises(ValidationError, match="multiple of num_heads"):
        FtTransformerTemplate(token_size=100, num_heads=8)
    with pytest.raises(ValidationError, match="Extra inputs"):
        MlpTemplate(hidden=3)
    with pytest.raises(ValidationError):
        TabularFitSettings(learning_rate=0)
    with pytest.raises(ValidationError):
        MlpTemplate().model_copy(update={}).__setattr__("dropout", 0.5)   # frozen
