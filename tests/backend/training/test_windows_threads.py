"""An LSTM language model trains on one CPU thread (more only add barriers to its recurrence); the count comes back."""

from __future__ import annotations

import pytest
import torch

from backend.training.run import get_accelerator, train
from tests.backend.lm_fixtures import dataset, lstm_lm_config, transformer_lm_config
from tests.backend.training_fixtures import never


def _threads_during_training(config, tmp_path) -> set[int]:
    seen: set[int] = set()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train(config, dataset(), tmp_path / config.template.kind, should_stop=never,
              on_progress=lambda step, values: seen.add(torch.get_num_threads()), accelerator=get_accelerator("cpu"))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert after == 2  # restored
    return seen


def test_lstm_lm_trains_on_one_thread_and_restores_the_count(tmp_path):
    assert _threads_during_training(lstm_lm_config(max_steps=10, eval_every_steps=5), tmp_path) == {1}


@pytest.mark.e2e
@pytest.mark.slow
def test_transformer_lm_keeps_the_thread_count(tmp_path):
    assert 2 in _threads_during_training(transformer_lm_config(max_steps=10, eval_every_steps=5), tmp_path)
