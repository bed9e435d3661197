"""The image templates' configs: typed, frozen, described, validated once, stored as JSON and read back."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from backend.tasks.image_classification.config import CnnTemplate, ImageTemplate, PretrainedImageTemplate


@pytest.mark.parametrize("config_class", [CnnTemplate, PretrainedImageTemplate])
def test_every_setting_has_a_description_for_the_form(config_class):
    missing = [name for name, field in config_class.model_fields.items() if name != "kind" and not field.description]
    assert missing == []


def test_templates_round_trip_through_json_by_kind():
    adapter = TypeAdapter(ImageTemplate)
    for template in (CnnTemplate(width=16, augmentation="strong"), PretrainedImageTemplate(base_model="/models/vit")):
        assert adapter.validate_json(adapter.dump_json(template)) == template


@pytest.mark.parametrize("bad", [{"width": 2}, {"stages": 0}, {"dropout": 1.0}, {"augmentation": "heavy"},
                                 {"input_size": 4}, {"colour": "red"}])
def test_bad_cnn_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        CnnTemplate(**bad)


def test_configs_are_frozen():
    template = CnnTemplate()
    with pytest.raises(ValidationError):
        template.width = 64
