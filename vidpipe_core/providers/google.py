"""The ``google`` provider: Gemini storyboard, Gemini image keyframes, Veo clips on Vertex AI.

One small class per stage protocol (:class:`GoogleStoryboard`, :class:`GoogleKeyframes`,
:class:`GoogleClips`), sharing one lazily built ``genai.Client`` (one per process and environment) through
:class:`GoogleClient`. :class:`GoogleProvider` bundles the three for callers that want all
of them on one client.

The client is built from the SDK's standard environment only (``genai.Client()``):
``GOOGLE_GENAI_USE_VERTEXAI``, ``GOOGLE_CLOUD_PROJECT``, ``GOOGLE_CLOUD_LOCATION``,
``GOOGLE_API_KEY``, ``GOOGLE_VERTEX_BASE_URL``. SDK retries are left off (its default);
every call goes through :func:`vidpipe_core.retry.retry_call` instead.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import ValidationError

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.config import ASPECT_RATIOS, Settings
from vidpipe_core.cost import priced
from vidpipe_core.errors import ConfigurationError, InvalidInput, ProviderError
from vidpipe_core.models import utcnow
from vidpipe_core.providers.base import (
    CharacterSheet,
    ClipOutcome,
    ClipOutcomeKind,
    ClipRequest,
    KeyframeRequest,
    PollCallback,
    PollObservation,
    SheetRequest,
    Usage,
)
from vidpipe_core.retry import describe_exception, is_transient_google, retry_call, status_of
from vidpipe_core.schemas import ProjectSpec, Storyboard
from vidpipe_core.text import nested_text_problem

if TYPE_CHECKING:
    from vidpipe_core.poll_types import PollSchedule

log = logging.getLogger("vidpipe.google")

NAME = "google"
STORYBOARD_TEMPERATURES = (0.9, 0.6, 0.3)  # one attempt each; invalid output moves down
IMAGE_ATTEMPTS = 3  # responses without an image part
ASPECT_TOLERANCE = 0.02
REQUEST_TIMEOUT_S = 300  # per HTTP request (image generation can be slow)
DOWNLOAD_TIMEOUT_S = 300
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_API_KEY_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")

_SETUP_HINT = (
    "set GOOGLE_GENAI_USE_VERTEXAI=true and either GOOGLE_API_KEY=<Vertex AI express-mode key>, "
    "or GOOGLE_CLOUD_PROJECT=<project> and GOOGLE_CLOUD_LOCATION=<region, e.g. us-central1> with "
    "Application Default Credentials (`gcloud auth application-default login`)"
)


# --- credentials ---------------------------------------------------------------------------


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true")


def _vertex_mode(env: Mapping[str, str]) -> bool:
    # The SDK lets GOOGLE_GENAI_USE_ENTERPRISE override GOOGLE_GENAI_USE_VERTEXAI.
    if env.get("GOOGLE_GENAI_USE_ENTERPRISE") is not None:
        return _truthy(env.get("GOOGLE_GENAI_USE_ENTERPRISE"))
    return _truthy(env.get("GOOGLE_GENAI_USE_VERTEXAI"))


def _env_api_key(env: Mapping[str, str]) -> str | None:
    for var in _API_KEY_VARS:
        if env.get(var, "").strip():
            return env[var].strip()
    return None


def _uses_express_mode(env: Mapping[str, str]) -> bool:
    """Mirrors the SDK: project/location from the environment win over an API key."""
    return bool(_env_api_key(env)) and not (env.get("GOOGLE_CLOUD_PROJECT") or env.get("GOOGLE_CLOUD_LOCATION"))


def _adc_available(env: Mapping[str, str]) -> bool:
    """Application Default Credentials are findable without a network call."""
    explicit = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if explicit:
        return Path(explicit).expanduser().is_file()
    config_dir = env.get("CLOUDSDK_CONFIG")
    if config_dir:
        candidates = [Path(config_dir)]
    elif os.name == "nt":
        candidates = [Path(env.get("APPDATA", "")) / "gcloud"]
    else:
        candidates = [Path(env.get("HOME", str(Path.home()))) / ".config" / "gcloud"]
    if any((c / "application_default_credentials.json").is_file() for c in candidates):
        return True
    # On Google Cloud runtimes ADC comes from the metadata server.
    return any(env.get(v) for v in ("GCE_METADATA_HOST", "GCE_METADATA_IP", "K_SERVICE", "CLOUD_RUN_JOB"))


def google_credentials_status(env: Mapping[str, str] = os.environ) -> tuple[bool, str]:
    """Whether the google provider can run (Vertex AI mode with usable auth), and why not.

    The message names variables, never their values.
    """
    vertex = _vertex_mode(env)
    api_key = _env_api_key(env)
    project = env.get("GOOGLE_CLOUD_PROJECT", "").strip()
    location = env.get("GOOGLE_CLOUD_LOCATION", "").strip()
    if not vertex:
        if api_key:
            return False, (
                "a Gemini API key is set but Vertex AI mode is off: in google-genai 3.x Veo video "
                "generation (generate_videos) works only in Vertex AI mode. Set "
                "GOOGLE_GENAI_USE_VERTEXAI=true and keep GOOGLE_API_KEY if it is a Vertex AI "
                "express-mode key, or set GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION with "
                "Application Default Credentials. Until then use the animatic provider."
            )
        return False, f"no Google credentials configured: {_SETUP_HINT}; or use the animatic provider"
    if project or location:
        ignored = " (GOOGLE_API_KEY is ignored while GOOGLE_CLOUD_PROJECT/GOOGLE_CLOUD_LOCATION are set)" if api_key else ""
        if not project and not _adc_available(env):
            return False, (
                "GOOGLE_CLOUD_LOCATION is set without GOOGLE_CLOUD_PROJECT" + ignored + ": set "
                "GOOGLE_CLOUD_PROJECT and Application Default Credentials, or unset "
                "GOOGLE_CLOUD_LOCATION to use express mode with GOOGLE_API_KEY"
            )
        if not _adc_available(env):
            return False, (
                "GOOGLE_CLOUD_PROJECT is set but no Application Default Credentials were found"
                + ignored
                + ": run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS "
                "to a service-account key file; or unset GOOGLE_CLOUD_PROJECT/GOOGLE_CLOUD_LOCATION "
                "and use an express-mode GOOGLE_API_KEY"
            )
        where = location or "global (set GOOGLE_CLOUD_LOCATION, e.g. us-central1, for Veo)"
        return True, f"Vertex AI: project from GOOGLE_CLOUD_PROJECT, location {where}, Application Default Credentials"
    if api_key:
        return True, "Vertex AI express mode (API key from the environment)"
    return False, f"GOOGLE_GENAI_USE_VERTEXAI is on but there is nothing to authenticate with: {_SETUP_HINT}"


def redact(text: str, env: Mapping[str, str] = os.environ) -> str:
    """Remove any API key from ``text`` (defence in depth for messages built from responses)."""
    for var in _API_KEY_VARS:
        secret = env.get(var, "").strip()
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    return text


def _describe(exc: BaseException) -> str:
    return redact(describe_exception(exc))


# --- shared client -------------------------------------------------------------------------

_shared_clients: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _environment_key(env: Mapping[str, str]) -> str:
    """What the SDK builds a client from (every GOOGLE_* variable), as a digest: two clients are
    interchangeable exactly when these agree, and the key itself holds no secret."""
    relevant = sorted((k, v) for k, v in env.items() if k.startswith(("GOOGLE_", "CLOUDSDK_")))
    return hashlib.sha256(json.dumps(relevant).encode()).hexdigest()


def shared_genai_client() -> Any:
    """One ``genai.Client`` per process and environment: building one costs ~40 ms of CPU (an SSL
    context) and a new connection, and every stage of every run in a process would build its own."""
    ok, message = google_credentials_status(os.environ)
    if not ok:
        raise ConfigurationError(f"google provider: {message}")
    key = _environment_key(os.environ)
    with _shared_lock:
        client = _shared_clients.get(key)
        if client is None:
            from google import genai
            from google.genai import types

            # vertexai=True explicitly: only then does the SDK read GOOGLE_VERTEX_BASE_URL
            # (with the flag from the environment it reads GOOGLE_GEMINI_BASE_URL).
            # retry_options stays None: the SDK makes exactly one attempt per call.
            try:
                client = genai.Client(vertexai=True, http_options=types.HttpOptions(timeout=REQUEST_TIMEOUT_S * 1000))
            except ValueError as exc:  # the SDK's own "missing project/key" checks
                raise ConfigurationError(f"google provider: {redact(str(exc))}; {_SETUP_HINT}") from None
            _shared_clients[key] = client
        return client


class GoogleClient:
    """Gives the stages their ``genai.Client``: the process's shared one, or one passed in (tests)."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client

    def get(self) -> Any:
        if self._client is None:
            self._client = shared_genai_client()
        return self._client

    def vertex(self) -> Any:
        client = self.get()
        if not getattr(client, "vertexai", False):
            _, message = google_credentials_status(os.environ)
            raise ConfigurationError(f"google provider: Veo needs Vertex AI mode; {message}")
        return client

    def download_headers(self) -> dict[str, str]:
        """Auth for Cloud Storage downloads: the express-mode key, else an ADC bearer token."""
        api_key = getattr(getattr(self.get(), "_api_client", None), "api_key", None)
        if api_key is None and _uses_express_mode(os.environ):
            api_key = _env_api_key(os.environ)
        if api_key:
            return {"x-goog-api-key": api_key}
        import google.auth
        import google.auth.transport.requests

        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        credentials.refresh(google.auth.transport.requests.Request())
        return {"Authorization": f"Bearer {credentials.token}"}


