"""Real-browser flows: Playwright drives Debian's headless Chromium against the app on 127.0.0.1.

Each test saves a screenshot under tests/output/screenshots/ so a person can look at it.
"""

import re
import socket
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "tests" / "output" / "screenshots"
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed "
                                                                 "(apt-get install -y chromium)")]
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def app_url(services):
    from ui.app import build_app, launch_kwargs

    from backend.serving.startup import start_in_background

    services.runner.start()
    demo = build_app(services)
    start_in_background(services.settings)  # as `python app.py` does: torch loads while the page is up
    kwargs = launch_kwargs(services.settings) | {"server_port": free_port(), "prevent_thread_lock": True,
                                                  "quiet": True}
    demo.launch(**kwargs)
    yield f"http://127.0.0.1:{kwargs['server_port']}"
    demo.close()


@pytest.fixture
def paced_runs(services):
    """Slows every progress report of the app's (in-process) runs by pace["seconds"] (0 stops it).

    A click that must meet a run still training (Stop, a reload mid-run) raced the run itself: on a
    busy machine, or beside another test worker, the 30-epoch toy run ended before the click landed
    (a run that already succeeded cannot be stopped). Paced, the run cannot end in under ~30 s.
    """
    pace = {"seconds": 0.3}
    services.runner.add_listener(lambda *_: time.sleep(pace["seconds"]))
    return pace


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-gpu", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    if "app_url" in request.fixturenames:
        # Start the app first so the page closes first: Gradio's close() waits up to 5 s for the
        # server thread, which does not end while a page still holds its polling connections.
        request.getfixturevalue("app_url")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def snap(page, name: str) -> None:
    """An extra screenshot of the page as it is now."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=re.compile(name)).click()


def pick(page, elem_id: str, option: str) -> None:
    """Choose an option of a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=re.compile(re.escape(option))).first.click()


def set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def upload_and_ingest(page, csv_path: Path, text_column: str, label_column: str) -> None:
    open_tab(page, "Data")
    page.locator("#data-upload input[type=file]").set_input_files(str(csv_path))
    page.locator("#file-info").get_by_text("rows").wait_for()
    pick(page, "text-column", text_column)
    pick(page, "label-column", label_column)
    page.locator("#ingest").click()


def launch_tiny_lstm(page, epochs=3, batch_size=8, **template) -> None:
    open_tab(page, "Train")
    set_number(page, "Epochs", epochs)
    set_number(page, "Batch size", batch_size)
    set_number(page, "Learning rate", 0.01)
    page.get_by_text("Advanced settings").click()
    for label, value in {"Vocab size": 100, "Embedding dim": 16, "Hidden size": 16, **template}.items():
        set_number(page, label, value)
    page.locator("#launch").click()
    page.locator("#launch-output").get_by_text("queued").wait_for()


def progress_of(page) -> float:
    return float(page.locator("#run-progress .ms-progress").get_attribute("data-progress"))


def wait_for_progress(page, predicate, timeout_s=120) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = progress_of(page)
            if predicate(value):
                return value
        except Exception:  # the progress element re-renders every tick
            pass
        page.wait_for_timeout(250)
    raise AssertionError(f"progress never satisfied the condition (last: {page.locator('#run-progress').inner_text()})")


def test_upload_map_train_watch_and_predict(page, app_url, toy_csv, services):
    page.goto(app_url)
    upload_and_ingest(page, toy_csv, "message", "verdict")
    page.locator("#ingest-report").get_by_text("happy (40)").wait_for()
    page.wait_for_timeout(1500)  # let the charts draw
    snap(page, "flow1_data_report")
    launch_tiny_lstm(page)
    page.locator("#estimate").click()
    page.locator("#estimate-output").get_by_text("Time per epoch").wait_for()
    open_tab(page, "Runs")
    assert wait_for_progress(page, lambda p: p >= 100.0) == 100.0
    page.locator("#run-progress").get_by_text("succeeded").wait_for()
    page.get_by_text("Per-class metrics").wait_for()
    page.locator("#confusion").get_by_text("Confusion matrix").wait_for()
    page.wait_for_timeout(1000)  # let the curves draw
    snap(page, "flow1_runs_finished")
    open_tab(page, "Playground")
    # As a person would, wait for the tab to show the run it picked (its validation examples come
    # last): a click before a run is in the picker, Predict's input, carries no run and gets "Pick a
    # finished run first" (under load, 2 runs in 9, before the picker followed runs that end).
    page.locator("#playground-examples").get_by_text("good day").first.wait_for()
    page.locator("#playground-text textarea").fill("what a good day")
    page.locator("#predict").click()
    page.locator("#prediction").get_by_text("happy").first.wait_for()
    run = services.repo.list_runs()[0]
    assert run.status == "succeeded" and run.config.template.hidden_size == 16
    open_tab(page, "Runs")
    page.locator("#clone-run").click()  # Clone opens the Train tab with the run's settings
    expect(page.get_by_label("Run name")).to_have_value(re.compile(r"\(clone\)$"))
    expect(page.get_by_label("Hidden size", exact=True).first).to_have_value("16")


