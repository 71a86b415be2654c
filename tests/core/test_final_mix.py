"""The final mix (issue 24): subtitles timed to the audio where the stitch put each scene, the
narration under the picture, music ducked under speech, broadcast loudness, burned subtitles.
Every check reads the media: the subtitle track's packets, the decoded audio, the decoded frames."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers import sweep_clip
from vidpipe_core import media
from vidpipe_core.errors import InvalidInput
from vidpipe_core.media import mix, subtitles
from vidpipe_core.media.runner import ffmpeg_messages, run_ffmpeg
from vidpipe_core.spoken import SpokenLine

FPS = 12
RATE = 48000
MUSIC_HZ = 220.0


def _silent_clip(path: Path, seconds: float, size: tuple[int, int], hue: int) -> Path:
    """A clip as the animatic makes them when it has no audio: video only."""
    w, h = size
    src = f"testsrc2=size={w}x{h}:rate={FPS}:duration={seconds},hue=h={hue}"
    kwargs = media.video_out_kwargs(FPS)
    run_ffmpeg(
        ["-f", "lavfi", "-i", src, *[x for k, v in kwargs.items() for x in (f"-{k}", str(v))], "-an", "-y", str(path)],
        what="clip",
    )
    return path


def _wav(path: Path, expression: str, seconds: float) -> Path:
    run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc={expression}:d={seconds}:s=24000", "-y", str(path)], what="wav")
    return path


def _voice(path: Path, text: str) -> Path:
    """Speech: espeak-ng's when it is installed, else a voice-like tone (syllables of 700 Hz)."""
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
        return path
    return _wav(path, "0.3*sin(2*PI*700*t)*(0.6+0.4*sin(2*PI*4*t))", 0.08 * len(text))


def _seconds(path: Path) -> float:
    return media.probe(path).duration_s


def _audio(path: Path) -> np.ndarray:
    """The decoded audio, mono float."""
    with av.open(str(path)) as c:
        chunks = [f.to_ndarray() for f in c.decode(audio=0)]
    samples = np.concatenate([c if c.ndim == 2 and c.shape[0] <= 2 else c.reshape(1, -1) for c in chunks], axis=1)
    return samples.mean(axis=0).astype(np.float64)


def _ebur128(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) as ffmpeg's ebur128 filter measures the file's audio."""
    text = ffmpeg_messages(["-i", str(path), "-map", "0:a", "-af", "ebur128=peak=true", "-f", "null", "-"], what="ebur128")
    summary = text[text.rindex("Summary:") :]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))  # type: ignore[union-attr]
    return integrated, peak


def _parse_srt(text: str) -> list[tuple[float, float, str]]:
    def sec(stamp: str) -> float:
        h, m, s = stamp.replace(",", ".").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    cues = []
    for block in text.strip().split("\n\n"):
        rows = block.strip().splitlines()
        if rows[0] == "WEBVTT":
            continue
        if "-->" not in rows[0]:
            assert rows[0].isdigit(), block
            rows = rows[1:]
        start, end = (x.strip() for x in rows[0].split("-->"))
        cues.append((sec(start), sec(end), " ".join(rows[1:])))
    return cues


def _track(path: Path) -> tuple[str, list[tuple[float, float, str]]]:
    """The mp4's subtitle track: its codec and language, and its cues read from its packets."""
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        name, language = stream.codec_context.name, stream.language or ""
        cues = []
        for p in c.demux(stream):
            data = bytes(p)
            if p.pts is None or len(data) < 2:
                continue
            n = int.from_bytes(data[:2], "big")
            if n:
                start = float(p.pts * p.time_base)
                cues.append((start, start + float(p.duration * p.time_base), data[2 : 2 + n].decode()))
    return f"{name}/{language}", cues


@pytest.fixture(scope="module")
def three_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("mix-clips")
    return [sweep_clip(tmp / f"c{i}.mp4", 3, i + 1) for i in range(3)]


