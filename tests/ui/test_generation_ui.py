"""Text generation in the UI, handlers as plain functions: Train tab, Runs curves, Playground streaming and Stop.

One tiny character LSTM LM and one tiny classifier are trained once for the module (through the
form handlers and the job runner, as a person would), then every test uses them.
"""

import time

import gradio as gr
import pytest
import torch

from backend.config import template_classes, templates_of
from tests.ui.conftest import TINY_LSTM_VALUES, form_values
from ui import data_tab, generate_panel, playground_tab, runs_tab, train_tab
from ui.app import build_app

PATTERN = "the cat sat on a mat.\nbig dogs run far!\n"
TINY_LM_VALUES = {"batch_size": 16, "learning_rate": 0.01, "max_steps": 80, "eval_every_steps": 20,
                  "eval_batches": 2, "log_every_steps": 5, "block_size": 32, "hidden_size": 48}
SETTINGS = dict(max_new_tokens=30, temperature=1.0, top_k=0, top_p=1.0)


def only_id(services, before: set) -> int:
    return next(r.id for r in services.repo.list_runs() if r.id not in before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(services, LM run id, classifier run id, LM dataset id), trained once through the form handlers."""
    from backend.services import build_services
    from backend.settings import Settings

    folder = tmp_path_factory.mktemp("generation-ui")
    settings = Settings(home=folder / "home", _env_file=None)
    settings.ensure_dirs()
    services = build_services(settings)
    corpus = folder / "pattern.txt"
    corpus.write_text(PATTERN * 60, encoding="utf-8")
    data_tab.on_ingest(services, str(corpus), "text-generation", None, None, None, "pattern", 10)
    lm_dataset = services.repo.list_datasets()[0]
    assert lm_dataset.task == "text-generation"
    message = train_tab.on_launch(services, lm_dataset.id, "text-generation", "lstm-lm", "tiny lm",
                                  *form_values("lstm-lm", **TINY_LM_VALUES))
    assert "queued" in message, message
    lm_run = services.repo.list_runs()[0].id
    classes = folder / "feedback.csv"
    classes.write_text("message,verdict\n" + "".join(f"what a good day {i},happy\nwhat a bad day {i},sad\n"
                                                     for i in range(40)), encoding="utf-8")
    data_tab.on_ingest(services, str(classes), "text-classification", "message", "verdict", None, "toy", 20)
    toy = next(d for d in services.repo.list_datasets() if d.task == "text-classification")
    train_tab.on_launch(services, toy.id, "text-classification", "lstm", "classifier",
                        *form_values("lstm", **TINY_LSTM_VALUES))
    classifier_run = only_id(services, {lm_run})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared CPU: one thread is fastest
    try:
        services.runner.start()
        for run_id in (lm_run, classifier_run):
            run = services.runner.wait(run_id, 300)
            assert run.status == "succeeded", run.error
    finally:
        torch.set_num_threads(threads)
    yield services, lm_run, classifier_run, lm_dataset.id
    services.close()


def generate(services, run_id, prompt="the cat", session="s", switches=None, interval_s=0.0, **settings):
    """The list of values the streaming handler yields (by default every token: no update interval)."""
    values = {**SETTINGS, "seed": 3, **settings}
    return list(generate_panel.on_generate(
        services, switches if switches is not None else generate_panel.StopSwitches(), run_id, prompt,
        values["max_new_tokens"], values["temperature"], values["top_k"], values["top_p"], values["seed"], session=session,
        interval_s=interval_s))


# --- Train tab ----------------------------------------------------------------------------------

def test_train_tab_offers_the_language_model_templates_with_their_settings():
    template, epochs, learning_rate, weight_decay = train_tab.on_task_change("text-generation", "lstm")
    assert [value for _, value in template["choices"]] == list(templates_of("text-generation"))
    assert template["value"] == "lstm-lm" and learning_rate["value"] == 4e-3
    assert epochs["value"] == 3 and weight_decay["value"] == 0.01  # the LSTM classifier's 10 and 0.1 do not carry over
    description, *groups = train_tab.on_template_change("transformer-lm")
    assert "GPT-2-style" in description
    assert [g["visible"] for g in groups] == [kind == "transformer-lm" for kind in template_classes()]
    fields = set(train_tab.form_fields())
    assert {("lstm-lm", "block_size"), ("lstm-lm", "tokenizer"), ("transformer-lm", "num_heads"),
            ("transformer-lm-finetune", "base_model"), ("config", "max_steps"), ("config", "eval_batches")} <= fields
    # each task shows its own settings only: max length (classifier), max steps and eval batches (LM)
    assert list(train_tab.TASK_ONLY_FIELDS) == ["max_length", "max_steps", "eval_batches"]
    assert [u["visible"] for u in train_tab.on_task_fields("text-generation")][:3] == [False, True, True]
    assert [u["visible"] for u in train_tab.on_task_fields("text-classification")][:3] == [True, False, False]


def test_train_tab_refuses_a_bad_language_model_config(services):
    corpus = services.settings.home / "corpus.txt"
    corpus.write_text(PATTERN * 30, encoding="utf-8")
    data_tab.on_ingest(services, str(corpus), "text-generation", None, None, None, "", 10)
    dataset_id = services.repo.list_datasets()[0].id
    with pytest.warns(UserWarning):
        message = train_tab.on_launch(services, dataset_id, "text-generation", "transformer-lm", "",
                                      *form_values("transformer-lm", hidden_size=30, num_heads=4))
    assert "multiple of num_heads" in message and "ms-error" in message
    with pytest.warns(UserWarning, match="Pick a template for text-generation"):
        train_tab.on_launch(services, dataset_id, "text-generation", "lstm", "", *form_values("lstm"))
    assert services.repo.list_runs() == []


@pytest.mark.slow
def test_estimate_of_a_language_model_measures_its_steps(trained):
    services, _, _, dataset_id = trained
    text = train_tab.on_estimate(services, dataset_id, "text-generation", "lstm-lm", "",
                                 *form_values("lstm-lm", **TINY_LM_VALUES))
    assert "Parameters:" in text and "Time per epoch" in text and "ms-error" not in text


def test_finetuning_a_hub_model_offline_fails_with_a_clear_message(services):
    corpus = services.settings.home / "corpus.txt"
    corpus.write_text(PATTERN * 30, encoding="utf-8")
    data_tab.on_ingest(services, str(corpus), "text-generation", None, None, None, "", 10)
    dataset_id = services.repo.list_datasets()[0].id
    train_tab.on_launch(services, dataset_id, "text-generation", "transformer-lm-finetune", "",
                        *form_values("transformer-lm-finetune", base_model="surely-not/a-cached-model",
                                     max_steps=2))
    run_id = services.repo.list_runs()[0].id
    services.runner.start()
    run = services.runner.wait(run_id, 120)
    assert run.status == "failed"
    assert "could not be loaded" in run.error and "local" in run.error and "Traceback" not in run.error
    error = runs_tab.on_refresh_run(services, run_id)[8]
    assert error["visible"] is True and "surely-not/a-cached-model" in error["value"]


# --- Runs tab -----------------------------------------------------------------------------------

def test_runs_tab_draws_loss_and_bits_per_char(trained):
    services, lm_run, _, _ = trained
    progress, header, losses, quality, details, *_ = runs_tab.on_refresh_run(services, lm_run)
    assert "data-progress='100.0'" in progress and "lstm-lm" in header
    assert "80 steps" in header and "max length" not in header  # what a language model trains by
    assert set(losses["value"]["series"]) == {"train", "validation"}
    validation_loss = losses["value"].query("series == 'validation'")["value"]
    assert validation_loss.iloc[-1] < validation_loss.iloc[0]  # the pattern was learnt
    assert set(quality["value"]["series"]) == {"bits/char"}  # perplexity would flatten it on a shared axis
    assert quality["y_lim"] == [0, None]  # bits per char (about 4 at first) are not clipped to [0, 1]
    assert details["visible"] is False  # no per-class table or confusion matrix for a language model
    table, *_ = runs_tab.on_refresh_list(services, "all", lm_run)
    assert "bits/char" in table.set_index("id").loc[lm_run, "best"]


# --- Playground ---------------------------------------------------------------------------------

def test_run_picker_lists_both_kinds_and_switches_panels(trained):
    services, lm_run, classifier_run, _ = trained
    picker = playground_tab.on_refresh_runs(services, lm_run)
    labels = dict((value, label) for label, value in picker["choices"])
    assert set(labels) == {lm_run, classifier_run} and picker["value"] == lm_run
    assert "text generator" in labels[lm_run] and "classifier" in labels[classifier_run]
    classify, generation, text, *results, prompt, picked = playground_tab.on_show_panel(services, lm_run)
    assert (classify["visible"], generation["visible"], picked) == (False, True, True)
    # the classifier's text and every old result go with the switch; the prompt shown stays as typed
    assert (text, results, prompt) == ("", [None, "", ""], {"__type__": "update"})
    classify, generation, text, *results, prompt, picked = playground_tab.on_show_panel(services, classifier_run)
    assert (classify["visible"], generation["visible"]) == (True, False)
    assert (text, results, prompt) == ({"__type__": "update"}, [None, "", ""], "")
    # The page's first pick clears no result: none of another model can be there yet, and on a busy
    # server it can land after the answer to an early Predict.
    classify, generation, text, *results, prompt, picked = playground_tab.on_show_panel(
        services, classifier_run, picked_before=False)
    assert (classify["visible"], generation["visible"], picked) == (True, False, True)
    assert results == [{"__type__": "update"}] * 3 and text == {"__type__": "update"}
    classify, generation, *_ = playground_tab.on_show_panel(services, None)
    assert (classify["visible"], generation["visible"]) == (True, False)
    # An empty picker is no pick: its change as the page opens with no finished run must not make
    # the first real pick clear (that wiped the answer to an early Predict).
    *_, picked = playground_tab.on_show_panel(services, None, picked_before=False)
    assert picked is False
    *_, picked = playground_tab.on_show_panel(services, None, picked_before=True)
    assert picked is True   # a run was picked before: its results may still be on the page
    # an example fills the input that shows, never the other panel's (no classifier text in the prompt)
    assert playground_tab.on_example(services, ["a spam text"], classifier_run) == ("a spam text", "", None, "", "")
    assert playground_tab.on_example(services, ["the cat"], lm_run) == ("", "the cat", None, "", "")
    assert playground_tab.on_pick_run(services, None)["visible"] is False  # no heading over no examples
    prompts = [sample[0] for sample in playground_tab.on_pick_run(services, lm_run)["samples"]]
    assert prompts and all(prompt in PATTERN for prompt in prompts)  # starts of validation lines


@pytest.mark.slow
def test_generation_streams_growing_text_and_repeats_with_a_seed(trained):
    services, lm_run, _, _ = trained
    values = generate(services, lm_run)
    assert values[0] == ""  # the previous continuation is cleared at once
    pieces = values[1:]
    assert len(pieces) == SETTINGS["max_new_tokens"]  # a character model: one token, one character
    assert all(later.startswith(earlier) and len(later) > len(earlier) for earlier, later in zip(pieces, pieces[1:]))
    assert generate(services, lm_run)[-1] == pieces[-1]  # same seed, same text
    switches = generate_panel.StopSwitches()
    random_text = generate(services, lm_run, seed=None, switches=switches)[-1]
    ended = generate_panel.on_generation_ended(switches, "s")
    seed_used = int(ended.split("seed **")[1].split("**")[0])  # an empty seed: a random one, shown
    assert generate(services, lm_run, seed=seed_used)[-1] == random_text
    others = {generate(services, lm_run, seed=seed)[-1] for seed in (4, 5, 6)}
    assert others - {pieces[-1]}
    greedy = generate(services, lm_run, prompt="the cat sat", max_new_tokens=29, temperature=0)[-1]
    assert greedy == " on a mat.\nbig dogs run far!\n"  # the trained model continues the pattern


@pytest.mark.e2e
@pytest.mark.slow
def test_fast_tokens_are_sent_in_fewer_updates_with_the_same_text(trained):
    services, lm_run, _, _ = trained
    every_token = generate(services, lm_run, max_new_tokens=300)
    throttled = generate(services, lm_run, max_new_tokens=300, interval_s=60)
    assert throttled == ["", every_token[-1]]  # nothing within the interval: only the clear and the end
    assert len(generate(services, lm_run, max_new_tokens=300, interval_s=generate_panel.STREAM_INTERVAL_S)) < 300


def test_an_empty_seed_picks_a_random_one(trained):
    services, lm_run, _, _ = trained
    texts = {generate(services, lm_run, seed=value, max_new_tokens=40)[-1] for value in (None, None, float("nan"))}
    assert len(texts) > 1


def test_stop_ends_the_stream_of_its_own_session_only(trained):
    services, lm_run, _, _ = trained
    switches = generate_panel.StopSwitches()
    mine = generate_panel.on_generate(services, switches, lm_run, "the", 500, 1.0, 0, 1.0, 1, session="mine",
                                      interval_s=0)
    other = generate_panel.on_generate(services, switches, lm_run, "the", 50, 1.0, 0, 1.0, 1, session="other",
                                       interval_s=0)
    seen = [next(mine) for _ in range(5)]
    next(other)
    generate_panel.on_stop(switches, "mine")
    rest = list(mine)
    assert len(seen[-1]) + len(rest) < 20  # stopped after the token being sampled, far before 500
    stopped_at = len(rest[-1]) if rest else len(seen[-1])  # a character model: one token per character
    assert generate_panel.on_generation_ended(switches, "mine").startswith(f"Stopped at {stopped_at:,} tokens")
    assert len(list(other)[-1]) == 50  # the other session's generation was not stopped
    assert generate_panel.on_generation_ended(switches, "other").startswith("Wrote 50 tokens · seed **1**")
    assert generate_panel.on_generation_ended(switches, "other") == ""  # told once
    assert len(switches) == 0  # finished generations leave no flag behind
    generate_panel.on_stop(switches, "nobody")  # a Stop with nothing running is harmless


def test_a_slow_generation_streams_several_updates_a_second_but_no_more_than_one_an_interval(trained, monkeypatch):
    """A model writing a token every 10 ms (2 s for 200): the browser gets a steady stream, not 3 chunks."""
    from backend.tasks.text_generation.generator import Generator

    services, lm_run, _, _ = trained
    fast_stream = Generator.stream

    def paced_stream(self, *args, **kwargs):
        for piece in fast_stream(self, *args, **kwargs):
            time.sleep(0.01)
            yield piece

    monkeypatch.setattr(Generator, "stream", paced_stream)
    interval = generate_panel.STREAM_INTERVAL_S
    times, values = [], []
    for value in generate_panel.on_generate(services, generate_panel.StopSwitches(), lm_run, "the", 200, 1.0, 0,
                                            1.0, 3, session="s", interval_s=interval):
        times.append(time.monotonic())
        values.append(value)
    updates = values[1:-1]  # between the clear and the final text
    assert len(updates) >= 8, len(updates)  # several a second over the >= 2 s it takes
    gaps = [later - earlier for earlier, later in zip(times[1:-1], times[2:-1])]
    assert all(gap >= interval * 0.9 for gap in gaps), gaps  # at most one update per interval
    assert len(values[-1]) == 200 and all(values[-1].startswith(v) for v in updates)


def test_a_new_generation_stops_the_one_its_session_still_runs(trained):
    """A second Generate of one browser session (a double click) ends the first: both would fill one box."""
    services, lm_run, _, _ = trained
    switches = generate_panel.StopSwitches()
    first = generate_panel.on_generate(services, switches, lm_run, "the", 500, 1.0, 0, 1.0, 1, session="mine",
                                       interval_s=0)
    seen = [next(first) for _ in range(5)]
    second = generate_panel.on_generate(services, switches, lm_run, "the", 30, 1.0, 0, 1.0, 2, session="mine",
                                        interval_s=0)
    next(second)
    rest = list(first)
    assert len(seen[-1]) + len(rest) < 20  # stopped after the token being sampled, far before 500
    assert len(list(second)[-1]) == 30  # the new one runs to its end
    assert len(switches) == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_new_tokens=0), "max_new_tokens: Input should be greater than or equal to 1"),
    (dict(max_new_tokens=100_000), "max_new_tokens: Input should be less than or equal to 2000"),
    (dict(temperature=-1), "temperature: Input should be greater than or equal to 0"),
    (dict(top_k=-3), "top_k: Input should be greater than or equal to 0"),
    (dict(top_p=0), "top_p: Input should be greater than 0"),
    (dict(top_p=1.5), "top_p: Input should be less than or equal to 1"),
    (dict(seed=-1), "seed: Input should be greater than or equal to 0"),
    (dict(top_k=2.5), "top_k: Input should be a valid integer"),
    (dict(prompt="x" * 10_001), "the limit is 10,000"),
])
def test_bad_generation_settings_say_what_to_fix(trained, kwargs, message):
    services, lm_run, _, _ = trained
    with pytest.raises(gr.Error, match=message.replace("(", r"\(")):
        generate(services, lm_run, **kwargs)


def test_generation_refuses_the_wrong_run(trained, services):
    trained_services, lm_run, classifier_run, _ = trained
    with pytest.raises(gr.Error, match="classifies texts and cannot write any"):
        generate(trained_services, classifier_run)
    with pytest.raises(gr.Error, match="Pick a finished text-generation run"):
        generate(trained_services, None)
    with pytest.raises(gr.Error, match="Run 999 does not exist"):
        generate(trained_services, 999)
    for bad in ("abc", 2.5, -1):
        with pytest.raises(gr.Error, match="is not a run id: pick a run from the list"):
            generate(trained_services, bad)
    with pytest.raises(gr.Error, match="is not a run id"):
        playground_tab.on_predict(trained_services, "#1", "hello")
    with pytest.raises(gr.Error, match="writes text rather than classify"):
        playground_tab.on_predict(trained_services, lm_run, "hello")
    with pytest.warns(UserWarning, match="writes text rather than classify"):
        download, summary, *_ = playground_tab.on_batch(trained_services, lm_run, "some.csv")
    assert download is None and "ms-error" in summary


def test_unfinished_language_model_run_cannot_generate(services):
    corpus = services.settings.home / "corpus.txt"
    corpus.write_text(PATTERN * 30, encoding="utf-8")
    data_tab.on_ingest(services, str(corpus), "text-generation", None, None, None, "", 10)
    train_tab.on_launch(services, services.repo.list_datasets()[0].id, "text-generation", "lstm-lm", "",
                        *form_values("lstm-lm", **TINY_LM_VALUES))
    queued = services.repo.list_runs()[0].id
    with pytest.raises(gr.Error, match="is queued; only succeeded runs can generate"):
        generate(services, queued)


def test_unknown_prompt_characters_are_dropped_with_a_notice(trained):
    services, lm_run, _, _ = trained
    with pytest.warns(UserWarning, match="left out of the prompt: QXZ"):
        values = generate(services, lm_run, prompt="the QXZ cat")
    assert values[-1] == generate(services, lm_run, prompt="the  cat")[-1]


def test_the_app_exposes_predict_and_generate_and_nothing_else(trained):
    services, *_ = trained
    demo = build_app(services)
    public = [d.get("api_name") for d in demo.config["dependencies"] if d.get("api_visibility", "public") != "private"]
    assert sorted(public) == ["generate", "predict"]  # every other handler stays private


@pytest.mark.slow
@pytest.mark.e2e
def test_generate_api_streams_to_gradio_client_even_for_runs_trained_after_start(trained):
    import socket

    from gradio_client import Client

    from ui.app import launch_kwargs

    services, _, _, dataset_id = trained
    demo = build_app(services)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.launch(**launch_kwargs(services.settings) | {"server_port": port, "prevent_thread_lock": True,
                                                       "quiet": True})
    try:
        # A run the server has never listed: the API must take it all the same.
        config = train_tab.build_config(dataset_id, "text-generation", "lstm-lm", "late",
                                        form_values("lstm-lm", **TINY_LM_VALUES))
        late = services.runner.submit(config)
        assert services.runner.wait(late, 300).status == "succeeded"
        client = Client(f"http://127.0.0.1:{port}", verbose=False)
        job = client.submit(late, "the cat sat", 29, 0, 0, 1, 7, api_name="/generate")
        assert job.result() == " on a mat.\nbig dogs run far!\n"
        with pytest.raises(Exception, match="writes text rather than classify"):
            client.predict(late, "hello", api_name="/predict")
    finally:
        demo.close()


def test_a_corpus_report_gives_characters_vocabulary_split_and_a_sample(services, tmp_path):
    corpus = tmp_path / "poem.txt"
    text = "".join(f"line {i} of the little poem\n" for i in range(100))
    corpus.write_text(text, encoding="utf-8")
    report, charts, classes, lengths, *_ = data_tab.on_ingest(services, str(corpus), "text-generation", None, None,
                                                              None, "poem", 10)
    assert "Rows:" not in report and "training 1" not in report
    assert f"**Characters:** {len(text):,} in 100 lines (600 words)" in report
    assert "**Vocabulary:** 22 distinct characters, 105 distinct words" in report
    assert "validation" in report and "line 0 of the little poem" in report  # the sample
    dataset = services.repo.list_datasets()[0]
    assert f"training {dataset.report['train_characters']:,} characters" in report
    assert lengths["title"] == "Line length (characters)"
    # every line is 25-26 characters: the histogram is of lines, not one bar for the whole text
    assert lengths["value"]["count"].sum() == 100 and lengths["sort"] == lengths["value"]["length"].tolist()


def test_the_gpu_preset_fills_the_form_with_nanogpts_recipe():
    assert train_tab.on_task_presets("text-classification")[0]["visible"] is False  # no presets there
    offered = train_tab.on_task_presets("text-generation")[0]
    label = "GPU: nanoGPT's Shakespeare recipe"
    assert offered["visible"] is True and (label, label) in offered["choices"]
    dataset_id, task, template, name, *values, note = train_tab.on_preset_picked(7, "text-generation", "shake", label)
    assert dataset_id == gr.skip() and task == "text-generation" and name == "shake"
    assert template["value"] == "transformer-lm"
    config = train_tab.build_config(7, task, "transformer-lm", name, values)  # what Launch would queue
    assert (config.batch_size, config.learning_rate, config.max_steps, config.eval_every_steps) == (64, 1e-3, 5000, 250)
    assert config.template.model_dump() | {"tokenizer": None, "vocab_size": None} == {
        "kind": "transformer-lm", "tokenizer": None, "vocab_size": None, "block_size": 256, "hidden_size": 384,
        "num_layers": 6, "num_heads": 6, "dropout": 0.2}
    assert "A100" in note
    # "none" leaves what the person typed alone.
    assert all(update == gr.skip() for update in train_tab.on_preset_picked(7, "text-generation", "", "")[:-1])