def test_progress_continues_after_reload(page, app_url, toy_csv, services, paced_runs):
    page.goto(app_url)
    upload_and_ingest(page, toy_csv, "message", "verdict")
    page.locator("#ingest-report").get_by_text("happy (40)").wait_for()
    launch_tiny_lstm(page, epochs=40, batch_size=2)  # long enough to reload mid-run
    open_tab(page, "Runs")
    before = wait_for_progress(page, lambda p: 0 < p < 60)
    page.reload()
    open_tab(page, "Runs")
    after = wait_for_progress(page, lambda p: p > before)
    assert after > before
    second = page.context.new_page()  # a second browser tab sees the same run
    second.goto(app_url)
    open_tab(second, "Runs")
    assert wait_for_progress(second, lambda p: p > 0) > 0
    second.close()
    run_id = services.repo.list_runs()[0].id
    services.runner.stop(run_id)
    services.runner.wait(run_id, 60)


def test_stop_and_resume(page, app_url, toy_csv, services, paced_runs):
    page.goto(app_url)
    upload_and_ingest(page, toy_csv, "message", "verdict")
    page.locator("#ingest-report").get_by_text("happy (40)").wait_for()
    launch_tiny_lstm(page, epochs=30, batch_size=2)
    open_tab(page, "Runs")
    wait_for_progress(page, lambda p: p > 2)
    page.locator("#stop-run").click()
    page.locator("#run-progress").get_by_text("cancelled").wait_for()
    stopped_at = progress_of(page)
    assert 0 < stopped_at < 100
    paced_runs["seconds"] = 0  # the rest of the run at full speed
    page.locator("#resume-run").click()
    assert wait_for_progress(page, lambda p: p >= 100.0, timeout_s=180) == 100.0
    page.locator("#run-progress").get_by_text("succeeded").wait_for()
    run = services.repo.list_runs()[0]
    steps = [m.step for m in services.repo.get_metrics(run.id, ["train_loss"])]
    assert steps == sorted(steps) and run.status == "succeeded"


def test_bad_upload_shows_its_message(page, app_url, tmp_path, services):
    one_class = tmp_path / "one_class.csv"
    one_class.write_text("review,stars\n" + "\n".join(f"fine product {i},5" for i in range(20)) + "\n")
    page.goto(app_url)
    upload_and_ingest(page, one_class, "review", "stars")
    page.locator("#ingest-report .ms-error").get_by_text("at least two different labels").wait_for()
    assert "Traceback" not in page.content()
    assert services.repo.list_datasets() == []


def predict_with_the_first_run_as_it_ends(page, app_url, services, tmp_path):
    """Open the Playground before any run has finished and type a text; train a first run, wait for
    the page to pick it (its run watcher, not a new visit of the tab) and click Predict.
    Returns the run's id and the answer, once shown."""
    from tests.reliability.support import ingest_toy, train_tiny_lstm

    dataset = ingest_toy(services, tmp_path, pairs=40)
    page.goto(app_url)
    open_tab(page, "Playground")
    picker = page.locator("#playground-run input")
    page.locator("#playground-text textarea").fill("what a good day")   # waits for the page's first refresh
    expect(picker).to_have_value("")   # no finished run yet
    run_id = train_tiny_lstm(services, dataset.id, epochs=1)
    expect(picker).to_have_value(re.compile(rf"^#{run_id} "), timeout=30_000)
    page.locator("#predict").click()
    answer = page.locator("#prediction").get_by_text(re.compile("happy|sad")).first
    answer.wait_for()
    return run_id, answer


