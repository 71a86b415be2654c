"""The error hierarchy. Every message tells the user what to change or do next."""

from __future__ import annotations

import math

from vidpipe_core.steps import KEYFRAMES


class VidpipeError(Exception):
    """Base class for every error vidpipe raises on purpose."""


class InvalidInput(VidpipeError):
    """User input that vidpipe refuses before spending anything."""

    def __init__(self, field: str, message: str, allowed: str | None = None) -> None:
        self.field = field
        self.allowed = allowed
        text = f"{field}: {message}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)

    @property
    def problems(self) -> list[InvalidInput]:
        """Each problem on its own (this one alone; several for ``InvalidInputs``)."""
        return [self]


class InvalidInputs(InvalidInput):
    """Several problems with one input, all named at once, so a user fixes them in one go
    instead of meeting them one by one. ``field`` is the first problem's."""

    def __init__(self, problems: list[InvalidInput]) -> None:
        self._problems = [one for problem in problems for one in problem.problems]
        self.field, self.allowed = self._problems[0].field, None
        listed = " ".join(f"({n}) {p}" for n, p in enumerate(self._problems, 1))
        VidpipeError.__init__(self, f"{len(self._problems)} problems: {listed}")

    @property
    def problems(self) -> list[InvalidInput]:
        return list(self._problems)


def invalid(problems: list[InvalidInput]) -> InvalidInput:
    """One error for ``problems`` (not empty): the problem itself when there is one, so its message
    stays exactly what it was; ``InvalidInputs`` naming them all otherwise."""
    return problems[0] if len(problems) == 1 else InvalidInputs(problems)


class ProjectNotFound(VidpipeError):
    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        super().__init__(
            f"project {project_id!r} does not exist; create it with "
            f'`vidpipe new "<prompt>" --id {project_id}` or list projects with `vidpipe list`'
        )


class ConfigurationError(VidpipeError):
    """The environment or settings cannot work (missing credentials, no ffmpeg, ...)."""


class ProviderError(VidpipeError):
    """A provider call failed for good (after retries). Names stage, scene and cause.
    ``scene`` is the 0-based index (of the frame, for keyframes); people read it 1-based."""

    def __init__(self, stage: str, message: str, scene: int | None = None, status: int | str | None = None) -> None:
        self.stage = stage
        self.scene = scene
        self.status = status
        self.detail = message + (f" (status {status})" if status is not None else "")
        what = "frame" if stage == KEYFRAMES else "scene"
        # 1-based as scenes.scene_number gives it, written out: scenes.py imports this module.
        where = stage if scene is None else f"{stage}, {what} {scene + 1}"
        super().__init__(f"{where}: {self.detail}")


class SafetyRejected(ProviderError):
    """The provider refused to produce a clip for content-safety reasons. ``reasons`` name their
    scenes, so the message does not repeat the first one."""

    def __init__(self, stage: str, scene: int, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__(stage, "rejected by the provider's safety filter: " + ("; ".join(reasons) or "no reason given"))
        self.scene = scene


class BudgetExceeded(VidpipeError):
    """What is spent plus what a stage would pay exceeds the budget. ``project_id`` (when known)
    names the command that raises the budget."""

    def __init__(self, stage: str, projected_usd: float, allowed_usd: float, project_id: str | None = None) -> None:
        self.projected_usd = projected_usd
        self.allowed_usd = allowed_usd
        at_least = math.ceil(projected_usd * 100 - 1e-6) / 100
        raise_it = f"`vidpipe edit {project_id} --max-cost {at_least:.2f}`" if project_id else "--max-cost"
        super().__init__(
            f"{stage}: projected cost ${projected_usd:.2f} exceeds the project budget ${allowed_usd:.2f}; "
            f"raise the budget to at least ${at_least:.2f} ({raise_it}), or use fewer or shorter scenes or the "
            "animatic provider (a new project)"
        )


class ProjectBusy(VidpipeError):
    """Another run holds the project's lock."""

    def __init__(self, project_id: str, holder: str) -> None:
        self.holder = holder
        super().__init__(f"project {project_id!r} is being rendered by {holder}; wait for it or stop it first")


class MediaError(VidpipeError):
    """ffmpeg could not run or produced something unusable."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line (whitespace collapsed), shortened to ``limit`` characters:
    the cause part of a one-line error message."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_url(url: str) -> str:
    """``url`` fit for a message: the password of ``user:password@`` and every query value
    (tokens, signatures) replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if ":" not in netloc.rpartition("@")[0] and not parts.query:
        return url  # nothing to hide; urlunsplit would not give back every URL as it was ("s3://" -> "s3:")
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = (
        "&".join(f"{pair.split('=', 1)[0]}=***" if "=" in pair else pair for pair in parts.query.split("&"))
        if parts.query
        else ""
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub_url(text: str, url: str) -> str:
    """``text`` with ``url`` (and its password, wherever it appears alone) redacted."""
    from urllib.parse import urlsplit

    text = text.replace(url, redact_url(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text
