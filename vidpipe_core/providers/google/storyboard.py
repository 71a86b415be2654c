"""The google storyboard: a Gemini text model with structured (JSON schema) output, its prompt,
and the check of what it returns (truncate extra scenes, refuse too few or unusable text)."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from vidpipe_core.cost import priced
from vidpipe_core.errors import InvalidInput, ProviderError
from vidpipe_core.providers.base import Usage
from vidpipe_core.providers.google.client import _GoogleStage, _response_text, _token_usage, log
from vidpipe_core.schemas import GivenCharacter, ProjectSpec, Storyboard, given_cast_problem
from vidpipe_core.speech import WORDS_PER_SECOND, check_line
from vidpipe_core.steps import STORYBOARD
from vidpipe_core.text import nested_text_problem

STORYBOARD_TEMPERATURES = (0.9, 0.6, 0.3)  # one attempt each; invalid output moves down


def storyboard_prompt(spec: ProjectSpec) -> str:
    n, d = spec.scenes, spec.clip_duration
    return (
        f"Plan a short video for this idea:\n{spec.prompt}\n\n"
        f"Visual style: {spec.style}\n"
        f"Aspect ratio: {spec.aspect_ratio}. Each scene becomes one {d}-second video clip that moves "
        f"from the scene's first frame to its last frame.\n"
        f"Write exactly {n} scenes, in story order.\n\n"
        "For every scene:\n"
        "- description: what happens, one or two sentences.\n"
        "- start_frame_prompt: a complete, self-contained image prompt for the first frame "
        "(subject, setting, composition, lighting, lens).\n"
        f"- end_frame_prompt: the last frame, reachable from the first in {d} seconds of continuous motion. "
        "The next scene starts from exactly this image, so describe it the same way the next "
        "scene's start_frame_prompt does.\n"
        "- motion_prompt: how the camera and the subjects move from the first frame to the last.\n"
        "- transition_notes: how the scene hands over to the next.\n"
        "- characters: the names of the characters the scene shows, spelled exactly as in "
        "style_guide.characters; an empty list when it shows none.\n" + _words_prompt(spec) + "\n"
        "style_guide applies to every scene. List every recurring character in "
        "style_guide.characters with a unique name and a fixed visual description (face, hair, build, "
        "clothing, colours) and repeat that description word for word in every frame prompt that shows "
        "them. Each character gets one reference image that every frame showing them is drawn from. "
        "No on-screen text. Return only JSON that matches the schema." + given_characters_prompt(spec)
    )


def given_characters_prompt(spec: ProjectSpec) -> str:
    """What the prompt says of the characters the person gave: their names exactly, first in
    style_guide.characters, each shown by at least one scene."""
    if not spec.characters:
        return ""
    lines = [
        f"- {c.name}: {c.appearance or 'describe them to match their reference image'}"
        + (" (a reference image is given)" if c.image else "")
        for c in spec.characters
    ]
    return (
        "\n\nThese characters are given. List them first in style_guide.characters with exactly these names "
        "(and these appearances where given), and show each of them in at least one scene:\n" + "\n".join(lines)
    )


def storyboard_schema(spec: ProjectSpec) -> dict[str, Any]:
    """The storyboard's JSON schema; with given characters, style_guide.characters starts with them
    (``prefixItems``, each name a ``const``), so structured output keeps their names."""
    schema = Storyboard.model_json_schema()
    if not spec.characters:
        return schema
    guide = schema["$defs"]["StyleGuide"]["properties"]["characters"]
    character = schema["$defs"]["Character"]["properties"]
    prefix = []
    for c in spec.characters:
        look = {**character["appearance"], "const": c.appearance} if c.appearance else character["appearance"]
        prefix.append(
            {
                "type": "object",
                "properties": {"name": {"type": "string", "const": c.name}, "appearance": look},
                "required": ["name", "appearance"],
            }
        )
    guide["prefixItems"] = prefix
    guide["minItems"] = len(prefix)
    return schema


def _words_prompt(spec: ProjectSpec) -> str:
    """What the prompt asks of each scene's words and sound (Veo speaks the dialogue and makes the
    sound in the clip; the narrator reads the narration over it)."""
    d = spec.clip_duration
    lines = []
    if spec.narration:
        most = int(d * WORDS_PER_SECOND)
        lines.append(
            f"- narration: one voice-over line read over the scene by a narrator, at most {most} words "
            f"(about {WORDS_PER_SECOND:g} words per second of the {d}-second clip); the lines of all scenes "
            "tell the story together. An empty string for a silent scene.\n"
        )
    if spec.generate_audio:
        lines.append(
            '- dialogue: words a character speaks on screen, as Name says: "the words" (short enough to say in '
            f"{d} seconds); an empty string when nobody speaks.\n"
            "- sound: the scene's sound effects and ambience, e.g. SFX: a door creaks. Ambient noise: distant "
            "traffic; an empty string for none.\n"
        )
    return "".join(lines)


def narration_problem(board: Storyboard, spec: ProjectSpec) -> str:
    """The first narration line too long for its scene (estimated), as a problem of the output."""
    for index, scene in enumerate(board.scenes):
        try:
            check_line(index, scene.narration, spec.clip_duration)
        except InvalidInput as exc:
            return str(exc)
    return ""


class GoogleStoryboard(_GoogleStage):
    """Storyboard from a Gemini text model with structured (JSON schema) output."""

    def model_for(self, spec: ProjectSpec) -> str:
        return self.settings.storyboard_model

    def plan(self, spec: ProjectSpec) -> tuple[Storyboard, Usage]:
        from google.genai import types

        client = self.client.get()
        model = self.model_for(spec)
        prompt = storyboard_prompt(spec)
        schema = storyboard_schema(spec)
        tokens_in = tokens_out = 0
        problem = "no attempt made"
        for attempt, temperature in enumerate(STORYBOARD_TEMPERATURES, start=1):
            config = types.GenerateContentConfig(
                response_mime_type="application/json",
                response_json_schema=schema,
                temperature=temperature,
            )
            response = self._call(
                functools.partial(client.models.generate_content, model=model, contents=prompt, config=config),
                stage=STORYBOARD,
                scene=None,
            )
            i, o = _token_usage(response)
            tokens_in, tokens_out = tokens_in + i, tokens_out + o
            board, problem = _parse_storyboard(_response_text(response), spec.scenes, spec.characters)
            if board is not None and spec.narration:
                problem = narration_problem(board, spec)
                board = None if problem else board
            if board is not None:
                return board, priced(self.settings, model, Usage(input_tokens=tokens_in, output_tokens=tokens_out))
            log.warning(
                "storyboard: attempt %d/%d (temperature %.1f) returned invalid output: %s",
                attempt,
                len(STORYBOARD_TEMPERATURES),
                temperature,
                problem,
            )
        raise ProviderError(
            STORYBOARD,
            f"{model} returned no valid storyboard in {len(STORYBOARD_TEMPERATURES)} attempts "
            f"(temperatures {', '.join(f'{t:.1f}' for t in STORYBOARD_TEMPERATURES)}); last problem: {problem}. "
            "Try again, simplify the prompt, or use the animatic storyboard provider",
        )


def _summarise_validation(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _parse_storyboard(text: str | None, scenes: int, given: Sequence[GivenCharacter] = ()) -> tuple[Storyboard | None, str]:
    """Validate LLM output; truncate extra scenes, refuse too few or a board that drops a ``given``
    character. Returns (board, problem)."""
    if not text:
        return None, "empty response (no text part)"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    try:
        board = Storyboard.model_validate(data)
    except ValidationError as exc:
        return None, f"does not match the storyboard schema: {_summarise_validation(exc)}"
    unusable = nested_text_problem(board.model_dump(mode="json"))
    if unusable:  # a name or prompt that reads differently from what it is, shown in every later prompt
        return None, unusable
    if len(board.scenes) < scenes:
        return None, f"{len(board.scenes)} scenes instead of {scenes}"
    if len(board.scenes) > scenes:
        log.warning("storyboard: model returned %d scenes, keeping the first %d", len(board.scenes), scenes)
        board = board.model_copy(update={"scenes": board.scenes[:scenes]})
    dropped = given_cast_problem(board, list(given))
    if dropped:
        return None, dropped
    return board, ""