@pytest.mark.parametrize("crossfade", [0.0, 0.5])
def test_subtitles_follow_the_scenes_where_the_stitch_put_them(tmp_path: Path, three_clips: list[Path], crossfade: float) -> None:
    stitched = media.stitch(three_clips, tmp_path / "stitched.mp4", crossfade=crossfade)
    words = ["A paper boat drifts down the gutter.", "Watch out!", "It reaches the sea at last."]
    lines = [
        SpokenLine(0, words[0], "narration", _seconds(_voice(tmp_path / "n0.wav", words[0])), tmp_path / "n0.wav", 0.2),
        SpokenLine(1, words[1], "dialogue", 1.0, None, 0.5),  # Veo speaks it inside the clip
        SpokenLine(2, words[2], "narration", _seconds(_voice(tmp_path / "n2.wav", words[2])), tmp_path / "n2.wav", 0.3),
    ]
    cues = subtitles.cues(lines, dict(enumerate(stitched.spans)))
    result = mix.mix(tmp_path / "stitched.mp4", tmp_path / "final.mp4", lines_cues=cues, language="en-GB")

    scene = [(i * (3 - crossfade), i * (3 - crossfade) + 3) for i in range(3)]  # each clip's place, crossfades included
    for text in (result.srt, result.vtt, _track(tmp_path / "final.mp4")):
        parsed = _parse_srt(text) if isinstance(text, str) else text[1]
        assert [c[2] for c in parsed] == words
        for (start, end, _), line, (lo, hi) in zip(parsed, lines, scene, strict=True):
            assert lo - 0.1 <= start < end <= hi + 0.1
            assert start == pytest.approx(lo + line.offset_s, abs=0.1)
            assert end == pytest.approx(min(hi, lo + line.offset_s + line.duration_s), abs=0.1)
    assert result.vtt.startswith("WEBVTT")
    assert _track(tmp_path / "final.mp4")[0] == "mov_text/eng"
    info = media.probe(tmp_path / "final.mp4")
    assert info.frames == stitched.frames and info.video_key == stitched.video_key  # the picture is copied
    # the narration is under the picture: louder where it speaks than the clip audio alone was
    audio, before = _audio(tmp_path / "final.mp4"), _audio(tmp_path / "stitched.mp4")
    start, end = parsed[0][0], parsed[0][1]
    window = slice(round((start + 0.2) * RATE), round((end - 0.2) * RATE))
    speech = audio[window] / (np.std(audio) or 1) - before[window] / (np.std(before) or 1)
    assert np.sqrt(np.mean(speech**2)) > 0.3


def test_a_line_is_clipped_inside_its_scene_and_a_left_out_scene_has_none() -> None:
    lines = [
        SpokenLine(0, "  too  long ", "narration", 9.0, None, 1.0),
        SpokenLine(1, "a scene the safety filter left out", "narration", 1.0),
        SpokenLine(2, "at the very end", "narration", 1.0, None, 2.95),
    ]
    cues = subtitles.cues(lines, {0: (0.0, 3.0), 2: (2.5, 5.5)})
    assert [(c.start, c.end, c.text) for c in cues] == [(1.0, 3.0, "too long")]
    # a scene's dialogue over its narration: the mp4's track shows both at once, never cuts one short
    both = subtitles.cues(
        [SpokenLine(0, "over it all", "narration", 2.0, None, 0.5), SpokenLine(0, "Hey!", "dialogue", 0.5, None, 1.0)],
        {0: (0.0, 3.0)},
    )
    assert [(c.start, c.end, c.text) for c in subtitles.layered(both)] == [
        (0.5, 1.0, "over it all"),
        (1.0, 1.5, "over it all\nHey!"),
        (1.5, 2.5, "over it all"),
    ]
    assert "over it all\\NHey!" in subtitles.ass(subtitles.layered(both), 256, 144)
    assert subtitles.layered(cues) == cues  # no overlap: unchanged
    assert subtitles.iso639_2("pt-BR") == "por" and subtitles.iso639_2(None) == "und" and subtitles.iso639_2("xx") == "und"


@pytest.mark.parametrize("with_music", [False, True])
def test_the_final_mix_is_normalised_to_minus_16_lufs(tmp_path: Path, three_clips: list[Path], with_music: bool) -> None:
    media.stitch(three_clips, tmp_path / "stitched.mp4")
    text = "The lighthouse keeper climbs the stairs."
    line = SpokenLine(1, text, "narration", _seconds(_voice(tmp_path / "n.wav", text)), tmp_path / "n.wav", 0.2)
    cues = subtitles.cues([line], {0: (0.0, 3.0), 1: (3.0, 6.0), 2: (6.0, 9.0)})
    music = _wav(tmp_path / "music.wav", "0.2*sin(2*PI*330*t)", 2.0) if with_music else None
    result = mix.mix(tmp_path / "stitched.mp4", tmp_path / "final.mp4", lines_cues=cues, music=music)
    integrated, peak = _ebur128(tmp_path / "final.mp4")
    assert integrated == pytest.approx(-16.0, abs=1.0)
    assert peak <= mix.TARGET_TRUE_PEAK  # -1.5 dBTP in the file, after the AAC encoder's overshoot
    assert result.loudness.integrated_lufs == pytest.approx(-16.0, abs=1.0)
    assert result.loudness.input_lufs == pytest.approx(_ebur128(tmp_path / "stitched.mp4")[0], abs=3.0) or with_music