@pytest.fixture
def panel_switch_after_the_answer(monkeypatch):
    """The Playground's panel switch for a picked run waits until a prediction has been answered.

    That is the order a busy server can give (bench/playground_first_click.py --when tab-open): the
    picker's change and Predict leave the page together, and the answer lands first. Patched before
    the app is built (list this fixture before app_url). Yields an Event set once the switch returned.
    """
    from ui import playground_tab

    answered, switched = threading.Event(), threading.Event()
    show_panel, predict = playground_tab.on_show_panel, playground_tab.on_predict

    def on_predict(services, run_id, text):
        try:
            return predict(services, run_id, text)
        finally:
            answered.set()

    def on_show_panel(services, run_id, picked_before=True):
        if not run_id:   # the empty picker as the page opens: nothing to wait for
            return show_panel(services, run_id, picked_before)
        answered.wait(timeout=60)
        try:
            return show_panel(services, run_id, picked_before)
        finally:
            switched.set()

    monkeypatch.setattr(playground_tab, "on_predict", on_predict)
    monkeypatch.setattr(playground_tab, "on_show_panel", on_show_panel)
    return switched


def test_the_first_run_picked_while_the_tab_is_open_keeps_an_answer_that_came_first(
        panel_switch_after_the_answer, page, app_url, services, tmp_path):
    """The page opens before any run has finished; the first run's panel switch lands after the answer
    to Predict. It must not clear that answer (the page had shown no other model's result)."""
    _, answer = predict_with_the_first_run_as_it_ends(page, app_url, services, tmp_path)
    assert panel_switch_after_the_answer.wait(timeout=60), "the Playground never switched to the run's panel"
    for _ in range(30):   # 3 s: the switch's update reaches the page well within it
        assert answer.is_visible(), "the answer was cleared after it was shown"
        page.wait_for_timeout(100)


def test_a_run_that_ends_is_listed_in_the_playground_and_share_pickers_while_the_tab_is_open(
        page, app_url, services, tmp_path):
    """Someone waits on the Playground for their first run: when it ends, its picker lists and picks it
    without the tab being opened again, and Predict answers. The same on the Share tab for the next run."""
    from tests.reliability.support import train_tiny_lstm

    first, _ = predict_with_the_first_run_as_it_ends(page, app_url, services, tmp_path)

    open_tab(page, "Share")
    expect(page.locator("#share-run input")).to_have_value(re.compile(rf"^#{first} "))
    second = train_tiny_lstm(services, services.get_run(first).dataset_id, epochs=1)
    listed, deadline = False, time.monotonic() + 30   # the page's run watcher looks every 3 s
    while not listed and time.monotonic() < deadline:
        page.locator("#share-run input").click()   # the open list shows the choices of now
        listed = page.get_by_role("option", name=re.compile(rf"^#{second} ")).is_visible()
        page.keyboard.press("Escape")
        page.locator("#share-run input").blur()   # a click on the focused box would not open the list again
        page.wait_for_timeout(500)
    assert listed, f"run #{second} never appeared in the Share tab's picker"
    expect(page.locator("#share-run input")).to_have_value(re.compile(rf"^#{first} "))   # the choice is kept


def test_an_optional_number_setting_starts_empty_not_zero(page, app_url):
    """The transformer's dropout is optional ("empty keeps the model's own"); Gradio's number box would
    show and send 0 (gradio-app/gradio#6728), so the form has a text box there."""
    page.goto(app_url)
    open_tab(page, "Train")
    page.get_by_label("Template").click()
    page.get_by_role("option", name="transformer", exact=True).click()
    page.get_by_text("Advanced settings").click()
    expect(page.get_by_label("Dropout (optional)")).to_have_value("")


@pytest.fixture
def slow_form_change(monkeypatch):
    """The Train form's change handler answers 2 s late, as on a busy server (patched before the app is built)."""
    from ui import train_tab

    on_form_changed = train_tab.on_form_changed

    def late(*args):
        time.sleep(2)
        return on_form_changed(*args)

    monkeypatch.setattr(train_tab, "on_form_changed", late)


def test_a_launch_confirmation_stays_when_the_last_edit_answers_after_it(
        slow_form_change, page, app_url, services, tmp_path):
    """Typing a setting and clicking Launch at once: the box's change (sent as the click leaves it)
    answers after the launch. The "queued" confirmation must stay (it used to be cleared)."""
    from tests.reliability.support import ingest_toy

    ingest_toy(services, tmp_path, pairs=40)
    page.goto(app_url)
    launch_tiny_lstm(page, epochs=1)   # fills numbers, clicks Launch, waits for "queued"
    confirmation = page.locator("#launch-output").get_by_text("queued")
    for _ in range(40):   # 4 s: past the late change's answer
        assert confirmation.is_visible(), "the launch confirmation was cleared"
        page.wait_for_timeout(100)
