"""Share tab handlers as plain functions: demo links (publish, list, revoke), downloads, export, Hub, import."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from ui import playground_tab, runs_tab, share_tab
from ui.app import build_app, launch_kwargs
from tests.ui.share_fixtures import fake_run, train_classifier

SKIPPED = {"__type__": "update"}


def test_publish_list_and_revoke_a_link(services, tmp_path):
    run = fake_run(services, tmp_path)
    message, table, picker = share_tab.on_publish(services, run.id, 2, None)
    demo = services.repo.list_demos(run.id)[0]
    url = f"http://127.0.0.1:7860/demo/{demo.token}/"
    assert url in message and "expires on" in message and run.name in message
    assert table.to_dict("records") == [{"link": demo.id, "URL": url, "created": table["created"][0],
                                         "expires": f"{demo.expires_at:%Y-%m-%d %H:%M} UTC", "status": "active"}]
    assert picker["value"] == demo.id and [value for _, value in picker["choices"]] == [demo.id]

    message, table, picker = share_tab.on_publish(services, run.id, 0, None)  # 0: never expires
    assert "never expires" in message and list(table["expires"]) == ["never", f"{demo.expires_at:%Y-%m-%d %H:%M} UTC"]
    newest = services.repo.list_demos(run.id)[0]

    message, table, picker = share_tab.on_revoke(services, run.id, demo.id, None)
    assert f"#{demo.id} is off" in message
    assert dict(zip(table["link"], table["status"])) == {newest.id: "active", demo.id: "revoked"}
    assert [value for _, value in picker["choices"]] == [newest.id]  # only active links can be revoked
    assert services.repo.get_demo(demo.id).revoked_at is not None
    message, listed, picker = share_tab.on_pick_run(services, run.id, None)
    assert message == "" and listed.equals(table)
    message, empty, picker = share_tab.on_pick_run(services, None, None)
    assert empty.empty and picker["choices"] == []
    # the newest active link sits in a box with a copy button; none active: no box
    copy = share_tab.on_copy_link(services, run.id, None)
    assert copy["visible"] is True and copy["value"] == f"http://127.0.0.1:7860/demo/{newest.token}/"
    share_tab.on_revoke(services, run.id, newest.id, None)
    assert share_tab.on_copy_link(services, run.id, None)["visible"] is False
    assert share_tab.on_copy_link(services, None, None)["visible"] is False


@pytest.mark.parametrize("hours, problem", [(-1, "cannot be negative"), (10**6, "between 0 and 8760"),
                                            (math.inf, "between 0 and 8760"), (math.nan, "between 0 and 8760")])
def test_bad_expiry_is_refused_with_a_message(services, tmp_path, hours, problem):
    run = fake_run(services, tmp_path)
    with pytest.warns(UserWarning, match=problem):
        message, table, picker = share_tab.on_publish(services, run.id, hours, None)
    assert "ms-error" in message and problem in message and "Traceback" not in message
    assert table == SKIPPED and picker == SKIPPED
    assert services.repo.list_demos(run.id) == []


def test_only_succeeded_runs_with_a_model_get_links(services, tmp_path):
    with pytest.warns(UserWarning, match="Pick a finished run"):
        share_tab.on_publish(services, None, 0, None)
    failed = fake_run(services, tmp_path, status="failed")
    with pytest.warns(UserWarning, match="only a succeeded run"):
        share_tab.on_publish(services, failed.id, 0, None)
    with pytest.warns(UserWarning, match="does not exist"):
        share_tab.on_publish(services, 999, 0, None)
    refreshed = share_tab.on_refresh_runs(services, failed.id)
    assert refreshed["choices"] == [] and refreshed["value"] is None  # failed runs are not offered


def test_revoke_needs_a_link_of_this_run(services, tmp_path):
    first = fake_run(services, tmp_path / "a", name="first")
    second = fake_run(services, tmp_path / "b", name="second")
    share_tab.on_publish(services, first.id, 0, None)
    link = services.repo.list_demos(first.id)[0]
    with pytest.warns(UserWarning, match="Pick an active link"):
        assert share_tab.on_revoke(services, first.id, None, None) == (SKIPPED,) * 3
    with pytest.warns(UserWarning, match=f"belongs to run #{first.id}"):
        share_tab.on_revoke(services, second.id, link.id, None)
    with pytest.warns(UserWarning, match="does not exist"):
        share_tab.on_revoke(services, first.id, 12345, None)
    assert services.repo.get_demo(link.id).revoked_at is None


def test_link_urls_follow_the_address_the_browser_used(settings):
    assert share_tab.base_url(settings) == "http://127.0.0.1:7860"
    behind_proxy = SimpleNamespace(headers={"host": "10.0.0.2:7860", "x-forwarded-host": "demo.example.org",
                                            "x-forwarded-proto": "https"}, url=SimpleNamespace(scheme="http"))
    proxied = settings.model_copy(update={"trust_proxy": True})
    assert share_tab.base_url(proxied, behind_proxy) == "https://demo.example.org"
    # Without MODELSMITH_TRUST_PROXY the forwarded headers could be anyone's: the Host header counts.
    assert share_tab.base_url(settings, behind_proxy) == "http://10.0.0.2:7860"
    direct = SimpleNamespace(headers={"host": "192.168.1.5:7860"}, url=SimpleNamespace(scheme="http"))
    assert share_tab.demo_url(share_tab.base_url(settings, direct), "abc") == "http://192.168.1.5:7860/demo/abc/"
    everywhere = settings.model_copy(update={"host": "0.0.0.0", "port": 8000})
    assert share_tab.base_url(everywhere) == "http://127.0.0.1:8000"


def test_download_and_space_export_land_in_the_downloadable_folder(services, tmp_path):
    run = fake_run(services, tmp_path)
    blocked = launch_kwargs(services.settings)["blocked_paths"]
    allowed = launch_kwargs(services.settings)["allowed_paths"]
    path = Path(share_tab.on_download(services, run.id))
    assert path.suffix == ".zip" and any(str(path).startswith(p) for p in allowed)
    assert not any(str(path).startswith(p) for p in blocked)
    with zipfile.ZipFile(path) as archive:
        assert {"model.safetensors", "config.json", "modelsmith.json"} <= set(archive.namelist())
    space = Path(share_tab.on_export_space(services, run.id))
    assert space.name.endswith("-space.zip") and any(str(space).startswith(p) for p in allowed)
    with zipfile.ZipFile(space) as archive:
        assert {"app.py", "requirements.txt", "README.md"} <= set(archive.namelist())
    with pytest.raises(gr.Error, match="Pick a finished run"):
        share_tab.on_download(services, None)
    failed = fake_run(services, tmp_path / "failed", status="failed")
    with pytest.raises(gr.Error, match="only a succeeded run"):
        share_tab.on_export_space(services, failed.id)


@pytest.mark.parametrize("repo_id, token, problem", [("", "hf_x", "owner/name|user or organisation"),
                                                     ("no-owner", "hf_x", "user or organisation"),
                                                     ("a/b/c", "hf_x", "user or organisation"),
                                                     ("ann/spam", " ", "access token")])
def test_push_to_hub_checks_its_fields_before_any_network_call(services, tmp_path, repo_id, token, problem):
    run = fake_run(services, tmp_path)
    with pytest.raises(gr.Error, match=problem) as caught:
        share_tab.on_push_hub(services, run.id, repo_id, token, True, "model")
    assert "Traceback" not in caught.value.message and "hf_x" not in caught.value.message  # never echoed


@pytest.mark.e2e
@pytest.mark.slow
def test_import_a_downloaded_model_as_a_new_run(services, tmp_path):
    trained = train_classifier(services, tmp_path)
    archive = share_tab.on_download(services, trained.id)
    message, picker = share_tab.on_import(services, archive, "imported spam", None)
    imported = services.repo.list_runs()[0]
    assert imported.id != trained.id and imported.status == "succeeded" and imported.name == "imported spam"
    assert f"run #{imported.id}" in message and picker["value"] == imported.id
    scores = playground_tab.on_predict(services, imported.id, "what a good day")
    assert scores == pytest.approx(playground_tab.on_predict(services, trained.id, "what a good day"), abs=1e-5)
    # The imported run can get a demo link like any other.
    message, table, _ = share_tab.on_publish(services, imported.id, 0, None)
    assert list(table["status"]) == ["active"]
    # It has no dataset here (the zip's run config named the original one): Clone picks none, and
    # the Runs tab says where it came from.
    assert imported.dataset_id is None and imported.config.dataset_id is None
    assert imported.imported_from == Path(archive).name
    _, dataset_value, *_ = runs_tab.on_clone(services, imported.id)
    assert dataset_value is None
    header = runs_tab.on_refresh_run(services, imported.id)[1]
    assert f"imported from {Path(archive).name}" in header and "#None" not in header
    table = runs_tab.on_refresh_list(services, "all", None)[0]
    assert list(table.loc[table["id"] == imported.id, "dataset"]) == [f"imported from {Path(archive).name}"]


def test_import_refuses_what_is_not_a_model_zip(services, tmp_path):
    with pytest.warns(UserWarning, match="Upload a model zip"):
        message, picker = share_tab.on_import(services, None, "", None)
    assert "ms-error" in message and picker == SKIPPED
    text = tmp_path / "notes.zip"
    text.write_text("just text")
    with pytest.warns(UserWarning, match="not a zip archive"):
        message, _ = share_tab.on_import(services, str(text), "", None)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.txt", "x")
    with pytest.warns(UserWarning):
        message, _ = share_tab.on_import(services, str(evil), "", None)
    assert "ms-error" in message and "Traceback" not in message
    assert services.repo.list_runs() == []


def test_share_tab_is_in_the_app_and_adds_nothing_to_its_api(services):
    blocks = build_app(services)
    config = blocks.get_config_file()
    elem_ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"share-run", "share-publish", "share-links", "share-revoke", "share-import"} <= elem_ids
    public = {d.get("api_name") for d in config["dependencies"] if d.get("api_visibility") == "public"}
    assert not any(name and ("share" in name or "publish" in name or "revoke" in name) for name in public)
    assert "predict" in public


def test_share_warning_shows_only_when_the_whole_app_is_shared(services):
    shared = services.settings.model_copy(update={"share": True})
    assert launch_kwargs(shared)["share"] is True and launch_kwargs(services.settings)["share"] is False
    import dataclasses

    blocks = build_app(dataclasses.replace(services, settings=shared))
    texts = [c.get("props", {}).get("value") for c in blocks.get_config_file()["components"]]
    assert any(isinstance(t, str) and "MODELSMITH_SHARE is on" in t for t in texts)
    plain = [c.get("props", {}).get("value") for c in build_app(services).get_config_file()["components"]]
    assert not any(isinstance(t, str) and "MODELSMITH_SHARE is on" in t for t in plain)


def test_download_folders_of_the_same_family_older_than_a_day_are_cleared(tmp_path):
    import os
    import time

    from backend.settings import Settings
    from ui.playground_tab import fresh_download_folder

    settings = Settings(home=tmp_path, _env_file=None)
    stale, recent = fresh_download_folder(settings, "export", "zip"), fresh_download_folder(settings, "export", "space")
    other_family = fresh_download_folder(settings, "predictions")
    day_and_a_bit = time.time() - 25 * 3600
    for folder in (stale, other_family):
        os.utime(folder, (day_and_a_bit, day_and_a_bit))
    new = fresh_download_folder(settings, "export", "zip")
    assert new.name.startswith("export-zip-") and new.parent == tmp_path / "tmp"
    assert not stale.exists() and recent.exists() and new.exists()
    assert other_family.exists()  # only its own family is cleared by an export