def _holder(client: Any | None) -> GoogleClient:
    return client if isinstance(client, GoogleClient) else GoogleClient(client)


class _GoogleStage:
    name = NAME
    reproducible = False  # every request is paid for and gives new bytes

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.client = _holder(client)

    def _call(
        self,
        fn: Callable[[], Any],
        *,
        stage: str,
        scene: int | None,
        describe: Callable[[BaseException], str] = _describe,
        cancel: CancelToken = NEVER,
    ) -> Any:
        """One remote call with bounded retries; the waits between attempts end when ``cancel`` is cancelled."""
        s = self.settings
        cancel.check()
        return retry_call(
            fn,
            stage=stage,
            scene=scene,
            attempts=s.retry_attempts,
            initial_s=s.retry_initial_s,
            max_s=s.retry_max_s,
            is_transient=is_transient_google,
            sleep=cancel.sleep,
            describe=describe,
            logger=log,
        )


def _token_usage(response: Any) -> tuple[int, int]:
    meta = getattr(response, "usage_metadata", None)
    if meta is None:
        return 0, 0
    out = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return meta.prompt_token_count or 0, out


# --- storyboard ----------------------------------------------------------------------------


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
        "style_guide.characters; an empty list when it shows none.\n\n"
        "style_guide applies to every scene. List every recurring character in "
        "style_guide.characters with a unique name and a fixed visual description (face, hair, build, "
        "clothing, colours) and repeat that description word for word in every frame prompt that shows "
        "them. Each character gets one reference image that every frame showing them is drawn from. "
        "No on-screen text. Return only JSON that matches the schema."
    )


