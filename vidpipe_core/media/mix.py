"""The final mix of a stitched video: the narration placed under the picture at its cues, the
clips' own audio kept under it (silence when they have none), the music looped or trimmed to the
video, faded, and ducked under the narration and the clips' speech; the whole normalised to
broadcast loudness by two-pass ``loudnorm``; the subtitles as a soft ``mov_text`` track, or drawn
into the picture.

Only audio is decoded and encoded: the video's packets are copied, unless the subtitles are burned
in. Three ffmpeg jobs, all through the runner: the mix (written as float PCM while loudnorm measures
it), the normalisation (loudnorm given the measured values, AAC out) and the mux."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import InvalidInput, MediaError
from vidpipe_core.media import subtitles
from vidpipe_core.media.encoding import AUDIO_RATE, audio_out_kwargs, ffmpeg_number, video_out_kwargs
from vidpipe_core.media.probe import MediaInfo, probe
from vidpipe_core.media.runner import ffmpeg_messages, run_ffmpeg
from vidpipe_core.media.subtitles import Cue

TARGET_LUFS = -16.0  # integrated loudness of the final mix (EBU R128 / streaming platforms)
TARGET_TRUE_PEAK = -1.5  # dBTP
TARGET_LRA = 20.0  # wide enough that loudnorm stays linear (one gain) for speech over music
MUSIC_GAIN_DB = -6.0  # the music under everything else before ducking
MUSIC_FADE_S = 2.0  # its fade in and out, at most a quarter of the video each
# The music's sidechain compressor: keyed by the narration and the clips' audio; ~-34 dBFS of
# speech starts it, and at 8:1 a line at -12 dBFS takes the music down by ~19 dB.
DUCKING = {"threshold": 0.02, "ratio": 8, "attack": 20, "release": 400}
_FORMAT = f"aformat=sample_fmts=fltp:sample_rates={AUDIO_RATE}:channel_layouts=stereo"


@dataclass(frozen=True)
class Loudness:
    """loudnorm's measurements: of the mix (input_*) and of what it made (integrated_lufs, true_peak_dbtp)."""

    integrated_lufs: float
    true_peak_dbtp: float
    lra: float
    input_lufs: float
    input_true_peak_dbtp: float
    normalization: str  # "linear", "dynamic", or "none (silent)"


@dataclass(frozen=True)
class MixResult:
    info: MediaInfo
    cues: tuple[Cue, ...]
    srt: str
    vtt: str
    loudness: Loudness
    narration: bool  # narration audio was placed under the picture
    music: bool
    burned: bool
    language: str  # the subtitle track's ISO 639-2 code


def _voice_chain(index: int, cue: Cue) -> str:
    delay = max(0, round(cue.start * 1000))
    return (
        f"[{index}:a]{_FORMAT},atrim=0:{ffmpeg_number(cue.end - cue.start)},asetpts=PTS-STARTPTS,adelay={delay}:all=1[v{index}]"
    )


