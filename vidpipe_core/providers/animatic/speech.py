"""The offline narrator: espeak-ng (Debian's `espeak-ng` package) when it is on PATH, reading
every line with its voice of the project's language; without it, silence of the line's planned
length and a one-line note (the subtitles are still made from the words). Free and deterministic:
the same line gives the same bytes, so a damaged file is said again for free."""

from __future__ import annotations

import shutil

from vidpipe_core import media
from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.config import Settings
from vidpipe_core.errors import ProviderError
from vidpipe_core.providers.base import Speech, SpeechRequest
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.speech import GEMINI_VOICES, pcm_wav, wav_seconds
from vidpipe_core.steps import NARRATION

ESPEAK = "espeak-ng"
MODEL = "animatic"
SILENCE_RATE = 24000
ESPEAK_TIMEOUT_S = 60.0
ESPEAK_WPM, ESPEAK_MAX_WPM = 175, 450  # espeak-ng's default pace and its fastest
NO_ESPEAK = (
    "espeak-ng is not on PATH: the narration is silence of each line's planned length (install Debian's espeak-ng to hear it)"
)


def streamed_wav(data: bytes) -> bytes | None:
    """A WAV written to a pipe (its sizes unknown, so left at their maximum) as a WAV file whose
    sizes are right; None when it holds no 16-bit PCM samples."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    fmt, at = data.find(b"fmt "), data.find(b"data")
    if fmt < 0 or at < 0:
        return None
    channels = int.from_bytes(data[fmt + 10 : fmt + 12], "little")
    rate = int.from_bytes(data[fmt + 12 : fmt + 16], "little")
    width = int.from_bytes(data[fmt + 22 : fmt + 24], "little")
    samples = data[at + 8 :]
    if width != 16 or channels < 1 or rate < 1 or len(samples) < 2:
        return None
    return pcm_wav(samples[: len(samples) - len(samples) % (2 * channels)], rate, channels)


def silence_wav(seconds: float, rate: int = SILENCE_RATE) -> bytes:
    return pcm_wav(b"\0\0" * round(seconds * rate), rate)


def espeak_voices(language: str) -> list[str]:
    """espeak-ng's voice names to try for a BCP-47 code: the code itself (en-us), then its language (en)."""
    code = language.lower()
    base = code.split("-")[0]
    return [code] if code == base else [code, base]


def espeak_pace(request: SpeechRequest) -> int:
    """Words a minute for espeak-ng's first reading: its usual pace, faster when the line's words
    at that pace would not fit its scene (with a fifth of it to spare), at most espeak's fastest."""
    words = len(request.text.split())
    needed = words * 60 / (0.8 * request.scene_s) if request.scene_s > 0 else 0
    return int(min(ESPEAK_MAX_WPM, max(ESPEAK_WPM, needed)))


def faster(pace: int, seconds: float, scene_s: float) -> int | None:
    """The pace of another reading of a line that took ``seconds`` (long words read slower than
    the count says), or None when it fits or espeak cannot read faster."""
    if scene_s <= 0 or seconds <= scene_s or pace >= ESPEAK_MAX_WPM:
        return None
    return int(min(ESPEAK_MAX_WPM, pace * seconds / scene_s * 1.05 + 1))


class AnimaticSpeech:
    name = "animatic"
    voices = GEMINI_VOICES  # accepted and kept, so the project's voice holds when its clips move to Veo
    reproducible = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def model_for(self, spec: ProjectSpec) -> str:
        return MODEL

    def speak(self, request: SpeechRequest, model: str, cancel: CancelToken = NEVER) -> Speech:
        program = shutil.which(ESPEAK)
        if program is None:
            return Speech(silence_wav(min(request.planned_s, request.scene_s or request.planned_s)), note=NO_ESPEAK)
        problem = ""
        for voice in espeak_voices(request.language):
            pace: int | None = espeak_pace(request)
            wav = b""
            while pace is not None:
                # To stdout: espeak-ng cuts a long -w path short and still exits 0 (writing nothing).
                finished = media.supervise(
                    [program, "-v", voice, "-s", str(pace), "--stdout", "--", request.text],
                    what="espeak-ng",
                    timeout=ESPEAK_TIMEOUT_S,
                    cancel=cancel,
                )
                said = streamed_wav(finished.stdout) if finished.returncode == 0 else None
                if said is None:
                    lines = finished.stderr.decode("utf-8", "replace").strip().splitlines()
                    problem = lines[-1] if lines else "no audio"
                    break
                wav = said
                pace = faster(pace, wav_seconds(wav), request.scene_s)
            if wav:
                return Speech(wav)
        raise ProviderError(
            NARRATION, f"espeak-ng could not read the line in {request.language}: {problem}", scene=request.scene_index
        )