class GoogleStoryboard(_GoogleStage):
    """Storyboard from a Gemini text model with structured (JSON schema) output."""

    def model_for(self, spec: ProjectSpec) -> str:
        return self.settings.storyboard_model

    def plan(self, spec: ProjectSpec) -> tuple[Storyboard, Usage]:
        from google.genai import types

        client = self.client.get()
        model = self.model_for(spec)
        prompt = storyboard_prompt(spec)
        schema = Storyboard.model_json_schema()
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
                stage="storyboard",
                scene=None,
            )
            i, o = _token_usage(response)
            tokens_in, tokens_out = tokens_in + i, tokens_out + o
            board, problem = _parse_storyboard(_response_text(response), spec.scenes)
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
            "storyboard",
            f"{model} returned no valid storyboard in {len(STORYBOARD_TEMPERATURES)} attempts "
            f"(temperatures {', '.join(f'{t:.1f}' for t in STORYBOARD_TEMPERATURES)}); last problem: {problem}. "
            "Try again, simplify the prompt, or use the animatic storyboard provider",
        )


def _response_text(response: Any) -> str | None:
    try:
        candidates = response.candidates or []
        if not candidates or candidates[0].content is None:
            return None
        texts = [
            p.text for p in (candidates[0].content.parts or []) if getattr(p, "text", None) and not getattr(p, "thought", False)
        ]
        return "".join(texts) or None
    except AttributeError:
        return None