def test_one_gain_where_it_reaches_the_target_else_loudnorm_dynamic() -> None:
    """The normalisation is chosen from ebur128's measurement as loudnorm's linear mode chooses:
    one gain when the true peak stays under its ceiling and the range within the target's."""
    quiet = mix.normalisation(mix.Measured(integrated=-24.0, lra=3.0, true_peak=-12.0))
    assert quiet is not None and quiet.audio_filter == "volume=8dB" and quiet.loudness.normalization == "linear"
    assert quiet.loudness.integrated_lufs == -16.0 and quiet.loudness.true_peak_dbtp == -4.0
    assert mix.normalisation(mix.Measured(integrated=-30.0, lra=3.0, true_peak=-3.0)) is None  # peaks
    assert mix.normalisation(mix.Measured(integrated=-20.0, lra=25.0, true_peak=-10.0)) is None  # range
    silent = mix.normalisation(mix.Measured(integrated=-70.0, lra=0.0, true_peak=-math.inf))
    assert silent is not None and silent.audio_filter is None and silent.loudness.normalization == "none (silent)"


def test_a_peaky_mix_is_normalised_dynamically_to_the_target(tmp_path: Path) -> None:
    """A quiet tone with clicks cannot take one gain to -16 LUFS without its peaks passing
    -1.5 dBTP: loudnorm's two passes do it, and the file measures so, its true peak too once the
    AAC encoder has overshot (-0.7 dBTP before the mix kept 1 dB of headroom for it). (Louder
    clicks defeat loudnorm's dynamic mode: -19 LUFS with clicks at -1 dBFS.)"""
    clips = [_silent_clip(tmp_path / f"c{i}.mp4", 3, (256, 144), 60 * i) for i in range(2)]
    media.stitch(clips, tmp_path / "stitched.mp4")
    clicks = r"0.02*sin(2*PI*500*t)+0.1*lt(mod(t\,0.5)\,0.002)"  # a ~-37 dBFS tone, -20 dBFS clicks
    line = SpokenLine(0, "clicks", "narration", 5.0, _wav(tmp_path / "clicks.wav", clicks, 5.0), 0.5)
    cues = subtitles.cues([line], {0: (0.0, 3.0), 1: (3.0, 6.0)})
    result = mix.mix(tmp_path / "stitched.mp4", tmp_path / "final.mp4", lines_cues=cues)
    assert result.loudness.normalization == "dynamic"
    integrated, peak = _ebur128(tmp_path / "final.mp4")
    assert integrated == pytest.approx(-16.0, abs=1.0) and peak <= mix.TARGET_TRUE_PEAK  # the AAC's overshoot included
    assert result.loudness.integrated_lufs == pytest.approx(integrated, abs=0.5)


def _band_db(audio: np.ndarray, start: float, end: float, hz: float) -> float:
    """The level of the band hz ± 15 Hz between start and end seconds (FFT of a Hann window), per
    sample: a steady tone reads the same in a window of any length."""
    chunk = audio[round(start * RATE) : round(end * RATE)]
    spectrum = np.abs(np.fft.rfft(chunk * np.hanning(len(chunk)))) ** 2
    freqs = np.fft.rfftfreq(len(chunk), 1 / RATE)
    return float(10 * np.log10(spectrum[(freqs > hz - 15) & (freqs < hz + 15)].sum() / len(chunk) ** 2 + 1e-20))


