"""The server's settings in one typed object (env prefix ``SAYWHO_``, ``__`` for nesting).

Built once (``Settings()`` reads the environment) and passed down through
``create_app(settings)``; tests build their own instead of patching modules.
Lists in the environment are JSON: ``SAYWHO_API_KEYS='["k1","k2"]'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """``$SAYWHO_DATA_DIR``, else ``$XDG_DATA_HOME/saywho`` or ~/.local/share/saywho
    (``%LOCALAPPDATA%\\saywho`` on Windows): shared by the CLI and the server."""
    if os.environ.get("SAYWHO_DATA_DIR"):
        return Path(os.environ["SAYWHO_DATA_DIR"]).expanduser()
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "saywho"
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "saywho"


def default_speakers_db() -> Path:
    """The speaker library the CLI and the server share by default:
    ``$SAYWHO_SPEAKERS_DB``, else ``<data dir>/speakers.db``."""
    env = os.environ.get("SAYWHO_SPEAKERS_DB")
    return Path(env).expanduser() if env else default_data_dir() / "speakers.db"


class Settings(BaseSettings):
    """Everything the server (and later the jobs and speaker library) can be told."""

    model_config = SettingsConfigDict(env_prefix="SAYWHO_", env_nested_delimiter="__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000

    # Models. OpenAI's model names (whisper-1, gpt-4o-transcribe...) map onto these.
    default_model: str = "tiny.en"
    translation_model: str = "base"  # translation needs a multilingual model
    default_voice: str = "en_US-joe-medium"
    preload: list[str] = Field(default_factory=list, description="models loaded at start-up, e.g. tiny.en")
    model_ttl_s: float = Field(300.0, description="unload a model idle this long; <0 keeps it forever")
    model_ttls: dict[str, float] = Field(default_factory=dict,
                                         description='a TTL of its own per model id, e.g. {"base": 60}')

    # Limits.
    max_upload_bytes: int = 100 * 1024 * 1024
    max_duration_s: float = 3 * 3600.0
    max_speech_chars: int = 4096
    inference_slots: int = Field(1, ge=1, description="requests running in the worker at once")
    queue_size: int = Field(8, ge=0, description="requests waiting for a slot; beyond it: 429")

    # Self-healing worker.
    request_deadline_s: float = Field(120.0, gt=0, description="base deadline of one inference call")
    deadline_per_audio_s: float = Field(2.0, ge=0, description="extra deadline per second of audio")
    restart_budget: int = Field(3, ge=0, description="worker restarts allowed per restart_window_s")
    restart_window_s: float = 1800.0
    restart_backoff_s: float = Field(2.0, gt=0, description="past the budget: first delayed restart")
    restart_backoff_max_s: float = Field(60.0, gt=0, description="past the budget: longest delay between restarts")
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 503 while the worker restarts")
    deep_health_cache_s: float = Field(60.0, ge=0, description="/health/deep answers from a probe this recent")
    ready_wait_s: float = Field(60.0, ge=0, description="how long a request waits for a (re)starting worker")
    cpu_threads: int = 0
    # What the diarization models run on in the worker: torch (the default), onnx, or auto
    # (ONNX Runtime on a CPU, torch on a GPU) (saywho.diarization.onnx_runtime; the CLI reads
    # the same environment variable).
    diarization_backend: Literal["auto", "onnx", "torch"] = "torch"
    worker_memory_mb: int = Field(0, ge=0, description="cap on the worker's memory (RLIMIT_DATA); 0: none")

    # Access.
    api_keys: list[str] = Field(default_factory=list, description="Bearer keys; empty: no auth")
    admin_keys: list[str] = Field(default_factory=list, description="Bearer keys that see every key's jobs and speakers")
    trusted_hosts: list[str] = Field(default_factory=list,
                                     description="with no key: Host names served besides loopback ('*': any)")
    cors_origins: list[str] = Field(default_factory=list)

    # Storage (used by jobs and the speaker library).
    data_dir: Path = Field(default_factory=default_data_dir)
    db_path: Path | None = None
    # The speaker library (named voices): the same file as the CLI's unless told otherwise
    # (SAYWHO_SPEAKERS_DB); default <data_dir>/speakers.db.
    speakers_db: Path | None = None
    # Background jobs (POST /v1/jobs): processed, stored and resumed chunk by chunk.
    job_chunk_s: float = Field(300.0, gt=0, description="chunk length of background jobs, in seconds")
    max_queued_jobs: int = Field(8, ge=0, description="jobs queued or running at once; beyond: 429 (0: no limit)")
    job_max_attempts: int = Field(3, ge=1, description="a job that crashed the worker this often fails")
    min_free_bytes: int = Field(200 * 1024 * 1024, ge=0, description="disk space kept free when accepting a job")

    # Test-only: lets a request ask the worker to crash, hang or report a device error
    # (header ``X-Saywho-Fault: crash|hang|device``). Never enable in production.
    test_faults: bool = False

    # Live transcription (WS /v1/realtime): sessions at once, the largest client event,
    # and how far (seconds of audio) a session may fall behind before appends are refused.
    realtime_max_sessions: int = Field(4, ge=0)
    realtime_max_event_bytes: int = Field(2 * 1024 * 1024, gt=0)
    realtime_max_backlog_s: float = Field(30.0, gt=0)

    log_level: str = "info"

    @model_validator(mode="after")
    def _derived_paths(self) -> Settings:
        if self.db_path is None:
            self.db_path = self.data_dir / "saywho.db"
        if self.speakers_db is None:
            self.speakers_db = self.data_dir / "speakers.db"
        return self

    def speaker_library_for(self, owner: str | None) -> Path:
        """The speaker library of a key's owner id (its own file), or the shared one (no key, admin)."""
        if owner is None:
            return Path(self.speakers_db or self.data_dir / "speakers.db")
        return self.data_dir / "speakers" / f"{owner}.db"

    def deadline_for(self, duration_s: float) -> float:
        """Seconds an inference call on ``duration_s`` of audio may take before it is a hang."""
        return self.request_deadline_s + self.deadline_per_audio_s * max(0.0, duration_s)