def _summarise_validation(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _parse_storyboard(text: str | None, scenes: int) -> tuple[Storyboard | None, str]:
    """Validate LLM output; truncate extra scenes, refuse too few. Returns (board, problem)."""
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
    return board, ""


# --- keyframes -----------------------------------------------------------------------------


def aspect_ratio_error(width: int, height: int, aspect_ratio: str, tolerance: float = ASPECT_TOLERANCE) -> str | None:
    """None when ``width x height`` is within ``tolerance`` of ``aspect_ratio`` ("16:9")."""
    w, h = _ratio(aspect_ratio)
    wanted = w / h
    got = width / height if height else float("inf")
    if abs(got - wanted) / wanted <= tolerance:
        return None
    return f"image is {width}x{height} (ratio {got:.3f}), more than {tolerance:.0%} away from {aspect_ratio} ({wanted:.3f})"


def _ratio(aspect_ratio: str) -> tuple[int, int]:
    if aspect_ratio in ASPECT_RATIOS:
        return ASPECT_RATIOS[aspect_ratio]
    try:
        w, h = (int(x) for x in aspect_ratio.split(":"))
        if w > 0 and h > 0:
            return w, h
    except ValueError:
        pass
    raise InvalidInput("aspect_ratio", f"{aspect_ratio!r} is not an aspect ratio", allowed=", ".join(ASPECT_RATIOS))


# The most input images an image model takes in one request (documented "for best results": Vertex
# AI, "Gemini image generation limitations": Gemini 2.5 Flash Image at most three, Gemini 3 Pro
# Image at most 14). A model not listed gets the smallest.
MAX_INPUT_IMAGES = {
    "gemini-2.5-flash-image": 3,
    "gemini-2.5-flash-image-preview": 3,
    "gemini-3-pro-image-preview": 14,
}
DEFAULT_MAX_INPUT_IMAGES = 3


def max_input_images(model: str) -> int:
    return MAX_INPUT_IMAGES.get(model, DEFAULT_MAX_INPUT_IMAGES)


def keyframe_inputs(request: KeyframeRequest, limit: int) -> tuple[list[CharacterSheet], bytes | None]:
    """The images a keyframe request sends, within ``limit``: the previous frame always (continuity
    is what joins the clips), then the characters' sheets in the storyboard's order, as many as
    fit. A character left out is still described in the prompt's text."""
    previous = request.reference_png
    room = max(0, limit - (1 if previous is not None else 0))
    return list(request.characters[:room]), previous


def keyframe_prompt(request: KeyframeRequest, sheets: list[CharacterSheet] | None = None) -> str:
    """The frame prompt, after a line per attached image that says which image is which (images in
    order: the characters' sheets, then the previous frame)."""
    sheets = list(request.characters) if sheets is None else sheets
    lines = [
        f"Image {i} is the reference sheet of {sheet.name} ({sheet.appearance}): draw {sheet.name} exactly like it "
        "(face, hair, build, clothing, colours), in this frame's pose and place."
        for i, sheet in enumerate(sheets, start=1)
    ]
    if request.reference_png is not None:
        which = "The last image" if sheets else "The attached image"
        lines.append(
            f"{which} is the previous keyframe of the same continuous shot. Keep the same characters, wardrobe, "
            "setting, palette and lighting; change only what this prompt describes."
        )
    text = request.prompt.strip()
    if lines:
        text = "\n".join(lines) + "\n\n" + text
    return text + f"\n\nAspect ratio {request.aspect_ratio}. No text, captions or watermarks."


def sheet_prompt(request: SheetRequest) -> str:
    return (
        f"{request.prompt.strip()}\n\nA character reference sheet: {request.name} alone, full figure from head to "
        "feet, front view, neutral standing pose, plain neutral light-grey background, even soft lighting, "
        f"nothing else in the picture. Aspect ratio {request.aspect_ratio}. No text, captions or watermarks."
    )


def _first_image(response: Any) -> tuple[bytes, str] | None:
    for candidate in getattr(response, "candidates", None) or []:
        content = getattr(candidate, "content", None)
        for part in getattr(content, "parts", None) or []:
            blob = getattr(part, "inline_data", None)
            if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                return blob.data, blob.mime_type
    return None


def _why_no_image(response: Any) -> str:
    reasons = []
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and getattr(feedback, "block_reason", None):
        reasons.append(f"prompt blocked: {feedback.block_reason}")
    for candidate in getattr(response, "candidates", None) or []:
        finish = getattr(candidate, "finish_reason", None)
        if finish is not None and str(finish) not in ("STOP", "FinishReason.STOP"):
            reasons.append(f"finish reason {getattr(finish, 'value', finish)}")
    text = _response_text(response)
    if text:
        snippet = " ".join(text.split())[:120]
        reasons.append(f"the model answered with text instead: {snippet!r}")
    return "; ".join(reasons) or "the response had no image part"


def to_png(data: bytes) -> tuple[bytes, tuple[int, int]]:
    """Decode an image, re-encode as PNG if needed. Raises ValueError if it does not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            size = img.size
            if img.format == "PNG":
                return data, size
            if img.mode not in ("RGB", "RGBA", "L", "LA"):
                img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
            out = io.BytesIO()
            img.save(out, format="PNG")
            return out.getvalue(), size
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image does not decode ({exc})") from exc


class GoogleKeyframes(_GoogleStage):
    """Keyframes from a Gemini image model (generate_content with IMAGE output)."""

    def model_for(self, spec: ProjectSpec) -> str:
        return self.settings.image_model

    def expected_size(self, aspect_ratio: str) -> tuple[int, int] | None:
        return None  # the model picks the resolution; only the aspect ratio is known

    def render(self, request: KeyframeRequest) -> tuple[bytes, Usage]:
        """One frame from ONE generate_content request whose image parts are the sheets of the
        frame's characters, then the previous frame (within `max_input_images`)."""
        from google.genai import types

        _ratio(request.aspect_ratio)  # refuse a bad ratio before any request
        model = self.settings.image_model
        sheets, previous = keyframe_inputs(request, max_input_images(model))
        if len(sheets) < len(request.characters):
            left = ", ".join(c.name for c in request.characters[len(sheets) :])
            log.warning(
                "keyframes frame %d: %s takes at most %d input images; sending the previous frame and %d of %d "
                "reference sheets (left out: %s)",
                request.frame_index + 1,
                model,
                max_input_images(model),
                len(sheets),
                len(request.characters),
                left,
            )
        images = [sheet.png for sheet in sheets] + ([previous] if previous is not None else [])
        contents: list[Any] = [types.Part.from_bytes(data=png, mime_type="image/png") for png in images]
        contents.append(types.Part.from_text(text=keyframe_prompt(request, sheets)))
        return self._image(model, contents, request.aspect_ratio, stage="keyframes", index=request.frame_index)

    def render_sheet(self, request: SheetRequest) -> tuple[bytes, Usage]:
        """A character's reference sheet: one image request, text only."""
        from google.genai import types

        _ratio(request.aspect_ratio)
        model = self.settings.image_model
        contents: list[Any] = [types.Part.from_text(text=sheet_prompt(request))]
        return self._image(model, contents, request.aspect_ratio, stage="characters", index=None, what=request.name)

    def _image(
        self, model: str, contents: list[Any], aspect_ratio: str, *, stage: str, index: int | None, what: str = ""
    ) -> tuple[bytes, Usage]:
        """One image from ``contents``, retrying responses without a usable image."""
        from google.genai import types

        client = self.client.get()
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect_ratio),
        )
        frame = index
        subject = f"frame {frame + 1}" if frame is not None else f"the reference sheet of {what!r}"
        tokens_in = tokens_out = 0
        problem = ""
        for attempt in range(1, IMAGE_ATTEMPTS + 1):
            response = self._call(
                lambda: client.models.generate_content(model=model, contents=contents, config=config),
                stage=stage,
                scene=frame,
            )
            i, o = _token_usage(response)
            tokens_in, tokens_out = tokens_in + i, tokens_out + o
            found = _first_image(response)
            if found is None:
                problem = _why_no_image(response)
            else:
                try:
                    png, (width, height) = to_png(found[0])
                except ValueError as exc:
                    problem = f"{found[1]} {exc}"
                else:
                    mismatch = aspect_ratio_error(width, height, aspect_ratio)
                    if mismatch is None:
                        usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out, images=1)
                        return png, priced(self.settings, model, usage)
                    problem = mismatch
            log.warning("%s %s: attempt %d/%d unusable: %s", stage, subject, attempt, IMAGE_ATTEMPTS, problem)
            if attempt < IMAGE_ATTEMPTS:
                time.sleep(min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** (attempt - 1)))
        fix = "try rephrasing the scene's frame prompt" if frame is not None else "try rephrasing the character's appearance"
        raise ProviderError(
            stage,
            f"no image returned for {subject} by {model} after {IMAGE_ATTEMPTS} attempts ({problem}); {fix}",
            scene=frame,
        )


