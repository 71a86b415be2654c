"""Wire-format helpers: URL routing, request field extraction, error bodies.

Shapes confirmed against google-genai 3.6.1 (see ``vidpipe_emulator/README.md``):

* express mode (``vertexai`` + API key, custom base URL):
  ``POST {base}/v1beta1/publishers/google/models/{model}:{method}``
* project mode: ``POST {base}/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}``
* ``operations.get`` on Vertex: ``POST {base}/v1beta1/{operation name up to /operations/}:fetchPredictOperation``
  with body ``{"operationName": name}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: ``.../models/{model}:{method}`` with any API-version / project prefix.
MODEL_METHOD_RE = re.compile(r"^/(?:[^?]*/)?models/(?P<model>[^/:?]+):(?P<method>[A-Za-z]+)$")
#: Standard LRO GET: ``.../operations/{id}``.
OPERATION_GET_RE = re.compile(r"^/(?:[^?]*/)?operations/(?P<op_id>[^/:?]+)$")
#: GCS JSON API object GET (metadata or ``alt=media``).
GCS_OBJECT_RE = re.compile(r"^/(?:download/)?storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>.+)$")

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_DEFAULT_MESSAGES = {
    401: "Request is missing required authentication credential. Expected OAuth 2 access token or API key.",
    429: "Resource exhausted. Please try again later. (vidpipe-emulator injected fault)",
    500: "Internal error encountered. (vidpipe-emulator injected fault)",
    503: "The service is currently unavailable. (vidpipe-emulator injected fault)",
}


@dataclass
class Reply:
    """An HTTP answer: JSON (``body``) or raw bytes (``raw``)."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


def status_name(code: int) -> str:
    return _STATUS_NAMES.get(code, "UNKNOWN")


def error_reply(code: int, message: str | None = None) -> Reply:
    """A Google-style error: ``{"error": {"code", "message", "status"}}``."""
    return Reply(
        status=code,
        body={
            "error": {
                "code": code,
                "message": message or _DEFAULT_MESSAGES.get(code, status_name(code)),
                "status": status_name(code),
            }
        },
    )


class BadRequest(Exception):
    """Raised while parsing a request; becomes a 400 INVALID_ARGUMENT."""


def b64decode(value: Any, what: str) -> bytes:
    """Decode standard *or* URL-safe base64, padded or not.

    The SDK serialises ``Part.inline_data.data`` through pydantic, which emits
    URL-safe base64 (``-``/``_``); ``Image.image_bytes`` uses the standard
    alphabet.  Google's endpoints accept both, so must we.
    """
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a base64 string")
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{what} is not valid base64") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _get(mapping: Mapping[str, Any], *names: str) -> Any:
    """First present key among camelCase / snake_case spellings."""
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


@dataclass
class ContentRequest:
    """The parts of a ``generateContent`` body the emulator cares about."""

    prompt: str
    instruction: str
    images: list[bytes]
    generation_config: dict[str, Any]

    @property
    def wants_image(self) -> bool:
        modalities = self.generation_config.get("responseModalities") or []
        return any(str(m).upper() == "IMAGE" for m in modalities)

    @property
    def wants_audio(self) -> bool:
        modalities = self.generation_config.get("responseModalities") or []
        return any(str(m).upper() == "AUDIO" for m in modalities)

    @property
    def voice(self) -> str | None:
        """The prebuilt voice asked for (google-genai 3.x sends ``voice_name`` in snake case inside
        ``prebuiltVoiceConfig``; protobuf JSON takes either spelling, and so does the emulator)."""
        node: Any = self.generation_config
        for names in (
            ("speechConfig", "speech_config"),
            ("voiceConfig", "voice_config"),
            ("prebuiltVoiceConfig", "prebuilt_voice_config"),
        ):
            node = _get(node, *names) if isinstance(node, Mapping) else None
        name = _get(node, "voiceName", "voice_name") if isinstance(node, Mapping) else None
        return name if isinstance(name, str) else None

    @property
    def response_mime_type(self) -> str:
        return str(self.generation_config.get("responseMimeType") or "text/plain")

    @property
    def aspect_ratio(self) -> str | None:
        image_config = self.generation_config.get("imageConfig") or {}
        return image_config.get("aspectRatio")

    def schema(self) -> tuple[str, Mapping[str, Any]] | None:
        cfg = self.generation_config
        if cfg.get("responseJsonSchema"):
            return "json_schema", cfg["responseJsonSchema"]
        if cfg.get("responseSchema"):
            return "schema", cfg["responseSchema"]
        return None


