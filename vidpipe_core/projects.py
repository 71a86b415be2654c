"""Registering projects: validate everything first, then write the row (nothing on failure)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vidpipe_core import locks
from vidpipe_core.config import ASPECT_RATIOS, MAX_PROMPT_CHARS, MAX_SCENES, MIN_SCENES, Settings
from vidpipe_core.errors import ConfigurationError, InvalidInput, ProjectNotFound, VidpipeError, invalid, one_line
from vidpipe_core.ids import new_project_id, slug_from_prompt, validate_project_id
from vidpipe_core.models import Project, utcnow
from vidpipe_core.providers import clip_provider, narrator_voices, resolve_stage_providers
from vidpipe_core.request import (
    MAX_NEGATIVE_PROMPT_CHARS,
    MAX_SEED,
    MAX_STYLE_CHARS,
    REVIEWS,
    SAFETY_POLICIES,
    CharacterRequest,
    ProjectRequest,
    check_fields,
)
from vidpipe_core.schemas import GivenCharacter, GivenFile, ProjectSpec, StageProviders
from vidpipe_core.services import Services
from vidpipe_core.speech import check_language, check_voice
from vidpipe_core.storage import Layout
from vidpipe_core.text import check_text, has_visible_text
from vidpipe_core.userfiles import copy_into_project, take_image, take_music


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_budget(value: Any, *, default: bool = False) -> float:
    """A budget in USD: a finite number, 0 or more. NaN would compare false with every cost and so
    switch the budget guard off."""
    where = " (the default, VIDPIPE_MAX_COST_USD)" if default else ""
    if not _is_finite_number(value):
        raise InvalidInput("max_cost_usd", f"{value!r}{where} is not a finite number; give the budget in USD", "0 or more")
    if value < 0:
        raise InvalidInput("max_cost_usd", f"{value!r}{where} is negative; give the budget in USD", "0 or more")
    return float(value)


MAX_GIVEN_CHARACTERS = 8
MAX_NAME_CHARS = 60


def _given_characters(
    settings: Settings, characters: list[CharacterRequest], base: Path, problems: _Problems
) -> list[GivenCharacter]:
    """The characters a request names, each checked (name, appearance, image: `userfiles`)."""
    given: list[GivenCharacter] = []
    seen: set[str] = set()
    with problems.check():
        if len(characters) > MAX_GIVEN_CHARACTERS:
            raise InvalidInput("characters", f"names {len(characters)} characters", f"at most {MAX_GIVEN_CHARACTERS}")
    for character in characters[:MAX_GIVEN_CHARACTERS]:
        name, appearance = character.name.strip(), (character.appearance or "").strip() or None
        field = f"character {name!r}"
        with problems.check():
            check_text("characters", name)
            if not name:
                raise InvalidInput("characters", "a character has an empty name; give each character a name")
            if len(name) > MAX_NAME_CHARS:
                raise InvalidInput(field, f"the name is {len(name)} characters long", f"at most {MAX_NAME_CHARS}")
            if name.casefold() in seen:
                raise InvalidInput(field, "is given twice; name each character once")
            seen.add(name.casefold())
        with problems.check():
            if appearance is not None:
                check_text(field, appearance)
                if len(appearance) > MAX_STYLE_CHARS:
                    raise InvalidInput(
                        field, f"the appearance is {len(appearance)} characters long", f"at most {MAX_STYLE_CHARS}"
                    )
        image = None
        if character.image is not None:
            with problems.check():
                taken = take_image(field, character.image, settings, base)
                path = Layout.given_image(len(given) + 1, name, taken.ext)
                image = GivenFile(path=path, sha256=taken.sha256, size=taken.size, source=taken.source)
        given.append(GivenCharacter(name=name, appearance=appearance, image=image))
    return given


def build_spec(settings: Settings, request: ProjectRequest, *, base: Path | None = None) -> ProjectSpec:
    """The validated spec of ``request``, every default resolved; the one place a request's values
    are judged, called once per registration. Every problem is named at once: one raises
    InvalidInput naming the field and what is allowed, several raise InvalidInputs listing each (a
    field that depends on another, such as the crossfade on the clip duration, is checked once that
    one is valid). A provider that cannot run here (Google without credentials) raises
    ConfigurationError (`validate_request` names it as the request's problem instead).

    The id is the request's, or the one the prompt makes (`slug_from_prompt`); nothing here asks the
    database whether it is taken: `claim_id` does, when the project is registered.

    The person's own files (character images, music) are read and judged here (`userfiles`); a
    relative path is read from ``base`` (default: the working folder), which is also where files
    may come from unless VIDPIPE_INPUT_ROOTS says otherwise. `create_project` copies them."""
    base = (base or Path.cwd()).resolve()
    prompt, id = request.prompt, request.id
    style, negative_prompt = request.style, request.negative_prompt or ""
    aspect_ratio, clip_duration, scenes = request.aspect_ratio, request.clip_duration, request.scenes
    seed, safety_policy, max_cost_usd = request.seed, request.safety_policy, request.max_cost_usd
    crossfade = 0.0 if request.crossfade is None else request.crossfade
    problems = _Problems()
    with problems.check():
        if isinstance(prompt, str) and prompt.strip() and not has_visible_text(prompt):  # said before naming one of them
            raise InvalidInput(
                "prompt", "has no visible characters (only spaces and invisible ones such as U+200B); describe the video you want"
            )
        check_text("prompt", prompt)
        if not prompt.strip():
            raise InvalidInput("prompt", "is empty; describe the video you want")
        if len(prompt.strip()) > MAX_PROMPT_CHARS:
            raise InvalidInput("prompt", f"is {len(prompt.strip())} characters long", f"at most {MAX_PROMPT_CHARS}")
    prompt_ok = not problems
    prompt = prompt.strip() if isinstance(prompt, str) else ""
    with problems.check():
        style = check_text("style", style if style is not None else settings.default_style).strip()
        if len(style) > MAX_STYLE_CHARS:
            raise InvalidInput("style", f"is {len(style)} characters long", f"at most {MAX_STYLE_CHARS}")
    with problems.check():
        check_text("negative_prompt", negative_prompt)
        if len(negative_prompt) > MAX_NEGATIVE_PROMPT_CHARS:
            raise InvalidInput(
                "negative_prompt", f"is {len(negative_prompt)} characters long", f"at most {MAX_NEGATIVE_PROMPT_CHARS}"
            )
    id_ok = True
    if id is not None:
        with problems.check(), problems.unless_ok() as id_check:
            check_text("id", id)
            validate_project_id(id)
        id_ok = id_check.ok
    aspect_ratio = aspect_ratio or settings.default_aspect_ratio
    with problems.check():
        if aspect_ratio not in ASPECT_RATIOS:
            raise InvalidInput("aspect_ratio", f"{aspect_ratio!r} is not supported", ", ".join(ASPECT_RATIOS))
    scenes = settings.default_scenes if scenes is None else scenes
    with problems.check():
        if not isinstance(scenes, int) or isinstance(scenes, bool) or not MIN_SCENES <= scenes <= MAX_SCENES:
            raise InvalidInput("scenes", f"{scenes!r} is out of range", f"{MIN_SCENES}-{MAX_SCENES}")
    with problems.check():
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
            raise InvalidInput("seed", f"{seed!r} is out of range", f"0-{MAX_SEED}, an unsigned 32-bit integer")
    with problems.check():
        if safety_policy is not None and safety_policy not in SAFETY_POLICIES:
            raise InvalidInput("safety_policy", f"{safety_policy!r} is unknown", ", ".join(SAFETY_POLICIES))
    with problems.check():
        if request.review is not None and request.review not in REVIEWS:
            raise InvalidInput("review", f"{request.review!r} is unknown", ", ".join(REVIEWS))
    max_cost = 0.0
    with problems.check():
        max_cost = check_budget(settings.max_cost_usd if max_cost_usd is None else max_cost_usd, default=max_cost_usd is None)
    crossfade_ok = True
    with problems.check(), problems.unless_ok() as crossfade_check:
        if not _is_finite_number(crossfade):
            raise InvalidInput("crossfade", f"{crossfade!r} is not a finite number", "0 <= crossfade < the clip duration")
    crossfade_ok = crossfade_check.ok
    voice, language = request.voice, request.language
    with problems.check():
        voice = check_voice(settings.tts_voice if voice is None else voice, narrator_voices())
    with problems.check():
        language = check_language(settings.tts_language if language is None else language)
    stages: dict[str, Any] | None = None
    with problems.check():
        stages = dict(
            resolve_stage_providers(
                settings,
                request.provider,
                storyboard=request.storyboard_provider,
                keyframes=request.keyframe_provider,
                clips=request.clip_provider,
            )
        )
    given = _given_characters(settings, request.characters or [], base, problems)
    music = None
    if request.music is not None:
        with problems.check():
            taken = take_music("music", request.music, settings, base)
            music = GivenFile(path=Layout.music(taken.ext), sha256=taken.sha256, size=taken.size, source=taken.source)
    clip_duration = settings.default_clip_duration if clip_duration is None else clip_duration
    if problems:  # what follows needs the values above
        if stages is not None and prompt_ok:
            _check_duration_alone(settings, stages, clip_duration, problems)
        problems.raise_any()
    assert stages is not None
    project_id = slug_from_prompt(prompt) if id is None else validate_project_id(id) if id_ok else id
    try:
        spec = ProjectSpec(
            id=project_id,
            prompt=prompt,
            style=style,
            aspect_ratio=aspect_ratio,  # type: ignore[arg-type]  # any str: checked against ASPECT_RATIOS above
            clip_duration=clip_duration,
            scenes=scenes,
            providers=StageProviders(**stages),
            generate_audio=settings.generate_audio if request.generate_audio is None else request.generate_audio,
            negative_prompt=negative_prompt,
            seed=seed,
            fast=bool(request.fast),
            max_cost_usd=max_cost,
            safety_policy=safety_policy or settings.safety_policy,  # type: ignore[arg-type]  # a str checked against SAFETY_POLICIES above
            crossfade=crossfade,
            burn_subtitles=bool(request.burn_subtitles),
            characters=given,
            music=music,
            narration=True if request.narration is None else request.narration,
            voice=voice,
            language=language,
        )
        spec = spec.model_copy(update={"review": request.review or default_review(settings, spec)})
    except ValidationError as exc:
        raise invalid([_pydantic_problem(e) for e in exc.errors()]) from None
    with problems.check(), problems.unless_ok() as duration_check:
        validate_clip_duration(settings, spec)
    if duration_check.ok and crossfade_ok:
        with problems.check():
            if not 0 <= crossfade < spec.clip_duration:
                raise InvalidInput(
                    "crossfade", f"{crossfade} is out of range", f"0 <= crossfade < {spec.clip_duration} (the clip duration)"
                )
    problems.raise_any()
    return spec


def default_review(settings: Settings, spec: ProjectSpec) -> str:
    """The review gate of a project that names none: VIDPIPE_REVIEW, where `auto` means keyframes
    when the project's clips cost money (a priced clip model: google) and none when they are free
    (the animatic)."""
    if settings.review != "auto":
        return settings.review
    provider = clip_provider(spec.providers.clips, settings)
    priced = settings.prices.get(provider.model_for(spec), {})
    return "keyframes" if any(rate > 0 for rate in priced.values()) else "none"


def validate_request(settings: Settings, request: ProjectRequest, *, base: Path | None = None) -> ProjectSpec:
    """`build_spec` for a request that is not a command line (an inbox file, the `new_project`
    job): a provider that cannot run here is a problem of the request, named `provider`, rather
    than a configuration error of the caller."""
    try:
        return build_spec(settings, request, base=base)
    except InvalidInput:
        raise
    except VidpipeError as exc:  # e.g. provider: google without credentials
        raise InvalidInput("provider", str(exc)) from None


def request_and_spec(
    settings: Settings, raw: Mapping[str, Any], *, base: Path | None = None
) -> tuple[ProjectRequest, ProjectSpec]:
    """The request of ``raw``'s fields and its spec, validated once (`validate_request`), or one
    InvalidInput naming every problem: the fields' own (unknown, missing, wrong type), then the
    spec's rules for the fields that parsed, so the input is refused naming everything to change."""
    request, problems = check_fields(raw)
    spec = None
    if request is not None:
        try:
            spec = validate_request(settings, request, base=base)
        except InvalidInput as exc:
            problems += exc.problems
    if problems:
        raise invalid(problems)
    assert request is not None and spec is not None
    return request, spec


def _pydantic_problem(err: Any) -> InvalidInput:
    return InvalidInput(".".join(str(p) for p in err["loc"]) or "spec", err["msg"])


def _check_duration_alone(settings: Settings, stages: dict[str, Any], clip_duration: Any, problems: _Problems) -> None:
    """The clip duration's check when other fields failed: against the clip provider alone, so a
    wrong duration is named along with the rest (a provider's rule reads only the duration and
    the model choice)."""
    if not isinstance(clip_duration, int) or isinstance(clip_duration, bool):
        problems.add(InvalidInput("clip_duration", f"{clip_duration!r} is not a whole number of seconds"))
        return
    try:
        probe = ProjectSpec(
            id="probe",
            prompt="probe",
            style="",
            aspect_ratio=settings.default_aspect_ratio,  # type: ignore[arg-type]  # a setting validated by Settings
            clip_duration=clip_duration,
            scenes=1,
            providers=StageProviders(**stages),
        )
    except ValidationError:
        return
    with problems.check():
        validate_clip_duration(settings, probe)


class _Check:
    ok = True


class _Problems:
    """The InvalidInput problems of one input, collected check by check."""

    def __init__(self) -> None:
        self.found: list[InvalidInput] = []

    def __bool__(self) -> bool:
        return bool(self.found)

    def add(self, problem: InvalidInput) -> None:
        self.found.extend(problem.problems)

    @contextmanager
    def check(self) -> Iterator[None]:
        """Run a block of checks; its InvalidInput is recorded instead of raised."""
        try:
            yield
        except InvalidInput as exc:
            self.add(exc)

    @contextmanager
    def unless_ok(self) -> Iterator[_Check]:
        """Inside ``check()``: say whether the block passed."""
        outcome = _Check()
        try:
            yield outcome
        except InvalidInput:
            outcome.ok = False
            raise

    def raise_any(self) -> None:
        if self.found:
            raise invalid(self.found)


def validate_clip_duration(settings: Settings, spec: ProjectSpec) -> None:
    allowed = clip_provider(spec.providers.clips, settings).allowed_durations(spec)
    if spec.clip_duration not in allowed:
        raise InvalidInput(
            "clip_duration",
            f"{spec.clip_duration!r} seconds is not accepted by the {spec.providers.clips} clip provider",
            ", ".join(str(d) for d in allowed),
        )


def project_exists(services: Services, project_id: str) -> bool:
    with services.db.session() as s:
        return s.get(Project, project_id) is not None


# The run id under which a registration holds the new project's lock while it sets an earlier
# project's files aside.
REGISTER_RUN_ID = "vidpipe-register"


def set_aside_tag(nonce: str) -> str:
    """How the folder an earlier project left is named after the registration that moved it."""
    return nonce[:12]


def create_project(services: Services, spec: ProjectSpec, source: str) -> ProjectSpec:
    """Write the row of ``spec`` (validated by `build_spec`, its id claimed by `claim_id`);
    ``source`` says where the request came from (`cli`, `inbox:...`, `dagster:new_project:<run>`).
    Files that an earlier project with this id left in the artifact store (its database was lost
    or moved, or its row deleted) are then moved aside, never deleted (`ArtifactStore.set_aside`;
    `earlier_files` says where): nothing of that project is ever taken for this one's. The row is
    written holding the project's lock, so no step writes into the folder while it is moved; when
    the move fails, the row is removed again and the registration fails, with the earlier files
    where they were. An id taken meanwhile (by a registration at the same moment) is InvalidInput."""
    nonce, holder = uuid.uuid4().hex, locks.Holder.current(REGISTER_RUN_ID).encode()
    try:
        with services.db.session() as s:
            s.add(
                Project(
                    id=spec.id,
                    prompt=spec.prompt,
                    spec=spec.model_dump(mode="json"),
                    source=source,
                    nonce=nonce,
                    lock_holder=holder,
                    lock_heartbeat=utcnow(),
                )
            )
    except IntegrityError:
        if project_exists(services, spec.id):
            raise InvalidInput("id", f"{spec.id!r} is already taken by another project; choose another id") from None
        raise
    try:
        services.store.set_aside(spec.id, set_aside_tag(nonce))
    except BaseException as exc:
        _unregister(services, spec.id, nonce)
        if not isinstance(exc, Exception) or isinstance(exc, ConfigurationError):
            raise  # a ConfigurationError: the store itself cannot be reached, and says what to set
        raise ConfigurationError(
            f"project {spec.id!r} cannot be registered: an earlier project with this id left files in "
            f"{services.store.project_root(spec.id)} and they could not be moved aside ({one_line(exc)}); "
            "move them elsewhere yourself, then register again"
        ) from exc
    try:
        copy_into_project(services.store, spec)  # the person's own files: the folder is this project's now
    except BaseException:
        _unregister(services, spec.id, nonce)
        services.store.delete_project(spec.id)
        raise
    locks.release(services, spec.id, holder)
    return spec


def _unregister(services: Services, project_id: str, nonce: str) -> None:
    """Remove the row a registration that failed midway wrote."""
    with services.db.session() as s:
        s.query(Project).filter(Project.id == project_id, Project.nonce == nonce).delete()


def earlier_files(services: Services, project_id: str) -> str | None:
    """Where registering this project moved the files an earlier project with its id had left, if
    it moved any (None for a project registered before nonces)."""
    with services.db.session() as s:
        row = s.get(Project, project_id)
        nonce = row.nonce if row is not None else None
    return services.store.set_aside_for(project_id, set_aside_tag(nonce)) if nonce else None


# Spec fields that are not the user's settings: the id names the project, and takes are the
# regeneration tokens `vidpipe regenerate` adds later.
NOT_SETTINGS = frozenset({"id", "takes"})


class AlreadyRegistered(VidpipeError):
    """A registration that would duplicate a project: same prompt, same settings. An outcome
    rather than a failure (nothing was written); ``spec`` is the registered project's."""

    def __init__(self, spec: ProjectSpec) -> None:
        self.spec = spec
        super().__init__(f"project {spec.id} already has this prompt and these settings")


def settings_of(spec: ProjectSpec) -> dict[str, Any]:
    """What makes two projects the same video: the validated spec, its id and takes aside, with
    every default resolved (style, budget, providers), as JSON values."""
    return spec.model_dump(mode="json", exclude=set(NOT_SETTINGS))


def find_identical(services: Services, spec: ProjectSpec, *, only_id: str | None = None) -> ProjectSpec | None:
    """The oldest registered project with ``spec``'s prompt and settings (``settings_of``), or
    None; ``only_id`` looks at that project alone. Records are compared as they stand now: a
    project whose crossfade `vidpipe stitch` changed has other settings."""
    query = select(Project.id, Project.spec).where(Project.prompt == spec.prompt)
    if only_id is not None:
        query = query.where(Project.id == only_id)
    with services.db.session() as s:
        rows = list(s.execute(query.order_by(Project.created_at, Project.id)))
    wanted = settings_of(spec)
    for _id, stored in rows:
        try:
            other = ProjectSpec.model_validate(stored)
        except ValidationError:
            continue  # a record this version cannot read is nobody's twin
        if settings_of(other) == wanted:
            return other
    return None


def refuse_duplicate(services: Services, spec: ProjectSpec, *, generated: bool) -> None:
    """Raise AlreadyRegistered when ``spec`` has the prompt and settings of a registered project.
    With a ``generated`` id (the request named none), any project counts; with an id the request
    gave, only the project of that id (registering it again is a no-op, and a new id is the
    caller's explicit choice of a second project)."""
    twin = find_identical(services, spec, only_id=None if generated else spec.id)
    if twin is not None:
        raise AlreadyRegistered(twin)


def claim_id(services: Services, spec: ProjectSpec, *, generated: bool) -> ProjectSpec:
    """``spec`` with an id no project has: a ``generated`` one gets a short random suffix when its
    slug is taken (`new_project_id`); one the request gave is refused when taken."""
    taken = partial(project_exists, services)
    if generated:
        return spec.model_copy(update={"id": new_project_id(spec.prompt, taken)})
    if taken(spec.id):
        raise InvalidInput("id", f"{spec.id!r} is already taken; choose another id or omit --id")
    return spec


def load_spec(services: Services, project_id: str) -> ProjectSpec:
    validate_project_id(project_id)
    with services.db.session() as s:
        row = s.get(Project, project_id)
        if row is None:
            raise ProjectNotFound(project_id)
        return ProjectSpec.model_validate(row.spec)


def update_spec(services: Services, spec: ProjectSpec) -> None:
    """Store a changed spec, validated again (``model_copy(update=...)`` does not validate)."""
    try:
        spec = ProjectSpec.model_validate(spec.model_dump())
    except ValidationError as exc:
        raise invalid([_pydantic_problem(e) for e in exc.errors()]) from None
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
    from vidpipe_core.models import ApprovalRow, CharacterSheetRow, Keyframe, Scene, VideoClip

    with services.db.session() as s:
        # Every table that keys on the project (SQLite does not enforce the foreign keys' cascade).
        for model in (ApprovalRow, VideoClip, Keyframe, CharacterSheetRow, Scene):
            s.query(model).filter(model.project_id == project_id).delete()
        row = s.get(Project, project_id)
        if row is not None:
            s.delete(row)
    services.store.delete_project(project_id)
