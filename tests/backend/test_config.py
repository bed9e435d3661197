"""TrainConfig: validation, template discrimination, overrides, JSON round trip."""

import pytest
from pydantic import ValidationError

from backend.config import template_classes, TrainConfig, apply_overrides, default_config, template_description

from backend.tasks.text_classification.configs import LstmTemplate, TransformerScratchTemplate


def test_json_round_trip_keeps_template_kind():
    config = default_config(3, "transformer-scratch")
    again = TrainConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert isinstance(again.template, TransformerScratchTemplate)


def test_overrides_parse_values_and_reach_template_fields():
    config = apply_overrides(default_config(1, "lstm"), {"epochs": "2", "hidden_size": "64",
                                                          "template.bidirectional": "false"})
    assert config.epochs == 2
    assert config.template.hidden_size == 64
    assert config.template.bidirectional is False


def test_unknown_setting_and_out_of_range_values_are_named():
    with pytest.raises(KeyError, match="unknown setting 'epochz'"):
        apply_overrides(default_config(1, "lstm"), {"epochz": "2"})
    with pytest.raises(ValidationError, match="batch_size"):
        apply_overrides(default_config(1, "lstm"), {"batch_size": "0"})


def test_heads_must_divide_hidden_size():
    with pytest.raises(ValidationError, match="multiple of num_heads"):
        TransformerScratchTemplate(hidden_size=30, num_heads=4)


def test_extra_fields_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        TrainConfig(dataset_id=1, template=LstmTemplate(), epoch=3)


def test_every_template_has_a_description():
    for kind in template_classes():
        assert len(template_description(kind)) > 20


def test_each_template_starts_from_its_own_training_settings():
    assert default_config(1, "transformer").learning_rate == 5e-5  # fine-tuning: small steps
    transformer, lstm = default_config(1, "transformer"), default_config(1, "lstm")
    assert (transformer.epochs, transformer.weight_decay) == (3, 0.01)
    # From scratch on small data the LSTM needs more epochs and stronger regularisation (SST-2 sweep).
    assert (lstm.epochs, lstm.learning_rate, lstm.weight_decay) == (10, 2e-3, 0.1)
