"""What a person may ask of a new project: one model, ``ProjectRequest``, and everything derived from it.

The fields, their descriptions and what a field left out means are written here once. `vidpipe new`'s
options (`vidpipe_dagster/cli/options.py`), the `new_project` job's config (`vidpipe_dagster/create.py`) and
the fields an inbox file may set (`vidpipe_core/inbox/`) are built from this model, so they cannot
drift apart (`tests/dagster/test_one_request.py` checks that every field appears in all three with
the same description and default, and makes the same project from the same values).

A request holds what was given and nothing else: a field left out is None and means its default
(a setting, another field, a fixed value), resolved by `projects.build_spec`, which also applies the
rules a value must follow (ranges, allowed values, text a person may type). This module only checks
the fields themselves: unknown names (with a "did you mean") and values of the wrong type, every
problem at once, in the words an inbox file or a Launchpad config needs.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vidpipe_core.config import ASPECT_RATIOS, MAX_PROMPT_CHARS, MAX_SCENES, MIN_SCENES, Settings
from vidpipe_core.errors import InvalidInput, invalid

MAX_STYLE_CHARS = 500
MAX_NEGATIVE_PROMPT_CHARS = 1000
MAX_SEED = 2**32 - 1  # Veo's seed is an unsigned 32-bit integer
SAFETY_POLICIES = ("fail", "skip", "retry")
REVIEWS = ("none", "keyframes")
PROVIDER_CHOICES = "auto, animatic, google"
DIGEST_CHARS = 32


@dataclass(frozen=True)
class Default:
    """What a field left out (null) means: the value of a setting, of another field, a fixed value,
    or words ("random", "generated from the prompt")."""

    setting: str | None = None  # a Settings field: its built-in value, or VIDPIPE_<NAME>
    field: str | None = None  # another field of the request
    value: str | float | bool | None = None  # a fixed value (the command line shows it as its own default)
    words: str | None = None

    def text(self, name_field: Callable[[str], str] | None = None) -> str:
        """How the default reads. ``name_field`` spells another field (`--provider` on the command
        line); by default its name."""
        if self.setting is not None:
            return f"{Settings.model_fields[self.setting].default}, or VIDPIPE_{self.setting.upper()}"
        if self.field is not None:
            return name_field(self.field) if name_field else self.field
        if self.value is not None:
            return str(self.value).lower() if isinstance(self.value, bool) else str(self.value) or "none"
        return self.words or ""


@dataclass(frozen=True)
class Offered:
    """How a field is offered to a person beyond its description: its default, and on the command
    line its spelling when it is not ``--<field-name>`` and the help panel it is listed in."""

    default: Default
    flag: str | None = None  # e.g. "--max-cost"; "--audio/--no-audio" for a flag with both forms
    panel: str | None = None


# The command line lists the providers in a panel of their own: in one table with the rest,
# --storyboard-provider's width leaves the help column too narrow at 80 columns for a default
# such as VIDPIPE_DEFAULT_CLIP_DURATION.
PROVIDERS = "Providers"
# The words, music and subtitles of the final mix: `--burn-subtitles/--no-burn-subtitles` is as wide as
# `--storyboard-provider`, so it has a panel of its own too.
FINAL_MIX = "Final mix"
OWN_FILES = "Your own files"  # --character-appearance is as wide as --storyboard-provider


class CharacterRequest(BaseModel):
    """A character as a person names it: its name, and optionally its look in words and an image
    that becomes its reference sheet as given."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(description="The character's name; the storyboard keeps it.")
    appearance: str | None = Field(default=None, description="How the character looks, in words.")
    image: str | None = Field(default=None, description="Its reference image: a PNG, JPEG or WebP file (a path, or s3:// on S3).")


def characters_from_cli(images: list[str], appearances: list[str]) -> list[dict[str, str]]:
    """The characters of `vidpipe new`'s ``--character NAME[=IMAGE]`` and
    ``--character-appearance NAME=TEXT`` options (each repeatable), in the order given; an
    appearance names a character of a ``--character``."""
    characters: list[dict[str, str]] = []
    for text in images:
        name, sep, image = text.partition("=")
        entry = {"name": name.strip()}
        if sep:
            entry["image"] = image.strip()
        characters.append(entry)
    for text in appearances:
        name, sep, look = text.partition("=")
        if not sep:
            raise InvalidInput("--character-appearance", f"{short(text)} has no '='", "NAME=TEXT, e.g. 'Mara=tall, red coat'")
        match = [c for c in characters if c["name"] == name.strip()]
        if not match:
            raise InvalidInput("--character-appearance", f"{name.strip()!r} is not named by a --character", "a --character NAME")
        match[0]["appearance"] = look.strip()
    return characters


NARRATOR = "Narration"  # its own panel too: --narration/--no-narration would narrow the help column


