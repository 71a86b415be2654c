"""The stitch step's final mix: once the clips are joined, the project's spoken lines and music are
mixed under the picture (``media.mix``), and the subtitles are stored beside ``final.mp4`` as
``final.srt`` and ``final.vtt``. Without lines and music the stitch step does not come here: its
output is the stitch's, byte for byte."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vidpipe_core import media
from vidpipe_core.errors import InvalidInput
from vidpipe_core.media import mix as mixing
from vidpipe_core.media import subtitles
from vidpipe_core.media.subtitles import Cue
from vidpipe_core.scenes import scene_label
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.services import Services
from vidpipe_core.spoken import SpokenLine
from vidpipe_core.storage import sha256_bytes

SRT = "final.srt"
VTT = "final.vtt"


@dataclass(frozen=True)
class FinalMix:
    """What the mix made, for final_video's summary and metadata."""

    cues: tuple[Cue, ...]
    loudness: mixing.Loudness
    narration: bool  # narration audio lies under the picture
    voice: str | None
    music: bool
    burned: bool
    language: str  # the subtitle track's ISO 639-2 code
    subtitles: dict[str, str]  # "srt"/"vtt" -> the stored file's URI
    sha256: dict[str, str]  # "srt"/"vtt" -> sha256 of what was stored


def wanted(lines: Sequence[SpokenLine], music: Path | None) -> bool:
    """Whether the final video is mixed at all (else it is the stitch, unchanged)."""
    return bool(lines) or music is not None


def check_inputs(lines: Sequence[SpokenLine], music: Path | None) -> None:
    """Before anything is stitched: the music and every line's audio are files (InvalidInput naming
    the first that is not, and what to do)."""
    if music is not None and not Path(music).is_file():
        raise InvalidInput("music", f"{music} is not a file", "an MP3, WAV, M4A or OGG file")
    for line in lines:
        if line.audio is not None and not Path(line.audio).is_file():
            raise InvalidInput("narration", f"the audio of {scene_label(line.scene_index)} ({line.audio}) is missing")


def mix_final(
    services: Services,
    project_id: str,
    spec: ProjectSpec,
    stitched: media.StitchResult,
    scenes: Sequence[int],
    out: Path,
    *,
    source: Path,
    lines: Sequence[SpokenLine],
    music: Path | None,
    burn: bool,
) -> tuple[media.StitchResult, FinalMix]:
    """Mix ``source`` (the stitched file, ``stitched`` its facts; ``scenes``: the scene index of
    each clip in it) into ``out``, and store its subtitles. The subtitle files are written (each
    atomically) before the caller stores ``out``: a final.mp4 in the store always has its own."""
    spans = {index: span for index, span in zip(scenes, stitched.spans, strict=True)}
    cues = subtitles.cues(lines, spans)
    language = spec.language
    result = mixing.mix(source, out, lines_cues=cues, music=music, language=language, burn=burn)
    texts = {"srt": (SRT, result.srt), "vtt": (VTT, result.vtt)}
    uris, sums = {}, {}
    for kind, (name, text) in texts.items():
        data = text.encode("utf-8")
        services.store.write_bytes(project_id, name, data)
        uris[kind] = services.store.uri(project_id, name)
        sums[kind] = sha256_bytes(data)
    facts = {k: getattr(result.info, k) for k in media.MediaInfo.__dataclass_fields__}
    info = dataclasses.replace(stitched, **facts)
    voice = spec.voice
    return info, FinalMix(
        cues=result.cues,
        loudness=result.loudness,
        narration=result.narration,
        voice=voice if result.narration else None,
        music=result.music,
        burned=result.burned,
        language=result.language,
        subtitles=uris,
        sha256=sums,
    )


FIRST_LINES = 3  # subtitle lines the summary shows
LINE_CHARS = 60  # each cut to this length: the summary stays under the 1000 characters Dagster shows inline


def _short(text: str) -> str:
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1].rstrip() + "…"


def mix_metadata(mixed: FinalMix | None) -> dict[str, str | float | bool]:
    """final_video's metadata about the mix: narration on/off, the voice, the first subtitle lines,
    the loudness (integrated LUFS and true peak: of the mix as measured, and as normalised)."""
    if mixed is None:  # no mix: `mix_markdown` says so in one entry (every unnarrated render's event log carries it)
        return {"narration": False}
    out: dict[str, str | float | bool] = {
        "narration": mixed.narration,
        "music": mixed.music,
        "subtitles": f"{len(mixed.cues)} cues ({mixed.language}){', burned in' if mixed.burned else ''}",
        "first_subtitles": " / ".join(_short(c.text) for c in mixed.cues[:FIRST_LINES]) or "none",
        "loudness_normalization": mixed.loudness.normalization,
        "subtitles_srt": mixed.subtitles["srt"],
        "subtitles_vtt": mixed.subtitles["vtt"],
    }
    if mixed.voice:
        out["voice"] = mixed.voice
    for key, value in (
        ("loudness_lufs", mixed.loudness.integrated_lufs),
        ("true_peak_dbtp", mixed.loudness.true_peak_dbtp),
        ("loudness_measured_lufs", mixed.loudness.input_lufs),
        ("true_peak_measured_dbtp", mixed.loudness.input_true_peak_dbtp),
    ):
        if value == value and abs(value) != float("inf"):  # silence measures -inf: left out
            out[key] = round(value, 2)
    return out


def mix_markdown(mixed: FinalMix | None) -> str:
    """The mix in final_video's summary: a few lines of Markdown."""
    if mixed is None:
        return "**Narration:** off · **Music:** off · no subtitles · loudness not normalised"
    loud = mixed.loudness
    level = (
        f"{loud.integrated_lufs:.1f} LUFS, true peak {loud.true_peak_dbtp:.1f} dBTP ({loud.normalization})"
        if loud.integrated_lufs > -70
        else loud.normalization
    )
    voice = f" (voice {mixed.voice})" if mixed.voice else ""
    head = f"**Narration:** {'on' if mixed.narration else 'off'}{voice} · **Music:** {'on' if mixed.music else 'off'} · **Loudness:** {level}"
    first = [f"- {c.start:.1f}–{c.end:.1f} s: {_short(c.text)}" for c in mixed.cues[:FIRST_LINES]]
    return "\n".join([head, "", f"**Subtitles** ({len(mixed.cues)}, {mixed.language}):", *first])