def mix_graph(duration: float, *, bed: bool, voices: Sequence[Cue], music: bool) -> str:
    """The mix's filter graph (inputs: 0 the stitched video, 1..k the voices' WAVs, then the music
    looped), ending in ``[keep]`` (the mix) and ``[measured]`` (loudnorm's first pass)."""
    total = ffmpeg_number(duration)
    graph = [
        f"[0:a]{_FORMAT},apad,atrim=0:{total},asetpts=PTS-STARTPTS[bed]"
        if bed
        else f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=0:{total},{_FORMAT}[bed]"
    ]
    layers = ["[bed]"]
    if voices:
        graph += [_voice_chain(k, cue) for k, cue in enumerate(voices, 1)]
        labels = "".join(f"[v{k}]" for k in range(1, len(voices) + 1))
        graph.append(f"{labels}amix=inputs={len(voices)}:normalize=0:duration=longest,apad,atrim=0:{total}[voice]")
        layers.append("[voice]")
    if music:
        fade = ffmpeg_number(min(MUSIC_FADE_S, duration / 4))
        graph.append(
            f"[{len(voices) + 1}:a]{_FORMAT},atrim=0:{total},asetpts=PTS-STARTPTS,volume={MUSIC_GAIN_DB}dB,"
            f"afade=t=in:st=0:d={fade},afade=t=out:st={ffmpeg_number(max(0.0, duration - float(fade)))}:d={fade}[music]"
        )
        # the key: everything that speaks (the narration and the clips' audio, with Veo's dialogue)
        splits = []
        for layer in list(layers):
            name = layer.strip("[]")
            graph.append(f"[{name}]asplit=2[{name}_mix][{name}_key]")
            splits.append(f"[{name}_key]")
        layers = [f"[{layer.strip('[]')}_mix]" for layer in layers]
        if len(splits) > 1:
            graph.append(f"{''.join(splits)}amix=inputs={len(splits)}:normalize=0[key]")
        else:
            graph.append(f"{splits[0]}anull[key]")
        duck = ":".join(f"{k}={v}" for k, v in DUCKING.items())
        graph.append(f"[music][key]sidechaincompress={duck}[ducked]")
        layers.append("[ducked]")
    if len(layers) > 1:
        graph.append(f"{''.join(layers)}amix=inputs={len(layers)}:normalize=0:duration=first[mix]")
    else:
        graph.append(f"{layers[0]}anull[mix]")
    graph.append(f"[mix]asplit=2[keep][tomeasure];[tomeasure]{_loudnorm()}:print_format=json[measured]")
    return ";".join(graph)


def _loudnorm() -> str:
    return f"loudnorm=I={ffmpeg_number(TARGET_LUFS)}:TP={ffmpeg_number(TARGET_TRUE_PEAK)}:LRA={ffmpeg_number(TARGET_LRA)}"


def _measured(messages: str, what: str) -> dict[str, str]:
    """loudnorm's JSON among ffmpeg's messages."""
    found = re.findall(r"\{[^{}]*\"input_i\"[^{}]*\}", messages)
    if not found:
        raise MediaError(f"{what}: loudnorm printed no measurement")
    values: dict[str, str] = json.loads(found[-1])
    return values


def _number(values: dict[str, str], key: str) -> float:
    try:
        return float(values[key])
    except (KeyError, ValueError):
        return -math.inf


def _quoted(path: Path) -> str:
    """A path as a filter option's value (the filter graph's escaping, then the option's)."""
    escaped = str(path).replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")
    return "'" + escaped.replace("'", "'\\''") + "'"


def _flags(kwargs: dict[str, object]) -> list[str]:
    return [x for k, v in kwargs.items() for x in (f"-{k}", str(v))]