class ProjectRequest(BaseModel):
    """A new project as a person asks for it: the prompt and any of the optional fields; nothing
    else is accepted (an unknown field is named, with the closest known one)."""

    # strict: an inbox file's `scenes: "3"` is refused as text, not read as a number. Infinity and
    # NaN reach `build_spec`, whose messages say what a budget or crossfade must be.
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(description=f"What the video is about (1-{MAX_PROMPT_CHARS} characters).")
    id: Annotated[str | None, Offered(Default(words="generated from the prompt"))] = Field(
        default=None, description="Project id: lower-case letters, digits and -."
    )
    style: Annotated[str | None, Offered(Default(setting="default_style"))] = Field(
        default=None, description=f"Visual style (at most {MAX_STYLE_CHARS} characters)."
    )
    aspect_ratio: Annotated[str | None, Offered(Default(setting="default_aspect_ratio"))] = Field(
        default=None, description=" or ".join(ASPECT_RATIOS) + "."
    )
    clip_duration: Annotated[int | None, Offered(Default(setting="default_clip_duration"))] = Field(
        default=None, description="Seconds per scene: 1-8 with the animatic, 4, 6 or 8 with Veo."
    )
    scenes: Annotated[int | None, Offered(Default(setting="default_scenes"))] = Field(
        default=None, description=f"Number of scenes, {MIN_SCENES}-{MAX_SCENES}."
    )
    max_cost_usd: Annotated[float | None, Offered(Default(setting="max_cost_usd"), flag="--max-cost")] = Field(
        default=None, description="Budget in USD; a run that would exceed it stops."
    )
    provider: Annotated[str | None, Offered(Default(setting="provider"), panel=PROVIDERS)] = Field(
        default=None, description=f"Provider of every stage: {PROVIDER_CHOICES}."
    )
    storyboard_provider: Annotated[str | None, Offered(Default(field="provider"), panel=PROVIDERS)] = Field(
        default=None, description=f"Storyboard provider: {PROVIDER_CHOICES}."
    )
    keyframe_provider: Annotated[str | None, Offered(Default(field="provider"), panel=PROVIDERS)] = Field(
        default=None, description=f"Keyframe provider: {PROVIDER_CHOICES}."
    )
    clip_provider: Annotated[str | None, Offered(Default(field="provider"), panel=PROVIDERS)] = Field(
        default=None, description=f"Clip provider: {PROVIDER_CHOICES}."
    )
    generate_audio: Annotated[bool | None, Offered(Default(setting="generate_audio"), flag="--audio/--no-audio")] = Field(
        default=None, description="Generate an audio track (Veo)."
    )
    negative_prompt: Annotated[str | None, Offered(Default(value=""))] = Field(
        default=None, description=f"What the video must not show (at most {MAX_NEGATIVE_PROMPT_CHARS} characters)."
    )
    seed: Annotated[int | None, Offered(Default(words="random"))] = Field(
        default=None, description=f"Seed for Veo, 0-{MAX_SEED}."
    )
    fast: Annotated[bool | None, Offered(Default(value=False))] = Field(
        default=None, description="Use the fast (cheaper) video model."
    )
    safety_policy: Annotated[str | None, Offered(Default(setting="safety_policy"))] = Field(
        default=None, description="A clip refused by the safety filter: fail, skip or retry."
    )
    crossfade: Annotated[float | None, Offered(Default(value=0.0))] = Field(
        default=None, description="Crossfade between scenes in seconds (0 = hard cuts, stream copy)."
    )
    burn_subtitles: Annotated[bool | None, Offered(Default(value=False), panel=FINAL_MIX)] = Field(
        default=None, description="Also draw the subtitles into the picture (the video is encoded again)."
    )
    review: Annotated[str | None, Offered(Default(setting="review"))] = Field(
        default=None,
        description="keyframes: stop before the clips are paid for until `vidpipe approve ID`; none: render everything.",
    )

    characters: Annotated[list[CharacterRequest] | None, Offered(Default(words="none"), flag="--character", panel=OWN_FILES)] = (
        Field(
            default=None,
            description="Characters to keep: a name, an optional appearance, an optional image that is its reference "
            "sheet (PNG, JPEG or WebP, at most 20 MB, at least 256 px on its short side). "
            "On the command line NAME or NAME=IMAGE, repeatable.",
        )
    )
    music: Annotated[str | None, Offered(Default(words="none"), panel=OWN_FILES)] = Field(
        default=None, description="A music track for the final video: MP3, WAV, M4A or OGG (a path, or s3:// on S3)."
    )

    narration: Annotated[bool | None, Offered(Default(value=True), flag="--narration/--no-narration", panel=NARRATOR)] = Field(
        default=None, description="A narrator reads each scene's voice-over line (text to speech)."
    )
    voice: Annotated[str | None, Offered(Default(setting="tts_voice"), panel=NARRATOR)] = Field(
        default=None, description="The narrator's voice (a Gemini TTS voice, e.g. Kore, Puck, Charon)."
    )
    language: Annotated[str | None, Offered(Default(setting="tts_language"), panel=NARRATOR)] = Field(
        default=None, description="Language of the narration, a BCP-47 code such as en-US."
    )

    def digest(self, files: list[str] | None = None) -> str:
        """Identity of the request: equal for the same fields and values, whatever the file format
        (an inbox file dropped again finds the project it made). ``files``: the sha256 of the files
        it names (an image changed under the same name makes another request)."""
        values = self.model_dump(exclude_none=True)
        values["prompt"] = values["prompt"].strip()
        if files:
            values["files"] = files
        canonical = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_CHARS]


