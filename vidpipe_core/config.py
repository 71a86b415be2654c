"""Typed settings. Environment variables use the prefix ``VIDPIPE_``; an optional TOML file
(``VIDPIPE_CONFIG`` or ``./vidpipe.toml``) sets the same keys. Environment wins over the file."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource
from pydantic_settings.exceptions import SettingsError

from vidpipe_core.errors import ConfigurationError, one_line
from vidpipe_core.text import text_problem

ProviderName = Literal["animatic", "google"]
ProviderChoice = Literal["auto", "animatic", "google"]
SafetyPolicy = Literal["fail", "skip", "retry"]
Review = Literal["none", "keyframes"]
ReviewChoice = Literal["auto", "none", "keyframes"]

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
    # Text to speech: the line's text tokens in, the audio's tokens (25 a second) out.
    "gemini-2.5-flash-tts": {"input_per_mtok": 0.50, "output_per_mtok": 10.0},
    "gemini-2.5-pro-tts": {"input_per_mtok": 1.00, "output_per_mtok": 20.0},
    "veo-3.1-generate-001": {"per_second": 0.40, "per_second_no_audio": 0.20},
    "veo-3.1-fast-generate-001": {"per_second": 0.15, "per_second_no_audio": 0.10},
    "veo-3.0-generate-001": {"per_second": 0.40, "per_second_no_audio": 0.20},
    "veo-3.0-fast-generate-001": {"per_second": 0.15, "per_second_no_audio": 0.10},
    "animatic": {},
}

# The latest first poll of a video operation after its submission, per model ("*": any other),
# whatever the ledger teaches (vidpipe_core.polling): about the shortest a clip of the model
# usually takes. Later would only add delay; earlier costs a few free polls.
DEFAULT_FIRST_POLL_MAX_S: dict[str, float] = {
    "veo-3.1-generate-001": 60.0,
    "veo-3.0-generate-001": 60.0,
    "veo-3.1-fast-generate-001": 30.0,
    "veo-3.0-fast-generate-001": 30.0,
    "*": 60.0,
}


def _config_file() -> Path | None:
    """The TOML file: VIDPIPE_CONFIG (which must name a file: a typo would otherwise be ignored
    silently), else ./vidpipe.toml when there is one."""
    explicit = os.environ.get("VIDPIPE_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise ConfigurationError(
                f"VIDPIPE_CONFIG={explicit} {what}; point it at a TOML file of settings, or unset it "
                "(./vidpipe.toml is read when there is one)"
            )
        return path
    local = Path("vidpipe.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIDPIPE_", extra="ignore")

    data_dir: Path = Field(
        default=Path(".vidpipe"), description="Where the database, artifacts, inbox and Dagster home live by default."
    )
    database_url: str | None = Field(
        default=None,
        description="vidpipe's database (projects, scenes, the ledger), any SQLAlchemy URL such as "
        "postgresql+psycopg2://...; default SQLite in data_dir.",
    )
    artifacts_url: str | None = Field(
        default=None,
        description="Where artifacts go: a folder or an fsspec URL (s3://, gs://, memory://); default data_dir/artifacts. "
        "Keys never go in it: s3:// takes the standard AWS variables.",
    )
    inbox_dir: Path | None = Field(
        default=None, description="The prompt inbox folder the inbox sensor watches; default data_dir/inbox."
    )
    input_roots: tuple[str, ...] = Field(
        default=(),
        description="Where a project's own files (character images, music) may be read from (JSON list of folders and "
        "s3:// prefixes); default: the working folder for `vidpipe new`, the inbox folder for inbox files and new_project.",
    )
    inbox_max_bytes: int = Field(default=64 * 1024, gt=0, description="Larger inbox files are rejected.")
    inbox_min_age_s: float = Field(default=1.0, ge=0, description="Inbox files modified more recently wait for the next look.")
    inbox_max_files_per_tick: int = Field(default=500, gt=0, description="Inbox files evaluated per sensor tick.")

    provider: ProviderChoice = Field(
        default="auto",
        description="Provider of every stage: auto (google when Google credentials are configured, else animatic), "
        "animatic or google. A project's --provider wins.",
    )
    storyboard_provider: ProviderName | None = Field(
        default=None,
        description="Storyboard provider (animatic or google) when a project names no --provider; default: provider.",
    )
    keyframe_provider: ProviderName | None = Field(
        default=None, description="Provider of character sheets and keyframes, as storyboard_provider."
    )
    clip_provider: ProviderName | None = Field(default=None, description="Clip provider, as storyboard_provider.")

    default_style: str = Field(default="cinematic, soft natural light", description="A project's style when it names none.")
    default_aspect_ratio: str = Field(default="16:9", description="A project's aspect ratio when it names none: 16:9 or 9:16.")
    default_clip_duration: int = Field(default=4, description="A project's seconds per scene when it names none.")
    default_scenes: int = Field(default=4, description="A project's number of scenes when it names none (1-24).")
    generate_audio: bool = Field(default=True, description="Whether a project asks Veo for an audio track when it does not say.")
    safety_policy: SafetyPolicy = Field(
        default="fail",
        description="A project's policy for a clip the safety filter refuses, when it names none: fail, skip or retry.",
    )
    max_cost_usd: float = Field(default=25.0, description="A project's budget in USD when it names none.")
    review: ReviewChoice = Field(
        default="auto",
        description="A project's review gate when it names none: keyframes (stop after the keyframes until "
        "`vidpipe approve`), none, or auto (keyframes when the clip provider costs money, none for the animatic).",
    )

    animatic_resolution: int = Field(default=720, description="Short side in pixels of animatic keyframes and clips.")
    fps: int = Field(default=24, description="Frames per second of animatic clips.")
    local_renders: int = Field(
        default=1,
        gt=0,
        description="Animatic clips rendered at once in one process (each is one ffmpeg encoder, ~100-200 MiB at "
        "1080p); bounds local CPU and memory apart from clip_concurrency, which bounds remote video operations. "
        "1 keeps a 16-scene 1080p render below 600 MiB and was no slower on 2 cores (bench/README section 5).",
    )

    storyboard_model: str = Field(default="gemini-2.5-flash", description="Gemini model that writes the storyboard (google).")
    image_model: str = Field(
        default="gemini-2.5-flash-image", description="Gemini image model of character sheets and keyframes (google)."
    )
    tts_model: str = Field(default="gemini-2.5-flash-tts", description="Gemini text-to-speech model of the narration (google).")
    tts_voice: str = Field(default="Kore", description="A project's narrator voice when it names none (a Gemini TTS voice).")
    tts_language: str = Field(default="en-US", description="A project's narration language (BCP-47) when it names none.")
    video_model: str = Field(default="veo-3.1-generate-001", description="Veo model of the clips (google).")
    video_fast_model: str = Field(default="veo-3.1-fast-generate-001", description="Veo model of a project made with --fast.")
    video_durations: tuple[int, ...] = Field(
        default=(4, 6, 8), description="Clip durations in seconds the video model accepts (JSON list)."
    )
    gcs_base_url: str = Field(
        default="https://storage.googleapis.com", description="Where a clip that Veo returns as a gs:// URI is downloaded from."
    )
    prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_PRICES.items()},
        description="Price table, model -> rates (see PRICE_RATES). A custom table (VIDPIPE_PRICES as JSON, or "
        "[prices.<model>] in the TOML file) names only the models it changes; each named entry "
        "replaces that model's list price whole. A model with no entry cannot be priced.",
    )

    retry_attempts: int = Field(
        default=5, description="Tries of a remote call that fails with a transient error (429, 5xx, timeouts)."
    )
    retry_initial_s: float = Field(default=1.0, description="Cap of the first retry's random delay; it doubles with each retry.")
    retry_max_s: float = Field(default=30.0, description="Largest cap of a retry's random delay.")
    poll_initial_s: float = Field(
        default=5.0, description="Without a learned schedule: the wait after the first poll, doubling up to poll_max_s."
    )
    poll_max_s: float = Field(
        default=10.0,
        description="Longest wait between polls: polls are free, and the wait after an operation finishes is pure latency.",
    )
    poll_timeout_s: float = Field(
        default=1200.0,
        description="How long one wait polls a video operation before the scene fails; a resume re-attaches to it.",
    )
    # Learned Veo poll schedule (vidpipe_core/polling.py): the first poll of an operation waits for
    # the quantile of when earlier clips of the same model and length were done, as their polls saw it.
    poll_learn: bool = Field(
        default=True,
        description="Learn when to poll Veo from the ledger (when the polls of earlier clips of the same provider, "
        "model and length, across projects, last saw them running and first saw them done; re-attached clips and "
        "loose observations left out); false, or too few samples: the backoff of poll_initial_s.",
    )
    poll_learn_quantile: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="The first poll comes at this quantile of when earlier clips were done (each between the last "
        "poll that saw it running and the first that saw it done), counted from submission. Higher means fewer polls "
        "but a later look at clips that finish early.",
    )
    poll_learn_min_samples: int = Field(default=3, ge=1, description="Fewer earlier clips than this: the backoff.")
    poll_learn_window: int = Field(default=50, ge=1, description="How many of the latest matching clips are learned from.")
    poll_first_max_s: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_FIRST_POLL_MAX_S),
        description="The latest first poll after submission per video model ('*': any other model), whatever the "
        "ledger teaches; never more than half poll_timeout_s. A custom table (JSON) names only the models it changes.",
    )
    poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="Wait between polls after the learned polls (the first, and three more where earlier clips were "
        "done, at most this apart; at most poll_max_s): the lag of a clip that finishes after them is at most this.",
    )
    clip_concurrency: int = Field(
        default=4,
        description="Video operations in flight per project run (the clips asset's `concurrency` config overrides it); the "
        "video_pool bounds them across runs.",
    )
    narration_concurrency: int = Field(
        default=4,
        description="Narration lines said at once in one narration step (text-to-speech requests, or espeak-ng "
        "processes for the animatic); 1 says them one after the other.",
    )
    safety_retries: int = Field(
        default=2,
        description="Under the retry safety policy: how often a refused clip is resubmitted, more conservatively phrased.",
    )
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
        description="How a render_project run of the daemon, the UI or `dagster job execute` executes its five steps "
        "(`vidpipe render` and the other vidpipe commands always run them in their own process). They form a chain, so "
        "in_process (the run worker itself; clips run as threads inside their step) saves ~1.5 s of process start-up "
        "per step; multiprocess is Dagster's default, a process per step; celery sends each step to `vidpipe worker` "
        "processes on any host through the broker (docs/deployment.md). Read when the definitions load.",
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
        "(no step sent). Raise it where workers are started on demand. Only an AMQP broker (RabbitMQ) says how many "
        "workers consume a queue: with a redis broker there is no such check.",
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator(
        "fps",
        "animatic_resolution",
        "clip_concurrency",
        "narration_concurrency",
        "retry_attempts",
        "poll_initial_s",
        "poll_max_s",
        "poll_timeout_s",
    )
    @classmethod
    def _positive(cls, v: float) -> float:
        # Nothing refuses 0 or a negative number until a render has begun (an ffmpeg error, a wait that
        # never ends); a NaN would compare false with every bound.
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{v} must be a number more than 0")
        return v

    @field_validator("retry_initial_s", "retry_max_s", "lock_wait_s", "safety_retries")
    @classmethod
    def _not_negative(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{v} must be a number, 0 or more")
        return v

    @field_validator("video_durations")
    @classmethod
    def _durations(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(d <= 0 for d in v):
            raise ValueError(f"{list(v)} must list the clip durations in seconds the video model accepts, such as [4, 6, 8]")
        return v

    @field_validator("default_aspect_ratio")
    @classmethod
    def _aspect_ratio(cls, v: str) -> str:
        if v not in ASPECT_RATIOS:
            raise ValueError(f"{v!r} is not supported (allowed: {', '.join(ASPECT_RATIOS)})")
        return v

    @field_validator("default_style")
    @classmethod
    def _style(cls, v: str) -> str:
        problem = text_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("default_scenes")
    @classmethod
    def _scenes(cls, v: int) -> int:
        if not MIN_SCENES <= v <= MAX_SCENES:
            raise ValueError(f"{v} is out of range (allowed: {MIN_SCENES}-{MAX_SCENES})")
        return v

    @field_validator("default_clip_duration")
    @classmethod
    def _clip_duration(cls, v: int) -> int:
        if v <= 0:  # which lengths a model accepts is checked with the project (vidpipe new)
            raise ValueError(f"{v} must be a number of seconds more than 0")
        return v

    @field_validator("celery_broker", "celery_backend", "gcs_base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        # Celery and kombu parse these only when a worker starts or a run sends its first step, the
        # Google provider when it downloads a clip.
        try:
            urlsplit(v).port  # noqa: B018  # a port that is not a number, a broken [IPv6] host
        except ValueError as exc:
            raise ValueError(f"the URL cannot be parsed ({exc}); write it as scheme://user:password@host:port/...") from None
        return v

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

    @field_validator("poll_first_max_s", mode="after")
    @classmethod
    def _over_default_ceilings(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(model for model, seconds in v.items() if not math.isfinite(seconds) or seconds < 0)
        if bad:
            raise ValueError(f"poll_first_max_s[{bad[0]!r}] must be a finite number of seconds, 0 or more")
        return {**DEFAULT_FIRST_POLL_MAX_S, **v}

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
            try:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            except (OSError, ValueError) as exc:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
                raise ConfigurationError(
                    f"the config file {path} (VIDPIPE_CONFIG, or ./vidpipe.toml) cannot be read: {one_line(exc)}; "
                    "fix it (UTF-8 TOML such as `default_scenes = 6`: a VIDPIPE_ variable's name in lower case, "
                    "without the prefix)"
                ) from exc
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


# What a JSON-valued setting looks like, for the message when it does not parse.
_JSON_EXAMPLES = {
    "video_durations": "[4, 6, 8]",
    "prices": '{"veo-3.1-generate-001": {"per_second": 0.4, "per_second_no_audio": 0.2}}',
}
_SOURCE_FIELD = re.compile(r'for field "(?P<field>\w+)"')


def _variable(field: str) -> str:
    return f"VIDPIPE_{field.upper()}"


def _where(field: str) -> str:
    """Where the user fixes ``field``: the environment variable that set it, or the config file."""
    if any(name.upper() == _variable(field) for name in os.environ):
        return "fix the environment variable"
    path = os.environ.get("VIDPIPE_CONFIG") or ("vidpipe.toml" if Path("vidpipe.toml").is_file() else None)
    return f"fix it in the config file {path}, or set the environment variable" if path else "fix the environment variable"


def settings_error(exc: BaseException) -> ConfigurationError | None:
    """A setting that cannot be read, as a one-line ConfigurationError (the variable, what is
    wrong, where to fix it; never the value, which may be a secret); None for another exception."""
    if isinstance(exc, SettingsError):  # a JSON-valued setting that is not JSON
        match = _SOURCE_FIELD.search(str(exc))
        if match is None:
            return ConfigurationError(f"the settings cannot be read: {one_line(exc)}")
        field = match["field"]
        cause = exc.__cause__
        why = (
            f"is not valid JSON ({cause.msg} at column {cause.colno})"
            if isinstance(cause, json.JSONDecodeError)
            else (f"cannot be parsed ({one_line(cause) if cause else one_line(exc)})")
        )
        example = _JSON_EXAMPLES.get(field)
        hint = f"; give it as JSON, such as {example}" if example else "; give it as JSON"
        return ConfigurationError(f"setting {_variable(field)} {why}{hint}; {_where(field)}")
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        first = exc.errors()[0]
        loc = [str(part) for part in first["loc"]]
        field = loc[0] if loc else "?"
        inside = f" ({'.'.join(loc[1:])})" if len(loc) > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        more = exc.error_count() - 1
        also = f" (and {more} more setting problem{'s' if more > 1 else ''})" if more else ""
        return ConfigurationError(f"setting {_variable(field)}{inside}: {message}{also}; {_where(field)}")
    return None


def get_settings(**overrides: Any) -> Settings:
    """Settings read afresh from the environment (cheap; never stale in tests or daemons)."""
    return Settings(**overrides)