# --- clips ---------------------------------------------------------------------------------


def _gcs_parts(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise ValueError(f"not a gs:// object URI: {uri!r}")
    bucket, _, obj = uri[5:].partition("/")
    if not bucket or not obj:
        raise ValueError(f"not a gs:// object URI: {uri!r}")
    return bucket, obj


def video_decode_error(data: bytes) -> str | None:
    """None when ``data`` is a video whose first frame decodes, else why not."""
    import av

    from vidpipe_core.media import probe_bytes

    try:
        info = probe_bytes(data, name="clip")
        if not info.video_codec or not info.width:
            return "not a decodable video (no video stream)"
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                return "not a decodable video (no video stream)"
            for _ in container.decode(video=0):
                return None
            return "not a decodable video (no frames)"
    except Exception as exc:
        return f"not a decodable video ({type(exc).__name__}: {exc})"


def operation_ref(operation_name: str, model: str) -> str:
    """A full operation name the SDK can poll on Vertex.

    ``operations.get`` derives the ``:fetchPredictOperation`` resource (the model path)
    from the name with ``rpartition('/operations/')``; a bare id would post to
    ``/:fetchPredictOperation``. Vertex returns full names
    (``projects/../publishers/google/models/<model>/operations/<id>``); short ones are
    completed with the model.
    """
    if "/operations/" in operation_name:
        return operation_name
    tail = operation_name if operation_name.startswith("operations/") else f"operations/{operation_name}"
    return f"publishers/google/models/{model}/{tail}"


class GoogleClips(_GoogleStage):
    """Veo clips (first + last frame) through generate_videos on Vertex AI."""

    def model_for(self, spec: ProjectSpec) -> str:
        return self.settings.video_fast_model if spec.fast else self.settings.video_model

    def allowed_durations(self, spec: ProjectSpec) -> tuple[int, ...]:
        return tuple(self.settings.video_durations)

    def validate_clip_spec(self, spec: ProjectSpec) -> None:
        """Refuse what Veo would refuse, before anything is spent."""
        self._check(spec.clip_duration, spec.aspect_ratio, self.model_for(spec))

    def _check(self, duration: int, aspect_ratio: str, model: str) -> None:
        allowed = tuple(self.settings.video_durations)
        if duration not in allowed:
            raise InvalidInput(
                "clip_duration",
                f"{duration} s is not a clip length {model} accepts",
                allowed=", ".join(str(d) for d in allowed),
            )
        if aspect_ratio not in ASPECT_RATIOS:
            raise InvalidInput("aspect_ratio", f"{aspect_ratio!r} is not supported by {model}", allowed=", ".join(ASPECT_RATIOS))

    def submit(self, request: ClipRequest, model: str, cancel: CancelToken = NEVER) -> str:
        from google.genai import types

        self._check(request.duration_s, request.aspect_ratio, model)
        client = self.client.vertex()
        source = types.GenerateVideosSource(
            prompt=request.prompt,
            image=types.Image(image_bytes=request.start_png, mime_type="image/png"),
        )
        config = types.GenerateVideosConfig(
            last_frame=types.Image(image_bytes=request.end_png, mime_type="image/png"),
            duration_seconds=request.duration_s,
            aspect_ratio=request.aspect_ratio,
            generate_audio=request.generate_audio,
            negative_prompt=request.negative_prompt or None,
            seed=request.seed,
            number_of_videos=1,
        )
        operation = self._call(
            lambda: client.models.generate_videos(model=model, source=source, config=config),
            stage="clips",
            scene=request.scene_index,
            cancel=cancel,
        )
        if not operation.name:
            detail = f": {_operation_error(operation.error)}" if operation.error else ""
            raise ProviderError("clips", f"{model} returned no operation name{detail}", scene=request.scene_index)
        log.info("clips scene %d: submitted %s", request.scene_index + 1, operation.name)
        return operation.name

    def wait(
        self,
        operation: str,
        request: ClipRequest,
        model: str,
        on_poll: PollCallback | None = None,
        cancel: CancelToken = NEVER,
        schedule: PollSchedule | None = None,
    ) -> ClipOutcome:
        """Poll ``operation`` (by name alone: re-attaches after a crash) until it finishes.

        Without ``schedule``: at once, then after ``poll_initial_s`` doubling up to ``poll_max_s``.
        With one (learned from the ledger, vidpipe_core.polling): first when the schedule says,
        counted from the operation's submission (at once for one submitted long ago), then every
        ``schedule.interval_s``. Either way no poll comes later than ``poll_timeout_s`` after the
        wait began, and the wait ends within half a second of ``cancel``. The outcome carries what
        the polls saw (``observed``: when it was last seen running and first seen done)."""
        from google.genai import types

        client = self.client.vertex()
        scene = request.scene_index
        s = self.settings
        ref = types.GenerateVideosOperation.model_validate({"name": operation_ref(operation, model)})
        started = time.monotonic()
        if schedule is None:
            delays: Iterator[float] = _backoff(s.poll_initial_s, s.poll_max_s)
        else:
            self._first_wait(schedule, min(schedule.first_wait_s(), s.poll_timeout_s), scene, on_poll, cancel)
            delays = itertools.repeat(min(schedule.interval_s, s.poll_max_s))
        polls = 0
        running_seen_at: datetime | None = None  # when the last poll that found it running was sent
        while True:
            asked_at = utcnow()
            current = self._call(lambda: client.operations.get(ref), stage="clips", scene=scene, cancel=cancel)
            seen_at = utcnow()
            polls += 1
            elapsed = time.monotonic() - started
            if current.done:
                log.info("clips scene %d: %s finished after %d polls (%.1fs)", scene + 1, operation, polls, elapsed)
                observed = PollObservation(running_seen_at, asked_at, seen_at)
                return replace(self._outcome(current, request, model, cancel), observed=observed)
            running_seen_at = asked_at
            delay = next(delays)
            if elapsed + delay > s.poll_timeout_s:
                raise ProviderError(
                    "clips",
                    f"operation {operation} did not finish within {s.poll_timeout_s:g} s; it may still "
                    "complete: re-run to re-attach to it without paying again",
                    scene=scene,
                )
            line = f"video operation running ({elapsed:.0f}s elapsed, poll {polls})"
            log.debug("clips scene %d: %s", scene + 1, line)
            if on_poll is not None:
                on_poll(line)
            cancel.sleep(delay)

    def _first_wait(
        self, schedule: PollSchedule, seconds: float, scene: int, on_poll: PollCallback | None, cancel: CancelToken
    ) -> None:
        """Sleep until the learned first poll without calling the API, with a progress line at the
        start and every ``poll_max_s`` (as often as the backoff's lines), cancellable throughout."""
        if seconds <= 0:
            return
        log.debug("clips scene %d: %s", scene + 1, schedule.describe())
        every = max(self.settings.poll_max_s, 0.05)
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            if on_poll is not None:
                on_poll(f"video operation running; first poll in {remaining:.0f}s ({schedule.basis()})")
            cancel.sleep(min(every, remaining))

    def _outcome(self, operation: Any, request: ClipRequest, model: str, cancel: CancelToken = NEVER) -> ClipOutcome:
        scene = request.scene_index
        if operation.error:
            return ClipOutcome(ClipOutcomeKind.FAILED, error=f"video operation failed: {_operation_error(operation.error)}")
        response = operation.response or operation.result
        videos = [v.video for v in (getattr(response, "generated_videos", None) or []) if v.video is not None]
        filtered = getattr(response, "rai_media_filtered_count", None) or 0
        reasons = [redact(r) for r in (getattr(response, "rai_media_filtered_reasons", None) or [])]
        if filtered > 0 or (not videos and reasons):
            return ClipOutcome(
                ClipOutcomeKind.REJECTED, reasons=reasons or ["filtered by the provider's safety policy (no reason given)"]
            )
        if not videos:
            return ClipOutcome(ClipOutcomeKind.FAILED, error="video operation finished without a video or a reason")
        video = videos[0]
        if video.video_bytes:
            data = video.video_bytes
        elif video.uri:
            data = self._download(video.uri, scene, cancel)
        else:
            return ClipOutcome(ClipOutcomeKind.FAILED, error="video operation returned a video with neither bytes nor a URI")
        problem = video_decode_error(data)
        if problem is not None:
            return ClipOutcome(ClipOutcomeKind.FAILED, error=f"the returned clip is {problem} ({len(data)} bytes)")
        usage = priced(self.settings, model, Usage(video_seconds=float(request.duration_s)), audio=request.generate_audio)
        return ClipOutcome(ClipOutcomeKind.DONE, video=data, usage=usage)

    def _download(self, uri: str, scene: int, cancel: CancelToken = NEVER) -> bytes:
        import httpx2

        try:
            bucket, obj = _gcs_parts(uri)
        except ValueError as exc:
            raise ProviderError("clips", f"cannot download the clip: {exc}", scene=scene) from exc
        url = f"{self.settings.gcs_base_url.rstrip('/')}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(obj, safe='')}"

        def fetch() -> bytes:
            headers = self.client.download_headers()
            with httpx2.Client(timeout=DOWNLOAD_TIMEOUT_S, follow_redirects=True) as http:
                response = http.get(url, params={"alt": "media"}, headers=headers)
                response.raise_for_status()
                return response.content

        def describe(exc: BaseException) -> str:
            status = status_of(exc)
            cause = f"HTTP {status}" if status is not None else _describe(exc)
            return f"downloading {uri} failed: {cause}"

        return self._call(fetch, stage="clips", scene=scene, describe=describe, cancel=cancel)


def _backoff(initial_s: float, max_s: float) -> Iterator[float]:
    """The waits between polls without a learned schedule: ``initial_s``, doubling up to ``max_s``."""
    delay = initial_s
    while True:
        yield delay
        delay = min(delay * 2, max_s)


def _operation_error(error: Any) -> str:
    if isinstance(error, Mapping):
        code, message = error.get("code"), error.get("message")
        text = f"{code}: {message}" if code is not None else str(message or error)
    else:
        text = str(error)
    return redact(text)


# --- bundle --------------------------------------------------------------------------------


class GoogleProvider:
    """The three google stage providers on one shared client."""

    name = NAME

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        shared = _holder(client)
        self.storyboard = GoogleStoryboard(settings, shared)
        self.keyframes = GoogleKeyframes(settings, shared)
        self.clips = GoogleClips(settings, shared)

    def for_stage(self, stage: str) -> GoogleStoryboard | GoogleKeyframes | GoogleClips:
        stages: dict[str, GoogleStoryboard | GoogleKeyframes | GoogleClips] = {
            "storyboard": self.storyboard,
            "keyframes": self.keyframes,
            "clips": self.clips,
        }
        try:
            return stages[stage]
        except KeyError:
            raise ValueError(f"unknown stage {stage!r}; expected storyboard, keyframes or clips") from None


__all__ = [
    "GoogleClient",
    "GoogleClips",
    "GoogleKeyframes",
    "GoogleProvider",
    "GoogleStoryboard",
    "aspect_ratio_error",
    "google_credentials_status",
    "operation_ref",
    "redact",
    "video_decode_error",
]
