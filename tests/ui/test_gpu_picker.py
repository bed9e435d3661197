"""The Train tab's "GPUs for this run" picker, on a machine made to look like it has three GPUs
(MODELSMITH_GPUS names them, so nothing asks CUDA): shown only with several GPUs, and what it
picks is what the run asks the queue for and what the shown `accelerate launch` command says."""

import shlex

import gradio as gr
import pytest

from backend.services import build_services
from backend.settings import Settings
from tests.ui.conftest import TINY_LSTM_VALUES, form_values
from tests.ui.test_handlers import ingest_toy
from ui import train_tab


def gpu_services(settings, gpus: str, device: str = "cuda"):
    return build_services(Settings(home=settings.home, database_url=settings.database_url, launcher="process",
                                   device=device, gpus=gpus, _env_file=None))


@pytest.fixture
def three_gpus(settings):
    services = gpu_services(settings, "0,1,2")
    yield services
    services.close()


def picker_shown(services) -> bool:
    with gr.Blocks() as blocks:
        train_tab.build_train_tab(services)
    picker = next(block for block in blocks.blocks.values() if getattr(block, "elem_id", None) == "gpu-picker")
    return picker.visible


def launch_words(services, dataset_id, *picker) -> list[str]:
    _, text = train_tab.on_show_command(services, dataset_id, "text-classification", "lstm", "",
                                        *form_values(**TINY_LSTM_VALUES), *picker)
    return shlex.split(text.split("How the app starts this run's worker:**\n```bash\n")[1].split("\n```")[0])


def test_the_picker_is_shown_only_where_there_are_several_gpus(settings, three_gpus):
    assert picker_shown(three_gpus)
    for gpus, device in (("0", "cuda"), ("", "cpu")):
        services = gpu_services(settings, gpus, device)
        try:
            assert not picker_shown(services)
        finally:
            services.close()


def test_the_picked_gpus_are_in_the_shown_command_and_in_the_queued_run(three_gpus, toy_csv):
    dataset = ingest_toy(three_gpus, toy_csv)
    for picker, visible, processes in ((("all", []), "0,1,2", "3"), (("one", []), "0", "1"),
                                       (("pick", ["0", "2"]), "0,2", "2")):
        words = launch_words(three_gpus, dataset.id, *picker)
        assert words[0] == f"CUDA_VISIBLE_DEVICES={visible}", (picker, words[:3])
        assert words[words.index("--num_processes") + 1] == processes
    train_tab.on_launch(three_gpus, dataset.id, "text-classification", "lstm", "picked",
                        *form_values(**TINY_LSTM_VALUES), "pick", ["1", "2"])
    queued = three_gpus.queued_runs()[-1]
    assert queued.name == "picked" and queued.gpu_request == "1,2"


def test_pick_with_no_gpu_ticked_is_refused_with_a_reason(three_gpus, toy_csv):
    dataset = ingest_toy(three_gpus, toy_csv)
    message = train_tab.on_launch(three_gpus, dataset.id, "text-classification", "lstm", "",
                                  *form_values(**TINY_LSTM_VALUES), "pick", [])
    assert "Tick at least one GPU" in message and "ms-error" in message
    assert three_gpus.queued_runs() == []
