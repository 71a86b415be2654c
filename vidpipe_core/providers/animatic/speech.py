"""The offline narrator: espeak-ng (Debian's `espeak-ng` package) when it is on PATH, reading
every line with its voice of the project's language; without it, silence of the line's planned
length and a one-line note (the subtitles are still made from the words). Free and deterministic:
the same line gives the same bytes, so a damaged file is said again for free."""

from __future__ import annotations

import io
import shutil
import wave

from vidpipe_core import media
from vidpipe_core.config import Settings
from vidpipe_core.errors import ProviderError
from vidpipe_core.providers.base import Speech, SpeechRequest
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.scratch import scratch_dir
from vidpipe_core.speech import GEMINI_VOICES
from vidpipe_core.steps import NARRATION

ESPEAK = "espeak-ng"
MODEL = "animatic"
SILENCE_RATE = 24000
ESPEAK_TIMEOUT_S = 60.0
NO_ESPEAK = (
    "espeak-ng is not on PATH: the narration is silence of each line's planned length (install Debian's espeak-ng to hear it)"
)


def silence_wav(seconds: float, rate: int = SILENCE_RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * round(seconds * rate))
    return out.getvalue()


def espeak_voices(language: str) -> list[str]:
    """espeak-ng's voice names to try for a BCP-47 code: the code itself (en-us), then its language (en)."""
    code = language.lower()
    base = code.split("-")[0]
    return [code] if code == base else [code, base]


class AnimaticSpeech:
    name = "animatic"
    voices = GEMINI_VOICES  # accepted and kept, so the project's voice holds when its clips move to Veo
    reproducible = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def model_for(self, spec: ProjectSpec) -> str:
        return MODEL

    def speak(self, request: SpeechRequest, model: str) -> Speech:
        program = shutil.which(ESPEAK)
        if program is None:
            return Speech(silence_wav(request.planned_s), note=NO_ESPEAK)
        problem = ""
        with scratch_dir(self.settings.data_dir, "speech") as work:
            out = work / "line.wav"
            for voice in espeak_voices(request.language):
                finished = media.supervise(
                    [program, "-v", voice, "-w", str(out), "--", request.text], what="espeak-ng", timeout=ESPEAK_TIMEOUT_S
                )
                if finished.returncode == 0 and out.is_file() and out.stat().st_size > 44:
                    return Speech(out.read_bytes())
                lines = finished.stderr.decode("utf-8", "replace").strip().splitlines()
                problem = lines[-1] if lines else "no audio"
        raise ProviderError(
            NARRATION, f"espeak-ng could not read the line in {request.language}: {problem}", scene=request.scene_index
        )