def _text_and_images(contents: Any) -> tuple[list[str], list[bytes]]:
    texts: list[str] = []
    images: list[bytes] = []
    if isinstance(contents, Mapping):
        contents = [contents]
    for content in contents or []:
        for part in (content or {}).get("parts") or []:
            if not isinstance(part, Mapping):
                continue
            if isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
            inline = _get(part, "inlineData", "inline_data")
            if isinstance(inline, Mapping):
                mime = str(_get(inline, "mimeType", "mime_type") or "")
                data = b64decode(inline.get("data"), "inlineData.data")
                if mime.startswith("image/") or not mime:
                    images.append(data)
    return texts, images


def parse_content_request(body: Mapping[str, Any]) -> ContentRequest:
    if not isinstance(body.get("contents"), (list, Mapping)):
        raise BadRequest("contents is required")
    texts, images = _text_and_images(body.get("contents"))
    sys_texts, _ = _text_and_images(_get(body, "systemInstruction", "system_instruction") or [])
    config = _get(body, "generationConfig", "generation_config") or {}
    if not isinstance(config, Mapping):
        raise BadRequest("generationConfig must be an object")
    return ContentRequest(
        prompt="\n".join(texts),
        instruction="\n".join(sys_texts),
        images=images,
        generation_config=dict(config),
    )


@dataclass
class VideoRequest:
    """The parts of a Veo ``predictLongRunning`` body the emulator uses."""

    prompt: str
    image: bytes | None
    last_frame: bytes | None
    reference_images: list[bytes]
    parameters: dict[str, Any]

    @property
    def all_images(self) -> list[bytes]:
        out = [img for img in (self.image, self.last_frame) if img is not None]
        return out + self.reference_images


def _instance_image(instance: Mapping[str, Any], key: str) -> bytes | None:
    image = instance.get(key)
    if image is None:
        return None
    if not isinstance(image, Mapping):
        raise BadRequest(f"instances[0].{key} must be an object")
    encoded = _get(image, "bytesBase64Encoded", "bytes_base64_encoded")
    if encoded is None:
        if image.get("gcsUri"):
            raise BadRequest(f"instances[0].{key}.gcsUri is not supported by the emulator")
        raise BadRequest(f"instances[0].{key}.bytesBase64Encoded is required")
    return b64decode(encoded, f"instances[0].{key}.bytesBase64Encoded")


def parse_video_request(body: Mapping[str, Any]) -> VideoRequest:
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances or not isinstance(instances[0], Mapping):
        raise BadRequest("instances[0] is required")
    instance = instances[0]
    refs: list[bytes] = []
    for ref in instance.get("referenceImages") or []:
        img = ref.get("image") if isinstance(ref, Mapping) else None
        if isinstance(img, Mapping) and img.get("bytesBase64Encoded"):
            refs.append(b64decode(img["bytesBase64Encoded"], "referenceImages[].image"))
    prompt = instance.get("prompt") or ""
    if not isinstance(prompt, str):
        raise BadRequest("instances[0].prompt must be a string")
    params = body.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise BadRequest("parameters must be an object")
    return VideoRequest(
        prompt=prompt,
        image=_instance_image(instance, "image"),
        last_frame=_instance_image(instance, "lastFrame"),
        reference_images=refs,
        parameters=dict(params),
    )
