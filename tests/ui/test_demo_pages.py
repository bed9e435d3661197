"""Public demo links, served for real: the app on 127.0.0.1 with two tiny trained runs, driven by
gradio_client and httpx as an outsider would, and once by Chromium.

What must hold: a link's page and API reach only its own run's predict/generate; a revoked,
expired or unknown token gets "This demo is not available"; the main app's handlers, other runs
and files stay out of reach; the main app's login does not cover demo links, and vice versa.
"""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from backend.sharing.demos import publish_demo, revoke_demo
from storage.models import utcnow
from tests.ui.share_fixtures import free_port, train_classifier, train_generator

pytestmark = [pytest.mark.slow]  # serves demo apps over HTTP around a trained classifier and language model

NOT_AVAILABLE = "This demo is not available"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Services in a temp home with a succeeded classifier and a succeeded language model."""
    from backend.services import build_services
    from backend.settings import Settings

    root = tmp_path_factory.mktemp("demo-pages")
    settings = Settings(home=root / "home", _env_file=None)
    services = build_services(settings)
    classifier = train_classifier(services, root)
    generator = train_generator(services, root)
    yield services, classifier, generator
    services.close()


def serve(services):
    """Launch the main app with the demo pages, as `python app.py` does; returns (blocks, base URL)."""
    from ui.app import build_app
    from ui.server import server_kwargs

    blocks = build_app(services)
    port = free_port()
    blocks.launch(**server_kwargs(services) | {"server_port": port, "prevent_thread_lock": True, "quiet": True})
    return blocks, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(trained):
    services, classifier, generator = trained
    blocks, base = serve(services)
    yield base
    blocks.close()


def demo_client(base: str, token: str) -> Client:
    return Client(f"{base}/demo/{token}/", verbose=False, download_files=False)


def labels_of(result: dict) -> dict[str, float]:
    return {item["label"]: item["confidence"] for item in result["confidences"]}


@pytest.mark.e2e
def test_a_demo_link_predicts_with_its_own_run_only(trained, server):
    services, classifier, generator = trained
    token = publish_demo(services.repo, classifier.id).token
    client = demo_client(server, token)
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == {"/predict", "/generate", "/classify_image", "/predict_row"}
    assert not api["unnamed_endpoints"]
    # No run id to pass: the only input of /predict is the text; the token is the URL.
    assert [p["parameter_name"] for p in api["named_endpoints"]["/predict"]["parameters"]] == ["text"]
    result = client.predict("what a good day", api_name="/predict")
    scores = labels_of(result)
    assert set(scores) == {"happy", "sad"} and sum(scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert result["label"] == "happy"
    # The same link cannot be turned into the language model's demo.
    with pytest.raises(Exception, match="classifies text"):
        client.predict("the cat", 5, 0.8, api_name="/generate")


def test_a_generation_link_streams_text(trained, server):
    services, classifier, generator = trained
    client = demo_client(server, publish_demo(services.repo, generator.id).token)
    job = client.submit("the cat", 30, 0.5, api_name="/generate")
    final = job.result(timeout=120)
    assert isinstance(final, str) and final.strip()
    outputs = job.outputs()
    assert len(outputs) > 1 and all(final.startswith(o) for o in outputs)  # streamed: each piece grows the text
    with pytest.raises(Exception, match="writes text"):
        client.predict("the cat", api_name="/predict")
    with pytest.raises(Exception, match="greater than maximum value 500"):
        client.predict("the cat", 100_000, 0.8, api_name="/generate")


def test_the_demo_app_knows_nothing_of_the_main_app(trained, server):
    services, classifier, generator = trained
    token = publish_demo(services.repo, classifier.id).token
    config = httpx.get(f"{server}/demo/{token}/config", timeout=30).json()
    elem_ids = {c.get("props", {}).get("elem_id") for c in config["components"]} - {None}
    assert elem_ids and all(e.startswith("demo-") for e in elem_ids)  # no upload, no run picker, no training
    # The demo app keeps the safe defaults: uploads capped (image demos only), errors hidden, nothing of the home dir served.
    from ui.server import demo_mount_options

    assert config["max_file_size"] == services.settings.demo_max_upload_bytes == 10 * 1024 * 1024
    assert config["show_error"] is False
    options = demo_mount_options(services.settings)
    assert options["allowed_paths"] == [] and str(services.settings.home.resolve()) in options["blocked_paths"]
    assert {d.get("api_name") for d in config["dependencies"] if d.get("api_visibility") == "public"} == {
        "predict", "generate", "classify_image", "predict_row"}
    # The main app's endpoints by name: unknown to the demo app.
    client = demo_client(server, token)
    with pytest.raises(ValueError, match="Cannot find a function"):
        client.predict("x", api_name="/secret")
    main = Client(f"{server}/", verbose=False, download_files=False)
    main_names = set(main.view_api(return_format="dict", print_info=False)["named_endpoints"])
    for name in main_names - {"/predict", "/generate"}:
        with pytest.raises(ValueError, match="Cannot find a function"):
            client.predict(api_name=name)
    # A dependency index beyond the demo's own handlers does not run a main-app handler.
    count = len(config["dependencies"])
    response = httpx.post(f"{server}/demo/{token}/gradio_api/queue/join",
                          json={"data": [classifier.id], "fn_index": count + 3, "session_hash": "outsider1"},
                          timeout=30)
    assert response.status_code >= 400
    # A file uploaded to the main app is not served through the demo app (which has no login).
    uploaded = httpx.post(f"{server}/gradio_api/upload", files={"files": ("notes.csv", b"secret,notes\n")},
                          timeout=30).json()[0]
    assert httpx.get(f"{server}/gradio_api/file={uploaded}", timeout=30).status_code == 200
    assert httpx.get(f"{server}/demo/{token}/gradio_api/file={uploaded}", timeout=30).status_code in (403, 404)
    # Files of the home dir (models, database) are not served through the demo app.
    for path in (Path(classifier.output_dir) / "model.safetensors", services.settings.home / "modelsmith.db"):
        response = httpx.get(f"{server}/demo/{token}/gradio_api/file={path.resolve()}", timeout=30)
        assert response.status_code in (403, 404), path


@pytest.mark.parametrize("state", ["revoked", "expired", "unknown", "malformed"])
def test_dead_links_say_not_available(trained, server, state):
    services, classifier, generator = trained
    if state == "revoked":
        demo = publish_demo(services.repo, classifier.id)
        client = demo_client(server, demo.token)
        assert labels_of(client.predict("a good day", api_name="/predict"))  # works until revoked
        revoke_demo(services.repo, demo.id)
        token, reason = demo.token, "turned the link off"
    elif state == "expired":
        token = secrets.token_urlsafe(24)
        services.repo.add_demo(classifier.id, token, utcnow() - timedelta(minutes=1))
        reason = "expired on"
    elif state == "unknown":
        token, reason = secrets.token_urlsafe(24), "not valid"
    else:
        token, reason = "not-a-token", "not valid"
    client = demo_client(server, token)
    with pytest.raises(Exception, match=f"{NOT_AVAILABLE}: .*{reason}") as caught:
        client.predict("a good day", api_name="/predict")
    assert "Traceback" not in str(caught.value)
    with pytest.raises(Exception, match=NOT_AVAILABLE):
        client.predict("the cat", 5, 0.8, api_name="/generate")


def test_login_guards_the_main_app_but_not_demo_links(trained):
    services, classifier, generator = trained
    guarded = dataclasses.replace(services, settings=services.settings.model_copy(update={"auth": "ann:secret"}))
    blocks, base = serve(guarded)
    try:
        assert httpx.get(f"{base}/config", timeout=30).status_code == 401
        token = publish_demo(services.repo, classifier.id).token
        assert labels_of(demo_client(base, token).predict("a bad day", api_name="/predict"))["sad"] > 0
    finally:
        blocks.close()


# ---- a person opening a link in Chromium --------------------------------------------------------
CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_demo_page_in_a_browser(trained, server):
    from playwright.sync_api import expect, sync_playwright

    from tests.ui.test_browser import SCREENSHOTS, TIMEOUT_MS

    services, classifier, generator = trained
    demo = publish_demo(services.repo, classifier.id)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{server}/demo/{demo.token}")  # without the slash, as people paste it
        expect(page.locator("#demo-title")).to_contain_text(classifier.name)
        page.locator("#demo-text textarea").fill("what a good day")
        page.locator("#demo-predict").click()
        expect(page.locator("#demo-prediction")).to_contain_text("happy")
        expect(page.get_by_role("tab", name="Data")).to_have_count(0)  # nothing of the main app
        page.screenshot(path=str(SCREENSHOTS / "demo_page_predicts.png"), full_page=True)
        revoke_demo(services.repo, demo.id)
        page.reload()
        expect(page.locator("#demo-unavailable")).to_contain_text(NOT_AVAILABLE)
        expect(page.locator("#demo-text")).to_be_hidden()
        page.screenshot(path=str(SCREENSHOTS / "demo_page_revoked.png"), full_page=True)
        browser.close()



@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_publish_open_and_revoke_from_the_share_tab(trained, server):
    import re

    from playwright.sync_api import expect, sync_playwright

    from tests.ui.test_browser import SCREENSHOTS, TIMEOUT_MS, pick

    services, classifier, generator = trained
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server)
        page.get_by_role("tab", name=re.compile("Share")).click()
        pick(page, "share-run", classifier.name)
        page.locator("#share-expiry input").fill("2")
        page.locator("#share-publish").click()
        link = page.locator("#share-published a")
        expect(link).to_contain_text("/demo/")
        url = link.inner_text()
        assert url.startswith(server + "/demo/")
        expect(page.locator("#share-links")).to_contain_text("active")
        page.screenshot(path=str(SCREENSHOTS / "share_tab_published.png"), full_page=True)

        visitor = browser.new_page()
        visitor.set_default_timeout(TIMEOUT_MS)
        visitor.goto(url)
        visitor.locator("#demo-text textarea").fill("what a bad day")
        visitor.locator("#demo-predict").click()
        expect(visitor.locator("#demo-prediction")).to_contain_text("sad")

        page.locator("#share-revoke").click()
        expect(page.locator("#share-links")).to_contain_text("revoked")
        expect(page.locator("#share-published")).to_contain_text("is off")
        visitor.locator("#demo-predict").click()  # the open page stops working at once
        expect(visitor.get_by_text(NOT_AVAILABLE).first).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "share_tab_revoked.png"), full_page=True)
        browser.close()


def test_page_handler_shows_the_run_or_says_why_not(trained):
    from types import SimpleNamespace

    from ui.demo_page import on_open

    services, classifier, generator = trained
    token = publish_demo(services.repo, generator.id).token
    request = SimpleNamespace(path_params={"token": token})
    title, unavailable, classify, write, card_box, card = on_open(services, request)
    assert generator.name in title and unavailable["visible"] is False
    assert classify["visible"] is False and write["visible"] is True
    assert card_box["visible"] is True and card and not card.startswith("---")  # no YAML front matter
    # a visitor gets the gradio_client call of this page, not code that needs the model's files
    assert "load_generator" not in card and "path/to/this/folder" not in card and "backend." not in card
    assert f"Client('http://127.0.0.1:{services.settings.port}/demo/{token}/')" in card
    assert 'api_name="/generate"' in card and "## Validation metrics" in card
    classifier_token = publish_demo(services.repo, classifier.id).token
    card = on_open(services, SimpleNamespace(path_params={"token": classifier_token}))[-1]
    assert 'client.predict("some text", api_name="/predict")' in card and "load_predictor" not in card
    for request in (None, SimpleNamespace(path_params={}), SimpleNamespace(path_params={"token": "../../etc"})):
        title, unavailable, classify, write, card_box, card = on_open(services, request)
        assert NOT_AVAILABLE in unavailable["value"] and unavailable["visible"] is True
        assert classify["visible"] is write["visible"] is card_box["visible"] is False and card == ""


def test_a_stream_stops_on_stop_and_on_revoke(trained, monkeypatch):
    from types import SimpleNamespace

    import backend.sharing.demos
    from ui.demo_page import on_generate
    from ui.generate_panel import StopSwitches

    services, classifier, generator = trained
    monkeypatch.setattr(backend.sharing.demos, "REVOCATION_CHECK_S", 0.0)  # look the token up before every token
    switches = StopSwitches()
    for how in ("stop", "revoke"):
        demo = publish_demo(services.repo, generator.id)
        request = SimpleNamespace(path_params={"token": demo.token}, session_hash=f"person-{how}")
        stream = on_generate(services, switches, "the cat", 500, 1.0, request)
        first = next(stream)
        if how == "stop":
            assert switches.stop("person-stop")
        else:
            revoke_demo(services.repo, demo.id)
        rest = list(stream)
        assert len(rest) <= 2 and len((rest or [first])[-1]) < 20, how  # not 500 tokens on
        assert len(switches) == 0  # the finished generation's switch is forgotten


def test_serve_refuses_a_malformed_login_setting_before_starting(settings, caplog):
    import app

    bad = settings.model_copy(update={"auth": "justaname"})
    assert app.serve(bad) == 2
    assert "user:password" in caplog.text and not (settings.home / ".serving.lock").exists()