def test_the_music_ducks_under_the_narration(tmp_path: Path) -> None:
    clips = [_silent_clip(tmp_path / f"c{i}.mp4", 4, (256, 144), 40 * i) for i in range(3)]  # no clip audio: a silence bed
    media.stitch(clips, tmp_path / "stitched.mp4")
    voice = "0.4*sin(2*PI*900*t)*(0.7+0.3*sin(2*PI*5*t))"  # a steady "voice" far from the music's band
    lines = [SpokenLine(i, f"line {i + 1}", "narration", 1.5, _wav(tmp_path / f"v{i}.wav", voice, 1.5), 1.5) for i in range(3)]
    cues = subtitles.cues(lines, {i: (4.0 * i, 4.0 * i + 4) for i in range(3)})
    music = _wav(tmp_path / "tone.wav", f"0.5*sin(2*PI*{MUSIC_HZ:g}*t)", 1.0)  # looped to the video's 12 s
    mix.mix(tmp_path / "stitched.mp4", tmp_path / "final.mp4", lines_cues=cues, music=music)
    audio = _audio(tmp_path / "final.mp4")
    assert len(audio) == pytest.approx(12 * RATE, abs=RATE * 0.05)  # looped and trimmed to the video
    # narration at 5.5-7.0 s (scene 2); gaps: 3.3-5.2 and 7.8-9.2 s (after the release), away from the music's fades
    during = _band_db(audio, 5.7, 6.8, MUSIC_HZ)
    gaps = [_band_db(audio, 3.3, 5.2, MUSIC_HZ), _band_db(audio, 7.8, 9.2, MUSIC_HZ)]
    assert min(gaps) - during >= 6.0, (gaps, during)
    # the music is faded in: its first 0.2 s are far below its level in the gaps
    assert _band_db(audio, 0.0, 0.25, MUSIC_HZ) < min(gaps) - 10


def test_the_music_ducks_under_the_clips_own_speech(tmp_path: Path) -> None:
    """Veo's dialogue is in the clips' audio: the music ducks under it too (the key is the narration
    and the clips' audio), with no narration at all."""
    clips = []
    for i, loud in enumerate((0.0, 0.4, 0.0)):  # scene 2 speaks (a 900 Hz stand-in), 1 and 3 are silent
        path = tmp_path / f"c{i}.mp4"
        src = f"testsrc2=size=256x144:rate={FPS}:duration=4"
        speech = f"aevalsrc={loud}*sin(2*PI*900*t):d=4:s={RATE}:c=stereo"
        kwargs = {**media.video_out_kwargs(FPS), **media.audio_out_kwargs()}
        flags = [x for k, v in kwargs.items() for x in (f"-{k}", str(v))]
        run_ffmpeg(["-f", "lavfi", "-i", src, "-f", "lavfi", "-i", speech, *flags, "-t", "4", "-y", str(path)], what="clip")
        clips.append(path)
    media.stitch(clips, tmp_path / "stitched.mp4")
    music = _wav(tmp_path / "tone.wav", f"0.5*sin(2*PI*{MUSIC_HZ:g}*t)", 1.0)
    mix.mix(tmp_path / "stitched.mp4", tmp_path / "final.mp4", lines_cues=[], music=music)
    audio = _audio(tmp_path / "final.mp4")
    during = _band_db(audio, 4.5, 7.5, MUSIC_HZ)
    gaps = [_band_db(audio, 2.2, 3.9, MUSIC_HZ), _band_db(audio, 8.6, 9.8, MUSIC_HZ)]
    assert min(gaps) - during >= 6.0, (gaps, during)
    assert _band_db(audio, 4.5, 7.5, 900.0) > during  # the speech itself is kept, over the music


def _luma(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="gray").astype(np.float32) for f in c.decode(video=0)])


