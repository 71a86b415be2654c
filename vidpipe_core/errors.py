"""The error hierarchy. Every message tells the user what to change or do next."""
from __future__ import annotations


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


class ProjectNotFound(VidpipeError):
    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        super().__init__(
            f"project {project_id!r} does not exist; create it with "
            f"`vidpipe new \"<prompt>\" --id {project_id}` or list projects with `vidpipe list`"
        )


class ConfigurationError(VidpipeError):
    """The environment or settings cannot work (missing credentials, no ffmpeg, ...)."""


class ProviderError(VidpipeError):
    """A provider call failed for good (after retries). Names stage, scene and cause."""

    def __init__(self, stage: str, message: str, scene: int | None = None, status: int | str | None = None) -> None:
        self.stage = stage
        self.scene = scene
        self.status = status
        where = stage if scene is None else f"{stage}, scene {scene}"
        text = f"{where}: {message}"
        if status is not None:
            text += f" (status {status})"
        super().__init__(text)


class SafetyRejected(ProviderError):
    """The provider refused to produce a clip for content-safety reasons."""

    def __init__(self, stage: str, scene: int, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__(stage, "rejected by the provider's safety filter: " + ("; ".join(reasons) or "no reason given"), scene=scene)


class BudgetExceeded(VidpipeError):
    def __init__(self, stage: str, projected_usd: float, allowed_usd: float) -> None:
        self.projected_usd = projected_usd
        self.allowed_usd = allowed_usd
        super().__init__(
            f"{stage}: projected cost ${projected_usd:.2f} exceeds the project budget ${allowed_usd:.2f}; "
            "raise it with --max-cost or use fewer/shorter scenes or the animatic provider"
        )


class ProjectBusy(VidpipeError):
    """Another run holds the project's lock."""

    def __init__(self, project_id: str, holder: str) -> None:
        self.holder = holder
        super().__init__(f"project {project_id!r} is being rendered by {holder}; wait for it or stop it first")


class MediaError(VidpipeError):
    """ffmpeg could not run or produced something unusable."""