FIELDS = tuple(ProjectRequest.model_fields)


def offered(name: str) -> Offered | None:
    """How field ``name`` is offered (None for the prompt, which has no default)."""
    return next((m for m in ProjectRequest.model_fields[name].metadata if isinstance(m, Offered)), None)


def description(name: str) -> str:
    return ProjectRequest.model_fields[name].description or ""


def described(name: str) -> str:
    """The field's description and what leaving it out means, as one text (the Launchpad's)."""
    about = offered(name)
    return description(name) if about is None else f"{description(name)} Default (null): {about.default.text()}."


def fields_markdown() -> str:
    """The fields as a Markdown table (field, default, meaning): the list of an inbox file's fields."""
    rows = ["| field | default | meaning |", "| --- | --- | --- |"]
    for name in FIELDS:
        about = offered(name)
        default = "required" if about is None else about.default.text()
        rows.append(f"| `{name}` | {default} | {description(name)} |")
    return "\n".join(rows) + "\n"


# Checking the fields -----------------------------------------------------------------------------

_repr = reprlib.Repr()  # keyword arguments only from Python 3.12
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxstring, _repr.maxother = 2, 4, 4, 60, 60


def short(value: Any) -> str:
    """A bounded repr: never expands a deep or alias-bombed structure."""
    return _repr.repr(value)


def field_error(err: Any) -> InvalidInput:
    """One field's problem, from one of pydantic's errors, named as the person typed it."""
    loc = list(err["loc"])
    known = FIELDS
    if len(loc) > 1 and loc[0] == "characters" and isinstance(loc[1], int):  # one character, counted from 1
        loc[:2] = [f"characters[{loc[1] + 1}]"]
        known = tuple(CharacterRequest.model_fields)
    name = ".".join(str(p) for p in loc) or "file"
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        last = str(loc[-1]) if loc else name
        close = difflib.get_close_matches(last, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return InvalidInput(name, f"is not a known field{hint}", ", ".join(known))
    if kind == "list_type":
        return InvalidInput(name, f"{short(value)} is not a list; give one entry per character (name, appearance, image)")
    if kind == "missing":
        return InvalidInput(name, "is missing; every inbox file needs a prompt" if name == "prompt" else "is missing")
    if value is None:
        return InvalidInput(name, "is null; give it a value or remove the line")
    if isinstance(value, (list, dict, set, tuple, bytes)):
        what = {dict: "a mapping", bytes: "binary data"}.get(type(value), f"a {type(value).__name__}")
        return InvalidInput(name, f"is {what}, not a single value")
    if kind == "string_type":
        return InvalidInput(name, f"{short(value)} is not text; put it in quotes")
    if kind.startswith("int_"):
        return InvalidInput(name, f"{short(value)} is not a whole number")
    if kind.startswith("bool_"):
        return InvalidInput(name, f"{short(value)} is not true or false")
    if kind == "finite_number":
        return InvalidInput(name, f"{short(value)} is not a finite number")
    if kind.startswith("float_"):
        return InvalidInput(name, f"{short(value)} is not a number")
    return InvalidInput(name, err["msg"])


def check_fields(raw: Mapping[str, Any]) -> tuple[ProjectRequest | None, list[InvalidInput]]:
    """The request and every problem of its fields (unknown, missing, wrong type), all at once. With
    problems, the request holds the fields that are fine (None when the prompt is not), so their
    values can be checked too and the input is refused naming everything to change."""
    try:
        return ProjectRequest.model_validate(raw), []
    except ValidationError as exc:
        errors = exc.errors()
    problems = [field_error(e) for e in errors]
    bad = {e["loc"][0] for e in errors if e["loc"]}
    try:
        rest = ProjectRequest.model_validate({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        rest = None
    return rest, problems


def parse_fields(raw: Mapping[str, Any]) -> ProjectRequest:
    """The request of ``raw``'s fields; InvalidInput naming every problem of them."""
    request, problems = check_fields(raw)
    if problems:
        raise invalid(problems)
    assert request is not None
    return request