def mix(
    video: Path,
    out: Path,
    *,
    lines_cues: Sequence[Cue],
    music: Path | None = None,
    language: str | None = None,
    burn: bool = False,
    cancel: CancelToken = NEVER,
) -> MixResult:
    """Write ``out``: ``video`` (a stitched file) with the mix and the subtitles of ``lines_cues``
    (``subtitles.cues``, timed in ``video``'s timeline). ``out`` only appears complete; the work
    files live in a hidden folder beside it and are removed in every case."""
    video, out = Path(video), Path(out)
    if music is not None and not Path(music).is_file():
        raise InvalidInput("music", f"{music} is not a file")
    info = probe(video)
    duration = (info.frames / info.fps) if info.frames and info.fps else (info.video_duration_s or info.duration_s)
    items = tuple(lines_cues)
    voices = [c for c in items if c.audio is not None]
    work = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.mix")
    work.mkdir(parents=True)
    tmp = work / "out.mp4"
    try:
        srt_text, vtt_text = subtitles.srt(items), subtitles.vtt(items)
        (work / "track.srt").write_text(subtitles.srt(subtitles.layered(items)), "utf-8")  # mov_text: one cue at a time
        wav, m4a = work / "mix.wav", work / "mix.m4a"
        inputs = ["-i", str(video)]
        for cue in voices:
            inputs += ["-i", str(cue.audio)]
        if music is not None:
            inputs += ["-stream_loop", "-1", "-i", str(music)]
        graph = mix_graph(duration, bed=info.has_audio, voices=voices, music=music is not None)
        messages = ffmpeg_messages(
            [*inputs, "-filter_complex", graph, "-map", "[keep]", "-c:a", "pcm_f32le", "-f", "wav", "-y", str(wav)]
            + ["-map", "[measured]", "-f", "null", "-"],
            what=f"mix {out.name}: measure",
            cancel=cancel,
        )
        first = _measured(messages, f"mix {out.name}")
        loudness = _normalise(wav, m4a, first, what=f"mix {out.name}: loudness", cancel=cancel)
        code = subtitles.iso639_2(language)
        args = ["-i", str(video), "-i", str(m4a)]
        if items:
            args += ["-f", "srt", "-i", str(work / "track.srt")]
        args += ["-map", "0:v:0", "-map", "1:a:0"] + (["-map", "2:s:0"] if items else [])
        if burn and items:
            (work / "burn.ass").write_text(subtitles.ass(items, info.width, info.height), "utf-8")
            args += ["-vf", f"subtitles=filename={_quoted(work / 'burn.ass')}", *_flags(video_out_kwargs(info.fps))]
        else:
            args += ["-c:v", "copy"]
        args += ["-c:a", "copy"]
        if items:
            args += ["-c:s", "mov_text", "-metadata:s:s:0", f"language={code}", "-metadata:s:s:0", "handler_name=Subtitles"]
        run_ffmpeg([*args, "-movflags", "+faststart", "-f", "mp4", "-y", str(tmp)], what=f"mix {out.name}: mux", cancel=cancel)
        made = probe(tmp)
        if not made.has_video or not made.has_audio:
            raise MediaError(f"mix {out.name}: the output lacks its video or its audio")
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return MixResult(
        info=made,
        cues=items,
        srt=srt_text,
        vtt=vtt_text,
        loudness=loudness,
        narration=any(c.kind == "narration" for c in voices),
        music=music is not None,
        burned=burn and bool(items),
        language=code,
    )


def _normalise(wav: Path, m4a: Path, first: dict[str, str], *, what: str, cancel: CancelToken) -> Loudness:
    """loudnorm's second pass over the mix (its measured values given, linear when it can be), to AAC."""
    aac = _flags(audio_out_kwargs())
    if not math.isfinite(_number(first, "input_i")) or _number(first, "input_i") < -70:  # silence: nothing to normalise
        run_ffmpeg(["-i", str(wav), *aac, "-vn", "-f", "mp4", "-y", str(m4a)], what=what, cancel=cancel)
        return Loudness(-math.inf, -math.inf, 0.0, -math.inf, -math.inf, "none (silent)")
    measured = (
        ":".join(f"measured_{k}={first[f'input_{k.lower()}']}" for k in ("I", "TP", "LRA", "thresh"))
        + f":offset={first['target_offset']}"
    )
    chain = f"{_loudnorm()}:{measured}:linear=true:print_format=json,aresample={AUDIO_RATE}"
    messages = ffmpeg_messages(["-i", str(wav), "-af", chain, *aac, "-vn", "-f", "mp4", "-y", str(m4a)], what=what, cancel=cancel)
    second = _measured(messages, what)
    return Loudness(
        integrated_lufs=_number(second, "output_i"),
        true_peak_dbtp=_number(second, "output_tp"),
        lra=_number(second, "output_lra"),
        input_lufs=_number(first, "input_i"),
        input_true_peak_dbtp=_number(first, "input_tp"),
        normalization=str(second.get("normalization_type", "")).lower() or "dynamic",
    )
