"""Process-wide settings, read from the environment (prefix MODELSMITH_) or a .env file.

Device and mixed precision live here, not on a run: Accelerate's state is process-wide and a
second Accelerator with another precision raises.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def on_hugging_face_space() -> bool:
    """True inside a Hugging Face Space (the platform sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def _default_home() -> Path:
    # A Space's own disk is wiped on every restart; its persistent storage (when the owner adds
    # it) is mounted at /data, so data survives there.
    persistent = Path("/data")
    if on_hugging_face_space() and persistent.is_dir() and os.access(persistent, os.W_OK):
        return persistent / "modelsmith"
    return Path("./modelsmith_data")


def _default_host() -> str:
    # A Space reaches the app through its proxy, which needs 0.0.0.0; everywhere else the app
    # stays on loopback unless the person says otherwise.
    return "0.0.0.0" if on_hugging_face_space() else "127.0.0.1"


class Settings(BaseSettings):
    """Everything a deployment may change; every field has a working default."""

    model_config = SettingsConfigDict(env_prefix="MODELSMITH_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="Folder for the database, datasets and models.")
    database_url: str = Field("", description="Any SQLAlchemy URL; empty means a SQLite file in the home dir.")
    host: str = Field(default_factory=_default_host, description="Address the web app binds to.")
    port: int = Field(7860, ge=1, le=65535, description="Port the web app listens on.")
    max_upload_mb: float = Field(200, gt=0, description="Largest file accepted for upload, in MB.")
    max_request_mb: float = Field(10, gt=0, description="Largest request body outside file uploads, in MB; "
                                  "bigger ones get HTTP 413 before they are read.")
    demo_max_upload_mb: float = Field(10, gt=0, description="Largest file a demo link's visitor may send to a "
                                      "model that reads files (an image demo), in MB; demos of text models take none.")
    max_rows: int = Field(2_000_000, ge=1, description="Most rows accepted in one dataset.")
    max_columns: int = Field(2_000, ge=2, description="Most columns accepted in one dataset file.")
    max_import_mb: float = Field(2048, gt=0, description="Largest unpacked size of an imported model zip, in MB.")
    max_import_files: int = Field(200, ge=1, description="Most files in an imported model zip.")
    max_import_params: int = Field(1_000_000_000, ge=1, description="Most parameters of an imported model, "
                                   "counted from its config.json before anything is built.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where training runs.")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="auto = bf16 on GPUs that support it, else fp16 on CUDA, none on CPU.")
    launcher: Literal["process", "thread"] = Field(
        "process", description="process: each run trains in its own `accelerate launch` process group (a crash "
        "or an out-of-memory kill takes the run, never the app; several GPUs; several runs at once). thread: "
        "runs train one at a time inside the app's own process, as before.")
    max_concurrent_jobs: int = Field(0, ge=0, description="Runs that train at the same time; 0 = one per GPU "
                                     "(one on a CPU). With launcher=thread, only 1.")
    gpus: str = Field("", description="GPU ids runs may use, comma-separated (e.g. 0,1,3); empty = every GPU.")
    gpus_per_run: int = Field(1, ge=0, description="GPUs each run takes (one process per GPU); 0 = all of them.")
    cpu_processes_per_run: int = Field(1, ge=1, le=64, description="Processes a run trains with on a CPU "
                                       "(data-parallel over gloo); more than 1 only pays on a machine with many cores.")
    cpu_threads_per_process: int = Field(0, ge=0, le=256, description="CPU threads each training process uses; "
                                         "0 = the cores shared out among the run's processes.")
    machines: int = Field(1, ge=1, le=64, description="Machines each run spans (multi-node, launcher=process): "
                          "this one, then each other joins with `python app.py join --run ID --machine-rank R`. "
                          "They need one shared database URL and one shared home folder.")
    main_process_ip: str = Field("", description="Address the other machines of a multi-machine run reach this "
                                 "one at (its rendezvous); empty = this machine's name.")
    image_cache_mb: float = Field(2048, ge=0, description="Memory a run's images may take decoded (uint8 pixels "
                                  "at the model's input size, per training process): a split that fits is decoded "
                                  "once before training, the training split first; 0 = decode every batch.")
    image_workers: int | None = Field(None, ge=0, le=64, description="DataLoader worker processes that decode "
                                      "images a run did not cache; unset = none when training on the CPU (they "
                                      "would take the training threads' cores), up to 8 when a GPU trains.")
    estimate_timeout_s: float = Field(300, gt=0, description="Longest the Train tab's estimate may take (it runs "
                                      "in a process of its own, which is stopped after this).")
    stop_grace_s: float = Field(60, gt=0, description="How long a stopped run may take to save its checkpoint "
                                "and exit before its processes are killed.")
    heartbeat_timeout_s: float = Field(60, gt=0, description="A running job silent for this long counts as dead.")
    share: bool = Field(False, description="Open a public Gradio share link to the whole app.")
    auth: str = Field("", description="user:password pairs, comma-separated, to require a login.")
    debug: bool = Field(False, description="Show error details in the browser.")
    allowed_hosts: str = Field("", description="Extra host names (comma-separated, '*.' wildcards) the web app "
                               "answers to, besides loopback names; e.g. the name a reverse proxy serves it at.")
    trust_proxy: bool = Field(False, description="Believe X-Forwarded-Host/-Proto headers (only behind a "
                              "reverse proxy that sets them); on by itself on Hugging Face Spaces.")

    @field_validator("max_concurrent_jobs")
    @classmethod
    def _one_job_per_thread_runner(cls, value: int, info: ValidationInfo) -> int:
        # In one process, Accelerate's training state (gradient accumulation, registered models) is
        # process-wide, so the thread launcher trains one run at a time
        # (backend.training.devices.training_lock); a larger value would only show queued runs as
        # "running" while they wait. Worker processes have no such limit.
        if info.data.get("launcher") == "thread" and value not in (0, 1):
            raise ValueError(f"must be 1 with launcher=thread (got {value}): the app trains one run at a time in "
                             "its own process and queues the others. Set MODELSMITH_LAUNCHER=process to train "
                             "several runs at once, each in its own process, or start one from a second terminal "
                             "with `python app.py train ...`")
        return value

    @field_validator("machines")
    @classmethod
    def _machines_need_worker_processes(cls, value: int, info: ValidationInfo) -> int:
        if value > 1 and info.data.get("launcher") == "thread":
            raise ValueError(f"must be 1 with launcher=thread (got {value}): a run spans several machines only "
                             "in worker processes. Set MODELSMITH_LAUNCHER=process.")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the home dir."""
        return self.database_url or f"sqlite:///{(self.home / 'modelsmith.db').resolve()}"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def image_cache_bytes(self) -> int:
        return int(self.image_cache_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def demo_max_upload_bytes(self) -> int:
        return int(self.demo_max_upload_mb * 1024 * 1024)

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)

    @property
    def trusts_forwarded_headers(self) -> bool:
        """Whether X-Forwarded-* headers come from our own proxy: configured, or the Space's proxy."""
        return self.trust_proxy or on_hugging_face_space()

    def ensure_dirs(self) -> None:
        """Create the home dir and its sub-folders."""
        for folder in (self.home, self.datasets_dir, self.runs_dir):
            folder.mkdir(parents=True, exist_ok=True)