@pytest.mark.parametrize("size", [(256, 144), (144, 256)], ids=["16:9", "9:16"])
def test_burned_subtitles_change_the_picture_inside_their_cues_only(tmp_path: Path, size: tuple[int, int]) -> None:
    clips = [_silent_clip(tmp_path / f"c{i}.mp4", 2, size, 90 * i) for i in range(2)]
    stitched = media.stitch(clips, tmp_path / "stitched.mp4")
    lines = [SpokenLine(i, "Subtitles inside the safe area", "dialogue", 0.75, None, 0.5) for i in range(2)]
    cues = subtitles.cues(lines, dict(enumerate(stitched.spans)))
    soft = mix.mix(tmp_path / "stitched.mp4", tmp_path / "soft.mp4", lines_cues=cues)
    burned = mix.mix(tmp_path / "stitched.mp4", tmp_path / "burned.mp4", lines_cues=cues, burn=True)
    assert not soft.burned and burned.burned
    assert _track(tmp_path / "burned.mp4")[0] == "mov_text/und"  # the soft track is there too
    plain, drawn = _luma(tmp_path / "soft.mp4"), _luma(tmp_path / "burned.mp4")
    assert plain.shape == drawn.shape
    w, h = size
    area = subtitles.safe_area(w, h)
    band = slice(round(h * 0.45), h - area.margin_v // 2)  # where the text can be, above the bottom margin
    diff = np.abs(plain - drawn)
    for k in range(len(plain)):
        t = k / FPS
        inside = any(c.start + 1 / FPS <= t <= c.end - 1 / FPS for c in cues)
        outside = all(t < c.start - 1 / FPS or t > c.end + 1 / FPS for c in cues)
        if inside:
            assert diff[k, band].mean() > 2.0, (k, diff[k, band].mean())
            assert diff[k, band].max() > 100  # white text on the picture
        elif outside:
            assert diff[k, band].max() < 40 and diff[k, band].mean() < 1.5, (k, diff[k, band].max())
        # never beside the text's margins nor under the bottom margin
        assert diff[k, h - area.margin_v // 2 :].max() < 40
        assert diff[k, :, : area.margin_h // 2].max() < 40 and diff[k, :, w - area.margin_h // 2 :].max() < 40


def test_no_lines_and_no_music_leave_the_stitch_alone() -> None:
    from vidpipe_core.steps.final_mix import wanted

    assert not wanted((), None)
    assert wanted((SpokenLine(0, "x", "narration", 1.0),), None) and wanted((), Path("music.mp3"))


def test_the_stitch_step_mixes_stores_the_subtitles_and_otherwise_leaves_the_stitch_alone(vp_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from vidpipe_core.projects import build_spec, create_project
    from vidpipe_core.request import ProjectRequest
    from vidpipe_core.services import Services
    from vidpipe_core.steps.characters import make_characters
    from vidpipe_core.steps.clips import make_clips
    from vidpipe_core.steps.final_mix import mix_markdown, mix_metadata
    from vidpipe_core.steps.keyframes import make_keyframes
    from vidpipe_core.steps.state import resolve_state
    from vidpipe_core.steps.stitch import make_final
    from vidpipe_core.steps.storyboard import make_storyboard
    from vidpipe_core.storage import sha256_file

    services = Services.create()
    request = ProjectRequest(prompt="A kite rises over the dunes. The string snaps.", id="kites", scenes=2, clip_duration=2)
    spec = create_project(services, build_spec(services.settings, request.model_copy(update={"burn_subtitles": True})), "cli")
    assert spec.burn_subtitles
    for step in (make_storyboard, make_characters, make_keyframes, make_clips):
        step(services, spec.id)
    clips = [
        Path(services.store.path(spec.id, c.row.path)) for c in resolve_state(services, spec.id).clips if c.row and c.row.path
    ]

    plain = make_final(services, spec.id)  # no lines, no music: the stitch of the clips, byte for byte
    assert plain.mix is None and not services.store.exists(spec.id, "final.srt")
    media.stitch(clips, tmp_path / "direct.mp4", crossfade=plain.crossfade, fade_in=plain.fade_in_s, fade_out=plain.fade_out_s)
    assert plain.sha256 == sha256_file(tmp_path / "direct.mp4")

    final = Path(services.store.path(spec.id, "final.mp4"))
    with pytest.raises(InvalidInput, match="not a file"):  # refused before anything is stitched or written
        make_final(services, spec.id, music=tmp_path / "missing.mp3")
    assert sha256_file(final) == plain.sha256

    text = "The string snaps."
    line = SpokenLine(1, text, "narration", _seconds(_voice(tmp_path / "n.wav", text)), tmp_path / "n.wav", 0.1)
    mixed = make_final(services, spec.id, lines=[line])
    assert mixed.mix is not None and mixed.mix.narration and mixed.mix.burned
    srt = services.store.read_bytes(spec.id, "final.srt").decode()
    assert _parse_srt(srt) == [(pytest.approx(2.1, abs=0.01), pytest.approx(min(4.0, 2.1 + line.duration_s), abs=0.01), text)]
    assert _parse_srt(services.store.read_bytes(spec.id, "final.vtt").decode())[0][2] == text
    assert _track(final)[1][0][2] == text and mixed.sha256 == sha256_file(final) != plain.sha256
    assert _ebur128(final)[0] == pytest.approx(-16.0, abs=1.0)
    shown = mix_metadata(mixed.mix)  # what final_video's materialization says
    assert shown["narration"] is True and shown["first_subtitles"] == text and shown["subtitles_srt"].endswith("final.srt")
    assert shown["loudness_lufs"] == pytest.approx(-16.0, abs=1.0) and float(shown["true_peak_dbtp"]) <= -1.0
    assert "**Narration:** on" in mix_markdown(mixed.mix) and text in mix_markdown(mixed.mix)
    assert mix_metadata(None)["narration"] is False and "off" in mix_markdown(None)
