"""Typed settings. Environment variables use the prefix ``VIDPIPE_``; an optional TOML file
(``VIDPIPE_CONFIG`` or ``./vidpipe.toml``) sets the same keys. Environment wins over the file."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

ProviderName = Literal["animatic", "google"]
ProviderChoice = Literal["auto", "animatic", "google"]
SafetyPolicy = Literal["fail", "skip", "retry"]

ASPECT_RATIOS: dict[str, tuple[int, int]] = {"16:9": (16, 9), "9:16": (9, 16)}
MAX_PROMPT_CHARS = 4000
MIN_SCENES, MAX_SCENES = 1, 24
ANIMATIC_DURATIONS = tuple(range(1, 9))

# The rates a price entry may set (USD): text per 1M tokens in and out, images each, video per
# second with audio and without (a clip without audio falls back to per_second when the entry has
# no per_second_no_audio). vidpipe_core.cost is the only reader of the table.
PRICE_RATES = ("input_per_mtok", "output_per_mtok", "per_image", "per_second", "per_second_no_audio")

# USD list prices (2026).
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gemini-2.5-flash": {"input_per_mtok": 0.30, "output_per_mtok": 2.50},
    "gemini-2.5-pro": {"input_per_mtok": 1.25, "output_per_mtok": 10.0},
    "gemini-2.5-flash-image": {"per_image": 0.039},
    "veo-3.1-generate-001": {"per_second": 0.40, "per_second_no_audio": 0.20},
    "veo-3.1-fast-generate-001": {"per_second": 0.15, "per_second_no_audio": 0.10},
    "veo-3.0-generate-001": {"per_second": 0.40, "per_second_no_audio": 0.20},
    "veo-3.0-fast-generate-001": {"per_second": 0.15, "per_second_no_audio": 0.10},
    "animatic": {},
}


def _config_file() -> Path | None:
    explicit = os.environ.get("VIDPIPE_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("vidpipe.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDPIPE_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".vidpipe"), description="Where the database, artifacts, inbox and Dagster home live by default."
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default sqlite under data_dir.")
    artifacts_url: str | None = Field(default=None, description="fsspec URL of the artifact store; default data_dir/artifacts.")
    inbox_dir: Path | None = None
    inbox_max_bytes: int = Field(default=64 * 1024, gt=0, description="Larger inbox files are rejected.")
    inbox_min_age_s: float = Field(default=1.0, ge=0, description="Inbox files modified more recently wait for the next look.")
    inbox_max_files_per_tick: int = Field(default=500, gt=0, description="Inbox files evaluated per sensor tick.")

    provider: ProviderChoice = "auto"
    storyboard_provider: ProviderName | None = None
    keyframe_provider: ProviderName | None = None
    clip_provider: ProviderName | None = None

    default_style: str = "cinematic, soft natural light"
    default_aspect_ratio: str = "16:9"
    default_clip_duration: int = 4
    default_scenes: int = 4
    generate_audio: bool = True
    safety_policy: SafetyPolicy = "fail"
    max_cost_usd: float = 25.0

    animatic_resolution: int = Field(default=720, description="Short side in pixels of animatic keyframes and clips.")
    fps: int = 24
    local_renders: int = Field(
        default=1,
        gt=0,
        description="Animatic clips rendered at once in one process (each is one ffmpeg encoder, ~100-200 MiB at "
        "1080p); bounds local CPU and memory apart from clip_concurrency, which bounds remote video operations. "
        "1 keeps a 16-scene 1080p render below 600 MiB and was no slower on 2 cores (bench/README section 5).",
    )

    storyboard_model: str = "gemini-2.5-flash"
    image_model: str = "gemini-2.5-flash-image"
    video_model: str = "veo-3.1-generate-001"
    video_fast_model: str = "veo-3.1-fast-generate-001"
    video_durations: tuple[int, ...] = (4, 6, 8)
    gcs_base_url: str = "https://storage.googleapis.com"
    prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PRICES.items()},
        description="Price table, model -> rates (see PRICE_RATES). A custom table (VIDPIPE_PRICES as JSON, or "
        "[prices.<model>] in the TOML file) names only the models it changes; each named entry "
        "replaces that model's list price whole. A model with no entry cannot be priced.",
    )

    retry_attempts: int = 5
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    poll_initial_s: float = 5.0
    poll_max_s: float = Field(
        default=10.0,
        description="Longest wait between polls: polls are free, and the wait after an operation finishes is pure latency.",
    )
    poll_timeout_s: float = 1200.0
    # Learned Veo poll schedule (vidpipe_core/polling.py): the first poll of an operation waits for
    # the quantile of how long earlier clips of the same model and length took, less one interval.
    poll_learn: bool = Field(
        default=True,
        description="Learn when to poll Veo from the ledger (completed_at - submitted_at of earlier clips of the same "
        "provider, model and length, across projects); false, or too few samples: the backoff of poll_initial_s.",
    )
    poll_learn_quantile: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="The first poll comes at this quantile of the learned durations, less one poll_interval_s, counted "
        "from submission. Higher means fewer polls but a later look at clips that finish early.",
    )
    poll_learn_min_samples: int = Field(default=3, ge=1, description="Fewer earlier clips than this: the backoff.")
    poll_learn_window: int = Field(default=50, ge=1, description="How many of the latest matching clips are learned from.")
    poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="Wait between polls after the learned first poll (at most poll_max_s): the lag of a clip that "
        "finishes after the first poll is at most this.",
    )
    clip_concurrency: int = Field(default=4, description="Video operations in flight per project run.")
    safety_retries: int = 2
    lock_wait_s: float = Field(
        default=0.0, description="How long a run waits for another run of the same project before failing."
    )
    heartbeat_interval_s: float = Field(
        default=15.0, gt=0, description="How often a live run beats its heartbeat (run tag and project lock)."
    )
    heartbeat_stale_s: float = Field(
        default=120.0, gt=0, description="A run or lock holder on another host whose heartbeat is older is dead."
    )
    video_pool: str = Field(default="video-operations", description="Dagster concurrency pool that bounds live video operations.")
    ui_previews: bool = Field(
        default=True,
        description="Embed small preview images (animated preview, poster, contact sheet, scene strip) in the "
        "assets' Dagster metadata as data URIs, each within its size budget (vidpipe_core.previews).",
    )
    dagster_executor: Literal["in_process", "multiprocess", "celery"] = Field(
        default="in_process",
        description="How a render_project run executes its five steps. They form a chain, so in_process (the run "
        "worker itself) saves ~1.5 s of process start-up per step; multiprocess is Dagster's default; celery sends "
        "each step to `vidpipe worker` processes on any host through the broker (README: Deploying on several machines).",
    )
    # Celery (dagster_executor = "celery"): read from the environment by the run worker and by every
    # `vidpipe worker`, never written into Dagster's run config, tags or tables (they hold secrets).
    celery_broker: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672//",
        description="Celery broker URL (RabbitMQ); its password is never stored or shown.",
    )
    celery_backend: str = Field(
        default="rpc://", description="Celery result backend URL: rpc:// (through the broker) or redis://..."
    )
    celery_queue: str = Field(
        default="vidpipe", min_length=1, description="The queue render steps are sent to and `vidpipe worker` consumes."
    )
    celery_worker_wait_s: float = Field(
        default=60.0,
        ge=0,
        description="How long a celery run waits for a `vidpipe worker` to take steps from its queue before it fails "
        "(no step sent). Raise it where workers are started on demand.",
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("prices", mode="after")
    @classmethod
    def _over_list_prices(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for model, rates in v.items():
            unknown = sorted(set(rates) - set(PRICE_RATES))
            if unknown:
                raise ValueError(f"prices[{model!r}]: unknown rate {', '.join(unknown)}; the rates are {', '.join(PRICE_RATES)}")
            bad = sorted(k for k, rate in rates.items() if not math.isfinite(rate) or rate < 0)
            if bad:
                raise ValueError(f"prices[{model!r}]: {', '.join(bad)} must be a finite number of USD, 0 or more")
        return {**{k: dict(r) for k, r in DEFAULT_PRICES.items()}, **{k: dict(r) for k, r in v.items()}}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # Derived locations -------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'vidpipe.db'}"

    @property
    def resolved_artifacts_url(self) -> str:
        return self.artifacts_url or str(self.data_dir / "artifacts")

    @property
    def resolved_inbox_dir(self) -> Path:
        return (self.inbox_dir or self.data_dir / "inbox").expanduser().resolve()

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.data_dir / "dagster").resolve()


def get_settings(**overrides: Any) -> Settings:
    """Settings read afresh from the environment (cheap; never stale in tests or daemons)."""
    return Settings(**overrides)
