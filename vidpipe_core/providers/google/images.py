"""The google keyframes and reference sheets: a Gemini image model (generate_content with IMAGE
output), which images one request may carry, the prompts, and the checks of the image returned
(decodes, within the aspect-ratio tolerance)."""

from __future__ import annotations

import io
from typing import Any

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.config import ASPECT_RATIOS
from vidpipe_core.cost import priced
from vidpipe_core.errors import InvalidInput, ProviderError
from vidpipe_core.providers.base import CharacterSheet, DecodedImage, KeyframeRequest, SheetRequest, Usage, variant_seed
from vidpipe_core.providers.google.client import _GoogleStage, _response_text, _token_usage, log
from vidpipe_core.retry import backoff_sleep
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.steps import CHARACTERS, KEYFRAMES
from vidpipe_core.userfiles import image_mime

IMAGE_ATTEMPTS = 3  # responses without an image part
ASPECT_TOLERANCE = 0.02


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


def to_png(data: bytes) -> DecodedImage:
    """Decode an image in full (the one decode of a frame or sheet: the steps record the size it
    found), re-encode it as PNG if it is another format. Raises ValueError if it does not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            size = img.size
            if img.format == "PNG":
                return DecodedImage(data, size)
            if img.mode not in ("RGB", "RGBA", "L", "LA"):
                img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
            out = io.BytesIO()
            img.save(out, format="PNG")
            return DecodedImage(out.getvalue(), size)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"image does not decode ({exc})") from exc


class GoogleKeyframes(_GoogleStage):
    """Keyframes from a Gemini image model (generate_content with IMAGE output)."""

    chains_on_reference = True  # each frame is drawn on the one before: a new frame changes every later one

    def model_for(self, spec: ProjectSpec) -> str:
        return self.settings.image_model

    def expected_size(self, aspect_ratio: str) -> tuple[int, int] | None:
        return None  # the model picks the resolution; only the aspect ratio is known

    def render(self, request: KeyframeRequest, cancel: CancelToken = NEVER) -> tuple[DecodedImage, Usage]:
        """One frame from ONE generate_content request whose image parts are the sheets of the
        frame's characters, then the previous frame (within `max_input_images`); the waits
        between attempts end when ``cancel`` is cancelled."""
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
        # A sheet may be the person's own JPEG or WebP image, sent as given.
        contents: list[Any] = [types.Part.from_bytes(data=png, mime_type=image_mime(png)) for png in images]
        contents.append(types.Part.from_text(text=keyframe_prompt(request, sheets)))
        return self._image(
            model,
            contents,
            request.aspect_ratio,
            stage=KEYFRAMES,
            index=request.frame_index,
            seed=variant_seed(request.variant),
            cancel=cancel,
        )

    def render_sheet(self, request: SheetRequest, cancel: CancelToken = NEVER) -> tuple[DecodedImage, Usage]:
        """A character's reference sheet: one image request, text only."""
        from google.genai import types

        _ratio(request.aspect_ratio)
        model = self.settings.image_model
        contents: list[Any] = [types.Part.from_text(text=sheet_prompt(request))]
        return self._image(
            model,
            contents,
            request.aspect_ratio,
            stage=CHARACTERS,
            index=None,
            what=request.name,
            seed=variant_seed(request.variant),
            cancel=cancel,
        )

    def _image(
        self,
        model: str,
        contents: list[Any],
        aspect_ratio: str,
        *,
        stage: str,
        index: int | None,
        what: str = "",
        seed: int | None = None,
        cancel: CancelToken = NEVER,
    ) -> tuple[DecodedImage, Usage]:
        """One image from ``contents``, decoded in full, retrying responses without a usable image
        (none, one that does not decode, or of another aspect ratio). ``seed``: a retake's (the
        same prompt, a new rendition); None sends none, as before retakes."""
        from google.genai import types

        client = self.client.get()
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect_ratio),
            seed=seed,
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
                cancel=cancel,
            )
            i, o = _token_usage(response)
            tokens_in, tokens_out = tokens_in + i, tokens_out + o
            found = _first_image(response)
            if found is None:
                problem = _why_no_image(response)
            else:
                try:
                    image = to_png(found[0])
                except ValueError as exc:
                    problem = f"{found[1]} {exc}"
                else:
                    mismatch = aspect_ratio_error(*image.size, aspect_ratio)
                    if mismatch is None:
                        usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out, images=1)
                        return image, priced(self.settings, model, usage)
                    problem = mismatch
            log.warning("%s %s: attempt %d/%d unusable: %s", stage, subject, attempt, IMAGE_ATTEMPTS, problem)
            if attempt < IMAGE_ATTEMPTS:
                backoff_sleep(min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** (attempt - 1)), cancel)
        fix = "try rephrasing the scene's frame prompt" if frame is not None else "try rephrasing the character's appearance"
        raise ProviderError(
            stage,
            f"no image returned for {subject} by {model} after {IMAGE_ATTEMPTS} attempts ({problem}); {fix}",
            scene=frame,
        )
