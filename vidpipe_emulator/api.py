"""Endpoint behaviour: generateContent, Veo submit/poll and the fake GCS.

The HTTP layer (``handler.py``) has already done auth, latency and transport
faults by the time these functions run; they only build replies and update
state.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from . import media
from .config import Faults, Settings
from .media import VideoSpec
from .schema import generate_from_schema
from .state import Operation, RequestRecord
from .videos import completed
from .wire import (
    BadRequest,
    Reply,
    error_reply,
    parse_content_request,
    parse_video_request,
    sha256_hex,
)

if TYPE_CHECKING:
    from .images import ImageFactory
    from .state import EmulatorState
    from .videos import VideoFactory

VIDEO_RESPONSE_TYPE = "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
DEFAULT_DURATION_S = 8.0
MAX_SAMPLES = 4
_PATH_KEYS = ("projects", "locations")


def content_kind(body: Mapping[str, Any]) -> str:
    """``"image"`` when IMAGE is among the response modalities, ``"speech"`` when AUDIO is (text to
    speech), else ``"text"``."""
    config = body.get("generationConfig") or body.get("generation_config") or {}
    modalities = {str(m).upper() for m in (config.get("responseModalities") or [])} if isinstance(config, Mapping) else set()
    return "image" if "IMAGE" in modalities else "speech" if "AUDIO" in modalities else "text"


def _snippet(text: str, limit: int = 120) -> str:
    return " ".join(text.split())[:limit]


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _matches(word: str | None, text: str) -> bool:
    """Case-insensitive containment; an unset/empty word never matches."""
    return bool(word) and str(word).lower() in text.lower()


def _project_location(path: str) -> tuple[str, str]:
    """Project/location from a project-mode path, or emulator defaults."""
    parts = path.strip("/").split("/")
    found = {k: parts[i + 1] for i, k in enumerate(parts[:-1]) if k in _PATH_KEYS}
    return found.get("projects", "vidpipe-emulator"), found.get("locations", "us-central1")


def describe(kind: str, model: str | None, body: Mapping[str, Any], path: str) -> RequestRecord:
    """Best-effort request log entry (never raises, never sees headers)."""
    prompt: str | None = None
    images: list[str] = []
    config: dict[str, Any] = {}
    operation: str | None = None
    parts = 0
    try:
        if kind in ("text", "image", "speech"):
            req = parse_content_request(body)
            prompt, config = req.prompt, req.generation_config
            images = [sha256_hex(i) for i in req.images]
            parts = len(req.images)
        elif kind == "video_submit":
            vreq = parse_video_request(body)
            prompt, config = vreq.prompt, vreq.parameters
            images = [sha256_hex(i) for i in vreq.all_images]
        elif kind == "video_poll":
            operation = str(body.get("operationName") or "") or None
    except (BadRequest, AttributeError, TypeError):
        pass
    return RequestRecord(
        kind=kind,
        model=model,
        prompt=prompt,
        image_sha256=images,
        config=config,
        timestamp=time.time(),
        path=path,
        operation=operation,
        image_parts=parts,
    )


STRAY_CHARACTER = "Stranger (not in the style guide)"


def cast_characters(value: Any, stray: bool = False) -> Any:
    """In a storyboard-shaped answer (``style_guide.characters`` and ``scenes[].characters``), make
    every scene name characters of the style guide: scene i shows character j when i + j is even
    (so scene 1 shows the first and third, scene 2 the second, ...). ``stray`` makes the last scene
    also name one the style guide does not describe. Anything else is returned as it is."""
    if not isinstance(value, dict):
        return value
    guide, scenes = value.get("style_guide"), value.get("scenes")
    if not isinstance(guide, dict) or not isinstance(scenes, list):
        return value
    names = [c["name"] for c in guide.get("characters") or [] if isinstance(c, dict) and isinstance(c.get("name"), str)]
    for i, scene in enumerate(scenes):
        if isinstance(scene, dict) and "characters" in scene:
            scene["characters"] = [name for j, name in enumerate(names) if (i + j) % 2 == 0]
    if stray and scenes and isinstance(scenes[-1], dict):
        scenes[-1]["characters"] = [*scenes[-1].get("characters", []), STRAY_CHARACTER]
    return value


_WORD_LIMIT = re.compile(r"at most (\d+) words", re.I)
DEFAULT_NARRATION_WORDS = 8


def fit_narration(value: Any, prompt: str) -> Any:
    """In a storyboard-shaped answer, keep each scene's ``narration`` to the words the prompt allows
    ("at most N words"; else a few), as a model following the instruction would: its first words, whole."""
    if not _is_storyboard(value):
        return value
    found = _WORD_LIMIT.search(prompt)
    limit = int(found.group(1)) if found else DEFAULT_NARRATION_WORDS
    for scene in value["scenes"]:
        if isinstance(scene, dict) and isinstance(scene.get("narration"), str):
            scene["narration"] = " ".join(scene["narration"].split()[:limit])
    return value


def _is_storyboard(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("style_guide"), dict) and isinstance(value.get("scenes"), list)


class ApiHost(Protocol):
    """What the endpoints use of the emulator (``server.Emulator`` meets it): its settings,
    faults, state, video and image factories. Through it, this module imports no ``server``."""

    @property
    def settings(self) -> Settings: ...
    @property
    def faults(self) -> Faults: ...
    @property
    def state(self) -> EmulatorState: ...
    @property
    def videos(self) -> VideoFactory: ...
    @property
    def images(self) -> ImageFactory: ...


class Api:
    """Business logic of the emulated endpoints."""

    def __init__(self, emulator: ApiHost) -> None:
        self._emu = emulator

    # -- generateContent -------------------------------------------------------
    def generate_content(self, model: str, body: Mapping[str, Any]) -> Reply:
        req = parse_content_request(body)
        settings = self._emu.settings
        state = self._emu.state
        prompt_tokens = _tokens(req.instruction + req.prompt) + 258 * len(req.images)
        if req.wants_audio and not req.wants_image:
            return self._speech(model, req.prompt, req.voice, prompt_tokens)
        if req.wants_image:
            if state.take_empty_image():
                parts: list[dict[str, Any]] = [{"text": "I'm unable to generate an image for this request right now."}]
                out_tokens = 14
            else:
                # The previous frame comes last (after any reference sheets): continuity.
                ref = req.images[-1] if req.images else None
                # The other images (reference sheets) condition the picture too, and a seed (a
                # retake) asks for another rendition of the same prompt.
                prompt = req.prompt
                if len(req.images) > 1:
                    prompt += "\n\nreferences " + " ".join(hashlib.sha256(i).hexdigest()[:16] for i in req.images[:-1])
                seed = req.generation_config.get("seed")
                if seed is not None:
                    prompt += f"\n\nseed {seed}"
                png = self._emu.images.png(prompt, settings.image_height, req.aspect_ratio, ref)
                parts = [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}]
                out_tokens = 1290
        else:
            text = self._text_answer(req.prompt, req.instruction, req.response_mime_type, req.schema())
            parts = [{"text": text}]
            out_tokens = _tokens(text)
        return Reply(
            body={
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": out_tokens,
                    "totalTokenCount": prompt_tokens + out_tokens,
                },
                "modelVersion": model,
            }
        )

    def _speech(self, model: str, text: str, voice: str | None, prompt_tokens: int) -> Reply:
        """Text to speech as Gemini answers it: raw 16-bit mono PCM at 24 kHz (``audio/L16;codec=pcm;
        rate=24000``), as long as the words take at ``speech_words_per_s``, and its audio tokens
        (25 a second) in the usage metadata."""
        if not text.strip():
            raise BadRequest("text to speech needs text to say")
        seconds = len(text.split()) / self._emu.settings.speech_words_per_s
        pcm = media.speech_pcm(text, voice or "", seconds, media.SPEECH_RATE)
        audio_tokens = round(seconds * 25)
        part = {
            "inlineData": {"mimeType": f"audio/L16;codec=pcm;rate={media.SPEECH_RATE}", "data": base64.b64encode(pcm).decode()}
        }
        return Reply(
            body={
                "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": audio_tokens,
                    "totalTokenCount": prompt_tokens + audio_tokens,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
                    "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": audio_tokens}],
                },
                "modelVersion": model,
            }
        )

    def _text_answer(self, prompt: str, instruction: str, mime: str, schema: tuple[str, Mapping[str, Any]] | None) -> str:
        if not mime.lower().startswith("application/json"):
            return f"Emulated answer: {_snippet(prompt) or 'empty prompt'}"
        if schema is not None:
            try:
                value = generate_from_schema(schema[1], prompt, scene_text=f"{instruction}\n{prompt}")
            except (KeyError, ValueError, TypeError) as exc:
                raise BadRequest(f"unsupported response schema: {exc}") from exc
            value = fit_narration(cast_characters(value), prompt)
            if _is_storyboard(value) and self._emu.state.take_stray_character():
                value = cast_characters(value, stray=True)
        else:
            value = {"text": _snippet(prompt) or "emulated"}
        text = json.dumps(value, ensure_ascii=False)
        if self._emu.state.take_malformed_json():
            text = text[: max(1, len(text) // 2)]  # unbalanced, hence invalid JSON
        return text

    # -- Veo ---------------------------------------------------------------------
    def submit_video(self, model: str, body: Mapping[str, Any], path: str) -> Reply:
        req = parse_video_request(body)
        settings, faults = self._emu.settings, self._emu.faults
        params = req.parameters
        try:
            duration = float(params.get("durationSeconds", DEFAULT_DURATION_S))
        except (TypeError, ValueError) as exc:
            raise BadRequest("durationSeconds must be a number") from exc
        if not 0 < duration <= 60:
            raise BadRequest(f"durationSeconds out of range: {duration}")
        aspect = params.get("aspectRatio") or media.DEFAULT_VIDEO_ASPECT
        media.parse_aspect_ratio(aspect, media.DEFAULT_VIDEO_ASPECT)
        for image in req.all_images:
            self._emu.images.check_decodes(image)  # 400 early for undecodable inputs
        samples = max(1, min(MAX_SAMPLES, int(params.get("sampleCount") or 1)))

        outcome, word = self._outcome(req.prompt, faults)
        spec = VideoSpec(
            prompt=req.prompt,
            first_image=req.image,
            last_image=req.last_frame,
            duration_s=duration,
            aspect=aspect,
            height=settings.video_height,
            fps=settings.fps,
            audio=bool(params.get("generateAudio", False)),
        )
        video = None
        if outcome == "ok":
            video = self._emu.videos.render(spec)
        elif outcome == "corrupt":
            video = completed(media.corrupt_bytes(spec.cache_key()))

        op_id = str(uuid.uuid4())
        project, location = _project_location(path)
        name = f"projects/{project}/locations/{location}/publishers/google/models/{model}/operations/{op_id}"
        gcs_uri = self._publish(op_id, params.get("storageUri"), settings, video)
        self._emu.state.add_operation(
            Operation(
                op_id=op_id,
                name=name,
                model=model,
                prompt=req.prompt,
                submitted_at=time.monotonic(),
                latency_s=self._emu.state.draw_latency(settings.video_latency_s, settings.video_latency_jitter_s),
                outcome=outcome,
                sample_count=samples,
                video=video,
                gcs_uri=gcs_uri,
                matched_word=word,
                submitted_wall=time.time(),
            )
        )
        return Reply(body={"name": name})

    @staticmethod
    def _outcome(prompt: str, faults: Faults) -> tuple[str, str | None]:
        for outcome, word in (
            ("never", faults.never_finish_word),
            ("error", faults.error_word),
            ("safety", faults.safety_word),
            ("corrupt", faults.corrupt_word),
        ):
            if _matches(word, prompt):
                return outcome, word
        return ("corrupt", None) if faults.corrupt_video else ("ok", None)

    def _publish(self, op_id: str, storage_uri: Any, settings: Settings, video: Any) -> str | None:
        """Register the clip in fake GCS when it is delivered by URI."""
        if isinstance(storage_uri, str) and storage_uri.startswith("gs://"):
            bucket, _, prefix = storage_uri[len("gs://") :].partition("/")
            obj = f"{prefix.strip('/')}/{op_id}/sample_0.mp4".lstrip("/")
        elif settings.video_delivery == "uri":
            bucket, obj = settings.bucket, f"{op_id}.mp4"
        else:
            return None
        if video is not None:
            self._emu.state.put_object(bucket, obj, video)
        return f"gs://{bucket}/{obj}"

    def poll_video(self, operation_name: Any) -> Reply:
        if not isinstance(operation_name, str) or not operation_name:
            return error_reply(400, "operationName is required")
        op_id = operation_name.rsplit("/operations/", 1)[-1]
        state = self._emu.state
        op = state.get_operation(op_id)
        if op is None:
            return error_reply(404, f"Operation {operation_name} not found.")
        if not op.is_done(time.monotonic()):
            state.mark_polled(op, done=False)
            return Reply(body={"name": op.name, "done": False})
        seen_at = time.time()  # before the answer waits for the clip's encode
        body = self._done_body(op)
        state.mark_polled(op, done=True, seen_at=seen_at)
        return Reply(body=body)

    def _done_body(self, op: Operation) -> dict[str, Any]:
        base: dict[str, Any] = {"name": op.name, "done": True}
        if op.outcome == "error":
            base["error"] = {
                "code": 13,
                "message": f"Video generation failed: internal error while rendering "
                f"(prompt contained {op.matched_word!r}; vidpipe-emulator injected fault).",
            }
            return base
        if op.outcome == "safety":
            base["response"] = {
                "@type": VIDEO_RESPONSE_TYPE,
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": [
                    f"The prompt contains the word {op.matched_word!r}, which violates the "
                    "usage guidelines; no video was generated. (vidpipe-emulator safety filter)"
                ],
            }
            return base
        assert op.video is not None
        try:
            data = op.video.result(timeout=600)
        except Exception as exc:  # encode failure -> an operation error, like Veo
            base["error"] = {"code": 13, "message": f"Video rendering failed: {exc}"}
            return base
        if op.gcs_uri is not None:
            videos = [{"gcsUri": op.gcs_uri, "mimeType": "video/mp4"}] * op.sample_count
        else:
            encoded = base64.b64encode(data).decode()
            videos = [{"bytesBase64Encoded": encoded, "mimeType": "video/mp4"}] * op.sample_count
        base["response"] = {"@type": VIDEO_RESPONSE_TYPE, "raiMediaFilteredCount": 0, "videos": videos}
        return base

    # -- fake GCS ------------------------------------------------------------------
    def download(self, bucket: str, obj: str, alt: str | None) -> Reply:
        future = self._emu.state.get_object(bucket, obj)
        if future is None:
            return error_reply(404, f"No such object: {bucket}/{obj}")
        data = future.result(timeout=600)
        if alt != "media":
            link = f"/download/storage/v1/b/{bucket}/o/{quote(obj, safe='')}?alt=media"
            return Reply(
                body={
                    "kind": "storage#object",
                    "bucket": bucket,
                    "name": obj,
                    "size": str(len(data)),
                    "contentType": "video/mp4",
                    "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
                    "mediaLink": link,
                }
            )
        self._emu.state.count_download()
        return Reply(raw=data, content_type="video/mp4")
