"""The google narrator: Gemini text to speech (generate_content with AUDIO output and a prebuilt
voice). The answer is raw PCM (``audio/L16;codec=pcm;rate=24000``: 16-bit little-endian mono),
kept as a WAV of that rate; priced from the usage metadata (text tokens in, audio tokens out)."""

from __future__ import annotations

import re
from typing import Any

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.cost import priced
from vidpipe_core.errors import ProviderError
from vidpipe_core.providers.base import Speech, SpeechRequest, Usage
from vidpipe_core.providers.google.client import _GoogleStage, _token_usage
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.speech import GEMINI_VOICES, pcm_wav
from vidpipe_core.steps import NARRATION

PCM_RATE = 24000  # what Gemini TTS answers when the mime type names no rate


def _audio_part(response: Any) -> tuple[bytes, str] | None:
    for candidate in response.candidates or []:
        for part in getattr(candidate.content, "parts", None) or []:
            blob = getattr(part, "inline_data", None)
            if blob is not None and blob.data and str(blob.mime_type or "").startswith("audio/"):
                return blob.data, str(blob.mime_type)
    return None


def _rate(mime: str) -> int:
    found = re.search(r"rate=(\d+)", mime)
    return int(found.group(1)) if found else PCM_RATE


class GoogleSpeech(_GoogleStage):
    """Narration from a Gemini TTS model."""

    voices = GEMINI_VOICES

    def model_for(self, spec: ProjectSpec) -> str:
        return self.settings.tts_model

    def speak(self, request: SpeechRequest, model: str, cancel: CancelToken = NEVER) -> Speech:
        from google.genai import types

        client = self.client.get()
        config = types.GenerateContentConfig(
            response_modalities=["AUDIO"],
            speech_config=types.SpeechConfig(
                voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=request.voice)),
                language_code=request.language,
            ),
        )
        response = self._call(
            lambda: client.models.generate_content(model=model, contents=request.text, config=config),
            stage=NARRATION,
            scene=request.scene_index,
            cancel=cancel,
        )
        found = _audio_part(response)
        if found is None:
            raise ProviderError(NARRATION, f"{model} answered without audio", scene=request.scene_index)
        pcm, mime = found
        if "l16" not in mime.lower() and "pcm" not in mime.lower():
            raise ProviderError(NARRATION, f"{model} answered {mime}, not 16-bit PCM", scene=request.scene_index)
        tokens_in, tokens_out = _token_usage(response)
        usage = priced(self.settings, model, Usage(input_tokens=tokens_in, output_tokens=tokens_out))
        return Speech(pcm_wav(pcm, _rate(mime)), usage)
