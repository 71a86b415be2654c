"""The rules of spoken words that every part shares (a leaf): the narrator's voices, the language
code, how long a line will take to say before it is said, and how much a line may be sped up.

A line is judged twice: before anything is paid, by its estimated length (``estimated_seconds``:
``WORDS_PER_SECOND``, the pace the storyboard prompt asks for), and after it is said, by the
length measured from its audio (``tempo_for``). A line may be sped up by at most ``MAX_TEMPO``
(ffmpeg's atempo keeps the pitch); a longer one is refused, naming the scene, its length and the
line's. Nothing ever cuts a line: a cut would end mid-word."""

from __future__ import annotations

import io
import re
import wave

from vidpipe_core.errors import InvalidInput
from vidpipe_core.scenes import scene_label

# The pace the storyboard asks for and the estimate assumes: about 150 words a minute.
WORDS_PER_SECOND = 2.5
MAX_TEMPO = 1.15
# A narration line's bound in the storyboard schema: 2.5 words a second of the longest clip (8 s) is
# 20 words; 240 characters leave room for long words without allowing a paragraph.
MAX_NARRATION_CHARS = 240
MAX_CUE_CHARS = 300  # a dialogue or sound cue written into the Veo prompt

# Gemini TTS's prebuilt voices (the same for every Gemini TTS model).
GEMINI_VOICES: tuple[str, ...] = (
    "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe", "Charon",
    "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore", "Laomedeia", "Leda",
    "Orus", "Puck", "Pulcherrima", "Rasalgethi", "Sadachbia", "Sadaltager", "Schedar", "Sulafat",
    "Umbriel", "Vindemiatrix", "Zephyr", "Zubenelgenubi",
)  # fmt: skip

# BCP-47 as a person types it for speech: a language (2-3 letters), an optional script (4 letters)
# and an optional region (2 letters or 3 digits), e.g. en, en-US, pt-BR, zh-Hans-CN.
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$")


def check_language(code: object) -> str:
    """``code`` as a BCP-47 language tag (``en-US``), or InvalidInput saying what is allowed."""
    if not isinstance(code, str) or not _BCP47.match(code.strip()):
        raise InvalidInput("language", f"{code!r} is not a BCP-47 language code", "e.g. en-US, en, de-DE, pt-BR")
    language, *rest = code.strip().split("-")
    return "-".join([language.lower(), *(p.title() if len(p) == 4 else p.upper() for p in rest)])


def check_voice(voice: object, voices: tuple[str, ...]) -> str:
    """``voice`` spelled as the provider spells it (case is forgiven), or InvalidInput listing them."""
    if isinstance(voice, str):
        for known in voices:
            if known.lower() == voice.strip().lower():
                return known
    raise InvalidInput("voice", f"{voice!r} is not a voice of the narrator", ", ".join(voices))


def words(text: str) -> int:
    return len(text.split())


def estimated_seconds(text: str) -> float:
    """How long ``text`` takes to say at the storyboard's pace (0 for no words)."""
    return round(words(text) / WORDS_PER_SECOND, 3)


def too_long(index: int, scene_s: float, line_s: float, *, measured: bool) -> InvalidInput:
    how = "is" if measured else "would take about"
    return InvalidInput(
        "narration",
        f"the line of {scene_label(index)} {how} {line_s:.2f} s, longer than the scene's {scene_s:g} s even sped up "
        f"{MAX_TEMPO}x (at most {scene_s * MAX_TEMPO:.2f} s); give {scene_label(index)} a shorter line "
        f"(`vidpipe edit ID --scene {index + 1} --narration TEXT`) or the project a longer clip duration",
    )


def check_line(index: int, text: str, scene_s: float) -> None:
    """Refuse, before anything is paid, a line whose estimated length does not fit its scene."""
    line_s = estimated_seconds(text)
    if line_s > scene_s * MAX_TEMPO + 1e-9:
        raise too_long(index, scene_s, line_s, measured=False)


def veo_cues(dialogue: str, sound: str) -> str:
    """A scene's audio cues as Google's Veo prompting guide writes them: the dialogue as the
    speaker saying the words in quotes, sound effects after "SFX:" and ambience after "Ambient
    noise:" (a cue without either label is taken as an effect). Empty without cues."""
    lines = []
    if dialogue.strip():
        lines.append(dialogue.strip())
    if sound.strip():
        cue = sound.strip()
        lines.append(cue if cue.lower().startswith(("sfx:", "ambient noise:")) else f"SFX: {cue}")
    return "".join(f"{line}\n" for line in lines)


def tempo_for(index: int, line_s: float, scene_s: float) -> float:
    """The speed-up a line measured at ``line_s`` needs to fit ``scene_s`` (1.0: none), or the
    refusal naming the scene and both lengths."""
    if line_s <= scene_s:
        return 1.0
    if line_s > scene_s * MAX_TEMPO + 1e-9:
        raise too_long(index, scene_s, line_s, measured=True)
    return round(line_s / scene_s, 4)


def pcm_wav(pcm: bytes, rate: int, channels: int = 1) -> bytes:
    """16-bit little-endian PCM samples as a WAV file (every narrator's output is one)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def wav_seconds(wav: bytes) -> float:
    """How long a WAV file plays."""
    with wave.open(io.BytesIO(wav)) as w:
        return w.getnframes() / float(w.getframerate())
