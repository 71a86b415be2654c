"""Registering projects: validate everything first, then write the row (nothing on failure)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from vidpipe_core.config import ASPECT_RATIOS, MAX_PROMPT_CHARS, MAX_SCENES, MIN_SCENES, Settings
from vidpipe_core.errors import InvalidInput, ProjectNotFound
from vidpipe_core.ids import new_project_id, validate_project_id
from vidpipe_core.models import Project
from vidpipe_core.providers import clip_provider, resolve_stage_providers
from vidpipe_core.schemas import ProjectSpec, StageProviders
from vidpipe_core.services import Services

MAX_STYLE_CHARS = 500
SAFETY_POLICIES = ("fail", "skip", "retry")


def build_spec(
    settings: Settings,
    prompt: str,
    *,
    id: str | None = None,  # noqa: A002 - the CLI's and the spec's name for it
    taken: Callable[[str], bool] = lambda _id: False,
    style: str | None = None,
    aspect_ratio: str | None = None,
    clip_duration: int | None = None,
    scenes: int | None = None,
    provider: str | None = None,
    storyboard_provider: str | None = None,
    keyframe_provider: str | None = None,
    clip_provider_name: str | None = None,
    generate_audio: bool | None = None,
    negative_prompt: str = "",
    seed: int | None = None,
    fast: bool = False,
    max_cost_usd: float | None = None,
    safety_policy: str | None = None,
    crossfade: float = 0.0,
) -> ProjectSpec:
    """A validated spec; every problem raises InvalidInput naming the field and what is allowed."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("prompt", "is empty; describe the video you want")
    prompt = prompt.strip()
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput("prompt", f"is {len(prompt)} characters long", f"at most {MAX_PROMPT_CHARS}")
    style = (style if style is not None else settings.default_style).strip()
    if len(style) > MAX_STYLE_CHARS:
        raise InvalidInput("style", f"is {len(style)} characters long", f"at most {MAX_STYLE_CHARS}")
    aspect_ratio = aspect_ratio or settings.default_aspect_ratio
    if aspect_ratio not in ASPECT_RATIOS:
        raise InvalidInput("aspect_ratio", f"{aspect_ratio!r} is not supported", ", ".join(ASPECT_RATIOS))
    scenes = settings.default_scenes if scenes is None else scenes
    if not isinstance(scenes, int) or isinstance(scenes, bool) or not MIN_SCENES <= scenes <= MAX_SCENES:
        raise InvalidInput("scenes", f"{scenes!r} is out of range", f"{MIN_SCENES}-{MAX_SCENES}")
    if safety_policy is not None and safety_policy not in SAFETY_POLICIES:
        raise InvalidInput("safety_policy", f"{safety_policy!r} is unknown", ", ".join(SAFETY_POLICIES))
    max_cost = settings.max_cost_usd if max_cost_usd is None else max_cost_usd
    if max_cost < 0:
        raise InvalidInput("max_cost_usd", "must not be negative")

    stages = resolve_stage_providers(
        settings, provider, storyboard=storyboard_provider, keyframes=keyframe_provider, clips=clip_provider_name
    )
    clip_duration = settings.default_clip_duration if clip_duration is None else clip_duration
    if id is None:
        project_id = new_project_id(prompt, taken)
    else:
        project_id = validate_project_id(id)
        if taken(project_id):
            raise InvalidInput("id", f"{project_id!r} is already taken; choose another id or omit --id")
    try:
        spec = ProjectSpec(
            id=project_id, prompt=prompt, style=style, aspect_ratio=aspect_ratio,  # type: ignore[arg-type]
            clip_duration=clip_duration, scenes=scenes, providers=StageProviders(**stages),
            generate_audio=settings.generate_audio if generate_audio is None else generate_audio,
            negative_prompt=negative_prompt, seed=seed, fast=fast, max_cost_usd=max_cost,
            safety_policy=safety_policy or settings.safety_policy,  # type: ignore[arg-type]
            crossfade=crossfade,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(".".join(str(p) for p in err["loc"]) or "spec", err["msg"]) from None
    validate_clip_duration(settings, spec)
    if not 0 <= crossfade < spec.clip_duration:
        raise InvalidInput("crossfade", f"{crossfade} is out of range", f"0 <= crossfade < {spec.clip_duration} (the clip duration)")
    return spec


def validate_clip_duration(settings: Settings, spec: ProjectSpec) -> None:
    allowed = clip_provider(spec.providers.clips, settings).allowed_durations(spec)
    if spec.clip_duration not in allowed:
        raise InvalidInput(
            "clip_duration", f"{spec.clip_duration!r} seconds is not accepted by the {spec.providers.clips} clip provider",
            ", ".join(str(d) for d in allowed),
        )


def project_exists(services: Services, project_id: str) -> bool:
    with services.db.session() as s:
        return s.get(Project, project_id) is not None


def create_project(services: Services, prompt: str, *, source: str = "cli", **options: Any) -> ProjectSpec:
    spec = build_spec(services.settings, prompt, taken=lambda i: project_exists(services, i), **options)
    with services.db.session() as s:
        s.add(Project(id=spec.id, prompt=spec.prompt, spec=spec.model_dump(mode="json"), source=source))
    return spec


def load_spec(services: Services, project_id: str) -> ProjectSpec:
    validate_project_id(project_id)
    with services.db.session() as s:
        row = s.get(Project, project_id)
        if row is None:
            raise ProjectNotFound(project_id)
        return ProjectSpec.model_validate(row.spec)


def update_spec(services: Services, spec: ProjectSpec) -> None:
    with services.db.session() as s:
        row = s.get(Project, spec.id)
        if row is None:
            raise ProjectNotFound(spec.id)
        row.spec = spec.model_dump(mode="json")


def list_projects(services: Services) -> list[Project]:
    with services.db.session() as s:
        return list(s.scalars(select(Project).order_by(Project.created_at)))


def delete_project(services: Services, project_id: str) -> None:
    """Remove a project's rows and artifacts (used to undo a registration that failed later)."""
    from vidpipe_core.models import Keyframe, Scene, VideoClip

    with services.db.session() as s:
        for model in (VideoClip, Keyframe, Scene):
            s.query(model).filter(model.project_id == project_id).delete()
        row = s.get(Project, project_id)
        if row is not None:
            s.delete(row)
    services.store.delete_project(project_id)
