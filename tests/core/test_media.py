"""media: pure ffmpeg argument builders, probing, animatic clips, stitching, contact sheets."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import psutil
import pytest
from PIL import Image, ImageDraw

from tests.helpers import mean_abs_diff, png, sweep_clip
from vidpipe_core import media
from vidpipe_core.cancel import CancelToken, Interrupted
from vidpipe_core.errors import InvalidInput, MediaError
from vidpipe_core.media import stitcher
from vidpipe_core.providers.animatic import motion

SIZE = (256, 144)
FPS = 12


def make_png(colour: tuple[int, int, int], size: tuple[int, int] = SIZE, accent: tuple[int, int, int] = (250, 220, 40)) -> bytes:
    """A frame with structure (a disc and a bar) so zooms and pans are visible."""
    im = Image.new("RGB", size, colour)
    d = ImageDraw.Draw(im)
    w, h = size
    d.ellipse((w * 0.15, h * 0.2, w * 0.45, h * 0.75), fill=accent)
    d.rectangle((w * 0.6, h * 0.1, w * 0.9, h * 0.45), fill=(255 - colour[0], 255 - colour[1], 255 - colour[2]))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


START = make_png((30, 60, 140))
END = make_png((200, 110, 40), accent=(40, 200, 90))


def render(
    tmp: Path,
    name: str,
    *,
    duration: float = 1.0,
    audio: bool = True,
    seed: str = "slow push-in",
    size: tuple[int, int] = SIZE,
    start: bytes = START,
    end: bytes = END,
) -> Path:
    path = tmp / name
    path.write_bytes(
        motion.render_animatic_clip(start, end, duration_s=duration, fps=FPS, size=size, audio=audio, seed_text=seed)
    )
    return path


def args_value(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def keyframe_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size and p.is_keyframe)


def nal_units(packet: bytes) -> list[bytes]:
    """The NAL units of an MP4 (length-prefixed, 4-byte lengths as x264 writes) H.264 packet."""
    units, i = [], 0
    while i + 4 <= len(packet):
        n = int.from_bytes(packet[i : i + 4], "big")
        units.append(packet[i + 4 : i + 4 + n])
        i += 4 + n
    assert i == len(packet)
    return units


def same_coded_pictures(copied: bytes, original: bytes) -> bool:
    """Equal packets up to parameter sets (SPS/PPS) that a muxer may repeat in-band."""

    def strip(units: list[bytes]) -> list[bytes]:
        return [u for u in units if u and u[0] & 0x1F not in (7, 8)]

    return strip(nal_units(copied)) == strip(nal_units(original))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three same-format clips with audio (1 s, 2 s, 1 s) and continuous frames between them."""
    tmp = tmp_path_factory.mktemp("clips")
    frames = [START, END, make_png((20, 120, 60)), make_png((120, 20, 120))]
    return [
        render(tmp, f"c{i}.mp4", duration=d, start=frames[i], end=frames[i + 1], seed=f"scene {i}")
        for i, d in enumerate([1.0, 2.0, 1.0])
    ]


# --- pure helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "ratio, short, expected",
    [
        ("16:9", 720, (1280, 720)),
        ("9:16", 720, (720, 1280)),
        ("16:9", 144, (256, 144)),
        ("9:16", 144, (144, 256)),
        ("16:9", 145, (256, 144)),
        ("16:9", 1080, (1920, 1080)),
    ],
)
def test_dimensions(ratio: str, short: int, expected: tuple[int, int]) -> None:
    w, h = media.dimensions(ratio, short)
    assert (w, h) == expected
    assert w % 2 == 0 and h % 2 == 0


def test_dimensions_rejects_unknown_ratio() -> None:
    with pytest.raises(InvalidInput) as exc:
        media.dimensions("4:3", 720)
    assert exc.value.field == "aspect_ratio" and "16:9" in str(exc.value)


def test_the_timeline_encodes_only_what_fades_and_crossfades_change() -> None:
    """Pure: which frames are copied and which encoded, from the clips' lengths and cut points."""
    every12 = [(0, 12, 24)] * 3
    # fades of 6 frames: the first clip's first group of pictures and the last one's last are encoded
    assert media.stitch_timeline([24, 24, 24], every12, fade_in=6, fade_out=6) == [
        media.Encode((media.Frames(0, 0, 12),)),
        media.Copy(0, 12, 24),
        media.Copy(1, 0, 24),
        media.Copy(2, 0, 12),
        media.Encode((media.Frames(2, 12, 24),)),
    ]
    assert media.stitch_timeline([24, 24], [(0, 24), (0, 24)]) == [media.Copy(0, 0, 24), media.Copy(1, 0, 24)]
    # a crossfade of 6 frames: each transition from the last cut before it to the first cut after it
    three = [(0, 12, 24, 36)] * 3
    timeline = media.stitch_timeline([36, 36, 36], three, crossfade=6)
    assert timeline == [
        media.Copy(0, 0, 24),
        media.Encode((media.Frames(0, 24, 30), media.Blend(0, 6), media.Frames(1, 6, 12))),
        media.Copy(1, 12, 24),
        media.Encode((media.Frames(1, 24, 30), media.Blend(1, 6), media.Frames(2, 6, 12))),
        media.Copy(2, 12, 36),
    ]
    assert sum(item.count for item in timeline) == 3 * 36 - 2 * 6
    # nothing copyable (clips that differ, or one keyframe each): bodies and transitions in jobs of their own
    assert media.stitch_timeline([36, 36], [None, (0, 12, 36)], crossfade=6) == [
        media.Encode((media.Frames(0, 0, 30),)),
        media.Encode((media.Blend(0, 6), media.Frames(1, 6, 12))),
        media.Copy(1, 12, 36),
    ]
    assert media.stitch_timeline([36, 36], [None, None], crossfade=6) == [
        media.Encode((media.Frames(0, 0, 30),)),
        media.Encode((media.Blend(0, 6),)),
        media.Encode((media.Frames(1, 6, 36),)),
    ]
    # a middle clip shorter than its two crossfades: only one filter graph expresses it
    assert media.stitch_timeline([36, 10, 36], three, crossfade=6) is None


def test_a_segment_is_its_pieces_frame_for_frame(tmp_path: Path) -> None:
    """A segment's frames are decoded in Python from the keyframe before each piece: the clips' own
    frames where nothing changes them, a blend frame by frame, a fade from black."""
    clips = [sweep_clip(tmp_path / f"p{i}.mp4", 3.0, i + 1) for i in range(2)]
    planes = [
        [np.frombuffer(f.to_ndarray(format="yuv420p").tobytes(), np.uint8) for f in av.open(str(c)).decode(video=0)]
        for c in clips
    ]
    job = media.Encode((media.Frames(0, 20, 30), media.Blend(0, 6), media.Frames(1, 6, 14)))
    got = [np.frombuffer(f, np.uint8) for f in media.segment_frames(clips, [36, 36], job, fps=FPS, size=SIZE)]
    assert len(got) == job.count == 10 + 6 + 8
    assert all(np.array_equal(got[k], planes[0][20 + k]) for k in range(10))  # from frame 20, past the keyframe at 12
    assert np.array_equal(got[10], planes[0][30])  # a blend starts on the outgoing clip ...
    for j in range(1, 6):  # ... and mixes in the next one, a sixth more each frame
        mix = planes[0][30 + j] * (1 - j / 6) + planes[1][j] * (j / 6)
        assert np.abs(got[10 + j].astype(np.float64) - mix).max() <= 1.0
    assert all(np.array_equal(got[16 + k], planes[1][6 + k]) for k in range(8))

    faded = [
        np.frombuffer(f, np.uint8)
        for f in media.segment_frames(clips, [36, 36], media.Encode((media.Frames(0, 0, 12),)), fps=FPS, size=SIZE, fade_in=0.5)
    ]
    luma = [float(f[: SIZE[0] * SIZE[1]].mean()) for f in faded]
    assert luma[0] == 16.0 and all(luma[k] < luma[k + 1] for k in range(6)) and np.array_equal(faded[6], planes[0][6])

    args = media.segment_args(tmp_path / "s.mp4", frames=24, fps=FPS, size=SIZE, look={"sar": "1/1", "color_primaries": 1})
    assert args_value(args, "-f") == "rawvideo" and args_value(args, "-s") == "256x144" and args_value(args, "-i") == "pipe:0"
    assert args_value(args, "-frames:v") == "24" and args_value(args, "-threads") == "1" and "-an" in args
    assert "setsar=1/1" in args_value(args, "-filter_complex") and args_value(args, "-color_primaries") == "1"


def test_crossfade_offsets_from_measured_durations() -> None:
    assert media.crossfade_offsets([2.0, 2.04, 1.96], 0.5) == [1.5, 3.04]
    assert media.crossfade_offsets([4.0], 0.5) == []


def test_crossfade_args_chain(tmp_path: Path) -> None:
    inputs = [(tmp_path / f"{i}.mp4", d, True) for i, d in enumerate([2.0, 2.04, 1.96])]
    args = media.crossfade_args(inputs, tmp_path / "out.mp4", crossfade=0.5, fps=24, size=(256, 144))
    graph = args_value(args, "-filter_complex")
    assert graph.count("xfade=") == 2
    assert "offset=1.5" in graph and "offset=3.04" in graph
    assert graph.count("acrossfade=") == 2
    assert args_value(args, "-c:a") == "aac"
    assert args_value(args, "-c:v") == "libx264"
    assert args.count("-i") == 3


def test_crossfade_args_without_audio_when_one_input_is_silent(tmp_path: Path) -> None:
    inputs = [(tmp_path / "a.mp4", 2.0, True), (tmp_path / "b.mp4", 2.0, False)]
    args = media.crossfade_args(inputs, tmp_path / "out.mp4", crossfade=0.5, fps=24, size=(256, 144))
    graph = args_value(args, "-filter_complex")
    assert "xfade=" in graph and "acrossfade" not in graph
    assert "-c:a" not in args
    with pytest.raises(InvalidInput):
        media.crossfade_args(inputs, tmp_path / "out.mp4", crossfade=0, fps=24, size=(256, 144))


@pytest.mark.parametrize("audio", [True, False])
def test_animatic_encoder_args(tmp_path: Path, audio: bool) -> None:
    args = motion.encoder_args(tmp_path / "o.mp4", frames=36, fps=24, size=(256, 144), audio=audio, tone_hz=220.0)
    assert args_value(args, "-f") == "rawvideo" and args_value(args, "-pix_fmt") == "yuv420p"
    assert args_value(args, "-s") == "256x144" and args_value(args, "-i") == "pipe:0"
    assert args_value(args, "-frames:v") == "36"
    assert "zoompan" not in " ".join(args) and ("-filter_complex" in args) is audio  # only the tone's fades
    assert args_value(args, "-movflags") == "+faststart"
    assert args_value(args, "-threads") == "1" and args_value(args, "-x264-params") == "rc-lookahead=5"
    assert ("aevalsrc" in " ".join(args)) is audio
    assert ("-c:a" in args) is audio
    if audio:
        assert args_value(args, "-ar") == "48000" and args_value(args, "-ac") == "2"
    start = Image.new("RGB", SIZE)
    frame = next(motion.clip_frames(start, start, frames=12, fps=12, motion="push_in", caption=None))
    assert len(frame) == SIZE[0] * SIZE[1] * 3 // 2  # one raw yuv420p frame
    with pytest.raises(InvalidInput):
        next(motion.clip_frames(start, start, frames=12, fps=12, motion="spin", caption=None))  # type: ignore[arg-type]


def test_motion_follows_the_prompt_else_the_hash() -> None:
    assert motion.motion_for("Camera: slow pan left over the hills") == "pan_left"
    assert motion.motion_for("a gentle pull-out, then a pan right") == "pull_out"
    assert motion.motion_for("Camera: still.\n\nCamera: slow push-ins") in motion.MOTIONS
    assert motion.motion_for("anything") == motion.motion_for("anything")
    assert {motion.motion_for(f"scene {i}") for i in range(40)} == set(motion.MOTIONS)


# --- the binary ---------------------------------------------------------------------------


def test_ffmpeg_runs() -> None:
    assert media.check_ffmpeg().startswith("ffmpeg version")
    assert Path(media.ffmpeg_exe()).exists()


@pytest.mark.parametrize("exe", ["/nonexistent/ffmpeg", "/bin/false"])
def test_missing_ffmpeg_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, exe: str) -> None:
    media.check_ffmpeg()  # a cached success for the real binary must not hide the problem
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", exe)
    for call in (media.check_ffmpeg, media.ffmpeg_exe):
        with pytest.raises(MediaError) as exc:
            call()
        message = str(exc.value)
        assert message.startswith("ffmpeg cannot run") and exe in message
        assert "install imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE" in message
    with pytest.raises(MediaError, match="ffmpeg cannot run"):
        motion.render_animatic_clip(START, END, duration_s=1, fps=FPS, size=SIZE, audio=False, seed_text="x")
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE")
    assert media.check_ffmpeg().startswith("ffmpeg version")


def test_every_process_is_started_by_the_one_runner() -> None:
    """Only media/runner.py starts processes: the stitch, the animatic's encoder, the previews and the
    ffmpeg checks all go through ``media.supervise`` (cancel, timeouts, messages in one place)."""
    core = Path(media.__file__).parents[1]
    starters = sorted(
        str(path.relative_to(core))
        for path in core.rglob("*.py")
        if any(word in path.read_text(encoding="utf-8") for word in ("import subprocess", "os.system", "os.spawn", "os.popen"))
    )
    assert starters == ["media/runner.py"]


def test_the_runner_feeds_stdin_logs_and_stops_when_cancelled(tmp_path: Path) -> None:
    exe = media.ffmpeg_exe()
    raw = ["-f", "rawvideo", "-pix_fmt", "gray", "-s", "16x16", "-r", "10", "-i", "pipe:0"]
    frames = [bytes([k]) * 256 for k in range(20)]
    done = media.supervise([exe, *raw, "-f", "null", "-"], what="fed", feed=iter(frames), log=tmp_path / "ok.log")
    assert done.returncode == 0 and done.fed and done.stdout == b""
    done.check("fed")  # no error
    # ffmpeg that stops reading: a broken pipe is a failure, with ffmpeg's words from the log
    bad = media.supervise(
        [exe, *raw, "-no_such_option", "1", "-f", "null", "-"], what="x", feed=iter(frames * 500), log=tmp_path / "bad.log"
    )
    with pytest.raises(MediaError, match=r"(?s)^bad input: ffmpeg exited with \d+: .*no_such_option"):
        bad.check("bad input")
    # in memory: stdout and stderr captured
    version = media.supervise([exe, "-version"], what="version")
    assert version.returncode == 0 and version.stdout.startswith(b"ffmpeg version")
    with pytest.raises(ValueError, match="log file"):
        media.supervise([exe, *raw, "-f", "null", "-"], what="no log", feed=iter(frames))

    token = CancelToken()

    def endless() -> Iterator[bytes]:
        for k in itertools.count():
            if k == 30:
                token.cancel("stop")
            yield frames[k % 20]

    target = str(tmp_path / "endless.mp4")
    with pytest.raises(Interrupted):
        media.encode_frames([*raw, "-c:v", "libx264", target], endless(), what="endless", log=tmp_path / "e.log", cancel=token)
    assert not [p for p in psutil.process_iter(["cmdline"]) if target in (p.info["cmdline"] or [])]  # no ffmpeg left


# --- probing ------------------------------------------------------------------------------


def test_probe_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(MediaError, match="garbage.mp4"):
        media.probe(bad)
    with pytest.raises(MediaError):
        media.probe_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="missing.mp4"):
        media.probe(tmp_path / "missing.mp4")


# --- animatic clips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, audio, duration",
    [
        ("slow push-in", True, 1.0),
        ("gentle pull-out", False, 1.0),
        ("slow pan left", True, 1.5),
        ("slow pan right", False, 2.0),
    ],
)
def test_rendered_clip_decodes_as_asked(tmp_path: Path, seed: str, audio: bool, duration: float) -> None:
    path = render(tmp_path, "clip.mp4", duration=duration, audio=audio, seed=seed)
    info = media.probe(path)
    frames = round(duration * FPS)
    assert (info.width, info.height) == SIZE
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.fps == pytest.approx(FPS)
    assert info.frames == frames
    assert abs(info.video_duration_s - duration) <= 1 / FPS
    assert abs(info.duration_s - duration) <= 1 / FPS
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == frames
    assert info.has_audio is audio
    if audio:
        assert (info.audio_codec, info.audio_channels, info.sample_rate) == ("aac", 2, 48000)
    first, last = media.read_frame(path, "first"), media.read_frame(path, "last")
    assert mean_abs_diff(first, png(START)) < 12
    assert mean_abs_diff(last, png(END)) < 12
    middle = media.read_frame(path, duration / 2)
    # Mid-clip the start frame is held under the camera move: no trace of the end frame yet.
    assert mean_abs_diff(middle, png(START)) < mean_abs_diff(middle, png(END)) - 40


def test_camera_moves_differ_mid_clip(tmp_path: Path) -> None:
    mids = [media.read_frame(render(tmp_path, f"{m}.mp4", audio=False, seed=m.replace("_", " ")), 0.5) for m in motion.MOTIONS]
    for i in range(len(mids)):
        for j in range(i + 1, len(mids)):
            assert mean_abs_diff(mids[i], mids[j]) > 1.0


def test_clip_is_deterministic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    a = motion.render_animatic_clip(START, END, duration_s=1, fps=FPS, size=SIZE, audio=True, seed_text="s")
    b = motion.render_animatic_clip(START, END, duration_s=1, fps=FPS, size=SIZE, audio=True, seed_text="s")
    assert media.probe_bytes(a).frames == FPS
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
    assert list(scratch.iterdir()) == []


def test_clip_from_differently_sized_keyframes(tmp_path: Path) -> None:
    path = render(
        tmp_path, "c.mp4", audio=False, start=make_png((10, 10, 10), (320, 200)), end=make_png((90, 90, 90), (200, 120))
    )
    assert (media.probe(path).width, media.probe(path).height) == SIZE


@pytest.mark.parametrize("kwargs", [{"duration_s": 0}, {"fps": 0}, {"size": (255, 144)}])
def test_clip_rejects_bad_parameters(kwargs: dict) -> None:
    params = {"duration_s": 1.0, "fps": FPS, "size": SIZE, **kwargs}
    with pytest.raises(InvalidInput):
        motion.render_animatic_clip(START, END, audio=False, seed_text="x", **params)


# --- stitching ----------------------------------------------------------------------------


def test_stitch_concat_is_a_stream_copy_with_audio(tmp_path: Path, clips: list[Path]) -> None:
    out = tmp_path / "final.mp4"
    result = media.stitch(clips, out)
    assert result.method == "copy" and result.notes == ()
    info = media.probe(out)
    assert info == media.MediaInfo(**{k: getattr(result, k) for k in media.MediaInfo.__dataclass_fields__})
    assert info.has_audio and info.audio_codec == "aac" and info.video_codec == "h264"
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    assert info.video_duration_s == pytest.approx(4.0, abs=1 / FPS)
    # Stream copy: the very same compressed video packets, in order (ffmpeg may repeat the
    # parameter sets in front of each clip's keyframe; the coded picture is untouched).
    copied, originals = video_packets(out), [p for c in clips for p in video_packets(c)]
    assert len(copied) == len(originals) == 4 * FPS
    assert all(same_coded_pictures(a, b) for a, b in zip(copied, originals, strict=True))
    # Only keyframes may differ (parameter sets repeated in-band); every other packet is byte-equal.
    keyframes = sum(keyframe_count(c) for c in clips)
    assert len(clips) <= keyframes <= 2 * len(clips)
    assert sum(a == b for a, b in zip(copied, originals, strict=True)) >= len(originals) - keyframes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.mp4"]


def test_stitch_copes_with_awkward_file_names(tmp_path: Path, clips: list[Path]) -> None:
    named = []
    for i, clip in enumerate(clips[:2]):
        target = tmp_path / f"it's clip {i}.mp4"
        target.write_bytes(clip.read_bytes())
        named.append(target)
    result = media.stitch(named, tmp_path / "final cut.mp4")
    assert result.method == "copy" and result.video_duration_s == pytest.approx(3.0, abs=1 / FPS)


def test_stitch_crossfade_keeps_audio(tmp_path: Path, clips: list[Path]) -> None:
    out = tmp_path / "final.mp4"
    result = media.stitch(clips, out, crossfade=0.5)
    assert result.method == "crossfade"
    info = media.probe(out)
    assert info.has_audio and info.has_video
    assert info.duration_s == pytest.approx(4.0 - 2 * 0.5, abs=0.1)
    assert (info.width, info.height) == SIZE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.mp4"]


def test_stitch_rejects_a_crossfade_longer_than_a_clip(tmp_path: Path, clips: list[Path]) -> None:
    with pytest.raises(InvalidInput) as exc:
        media.stitch(clips, tmp_path / "final.mp4", crossfade=1.0)
    assert exc.value.field == "crossfade"
    with pytest.raises(InvalidInput):
        media.stitch([], tmp_path / "final.mp4")
    assert list(tmp_path.iterdir()) == []


def test_stitch_reencodes_mismatched_clips(tmp_path: Path, clips: list[Path]) -> None:
    odd = render(tmp_path, "odd.mp4", size=(320, 180), audio=True)
    out = tmp_path / "final.mp4"
    result = media.stitch([clips[0], odd], out)
    assert result.method == "reencode"
    assert any("re-encoded" in n and "320x180" in n for n in result.notes)
    info = media.probe(out)
    assert (info.width, info.height) == SIZE
    assert info.has_audio
    assert info.video_duration_s == pytest.approx(2.0, abs=1 / FPS)


def test_stitch_failure_leaves_no_partial_output(tmp_path: Path, clips: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "final.mp4"
    out.write_bytes(b"previous final")
    real = media.segment_args

    def broken(*args: object, **kwargs: object) -> list[str]:
        good = real(*args, **kwargs)  # type: ignore[arg-type]
        return [*good[:-2], "-no_such_option", "1", *good[-2:]]

    monkeypatch.setattr(stitcher, "segment_args", broken)  # where the stitch looks it up
    with pytest.raises(MediaError) as exc:
        media.stitch(clips, out, fade_in=0.5)  # the fade is encoded by ffmpeg
    assert "no_such_option" in str(exc.value)  # ffmpeg's own words reach the user
    assert out.read_bytes() == b"previous final"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.mp4"]

    def half_written(video: object, audio: object, target: Path, **kwargs: object) -> None:
        target.write_bytes(b"half a video")
        raise MediaError("the disk is full")

    monkeypatch.setattr(stitcher, "_splice", half_written)
    with pytest.raises(MediaError, match="disk is full"):
        media.stitch(clips, out)
    assert out.read_bytes() == b"previous final"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.mp4"]


def test_stitch_refuses_undecodable_clip(tmp_path: Path, clips: list[Path]) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(MediaError, match="bad.mp4"):
        media.stitch([clips[0], bad], tmp_path / "final.mp4")
    assert not (tmp_path / "final.mp4").exists()


# --- contact sheet ------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [None, ["frame 0", "frame 1", "frame 2", "frame 3", "a very long label " * 5]])
def test_contact_sheet_grid(labels: list[str] | None) -> None:
    pngs = [make_png((i * 40, 80, 200 - i * 30), (64, 36)) for i in range(5)]
    sheet = png(media.contact_sheet(pngs, columns=4, thumb_width=80, labels=labels))
    assert sheet.format == "PNG"
    gap = media.SHEET_GAP
    label_h = media.contact_sheet_size(1, columns=1, thumb_size=(80, 45), labels=True)[1] - 45 - 2 * gap if labels else 0
    assert sheet.size == (4 * 80 + 5 * gap, 2 * (45 + label_h) + 3 * gap)


def test_contact_sheet_input_errors() -> None:
    with pytest.raises(InvalidInput):
        media.contact_sheet([])
    with pytest.raises(InvalidInput):
        media.contact_sheet([START], labels=["a", "b"])
    with pytest.raises(MediaError):
        media.contact_sheet([b"not a png"])


def decoded_frames(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as c:
        return [f.to_image() for f in c.decode(c.streams.video[0])]


def test_segmented_crossfade_matches_the_single_filter_graph(tmp_path: Path, clips: list[Path]) -> None:
    """The crossfade is encoded in pieces (bodies, transitions, audio) to bound memory; frame for
    frame it must show what one xfade graph over all clips shows."""
    infos = [media.probe(c) for c in clips]
    inputs = [(c, i.video_duration_s, i.has_audio) for c, i in zip(clips, infos, strict=True)]
    reference = tmp_path / "reference.mp4"
    media.run_ffmpeg(media.crossfade_args(inputs, reference, crossfade=0.5, fps=FPS, size=SIZE), what="reference")

    out = tmp_path / "out" / "final.mp4"
    result = media.stitch(clips, out, crossfade=0.5)
    assert result.method == "crossfade" and not any("one filter graph" in n for n in result.notes)
    ours, theirs = decoded_frames(out), decoded_frames(reference)
    assert len(ours) == len(theirs) == (12 + 24 + 12) - 2 * 6
    diffs = [mean_abs_diff(a, b) for a, b in zip(ours, theirs, strict=True)]
    assert max(diffs) < 4.0, diffs
    # the transitions really blend: the middle frame of the first fade differs from both sides
    assert mean_abs_diff(ours[9], ours[5]) > 10 and mean_abs_diff(ours[9], ours[12]) > 10
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        audio_s = float(audio.duration * audio.time_base)
    assert audio_s == pytest.approx(len(ours) / FPS, abs=0.05)
    assert sorted(p.name for p in out.parent.iterdir()) == ["final.mp4"]


def test_crossfade_falls_back_to_one_graph_when_fades_would_overlap(tmp_path: Path, clips: list[Path]) -> None:
    # A 1 s middle clip cannot hold a 0.75 s fade-in and a 0.75 s fade-out without them overlapping.
    short_middle = [clips[0], clips[2], tmp_path / "again.mp4"]
    short_middle[2].write_bytes(clips[0].read_bytes())
    assert media.stitch_timeline([FPS] * 3, [None] * 3, crossfade=9) is None
    result = media.stitch(short_middle, tmp_path / "final.mp4", crossfade=0.75)
    assert any("one filter graph" in n for n in result.notes)
    assert result.video_duration_s == pytest.approx(3.0 - 2 * 0.75, abs=1 / FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.mp4", "final.mp4"]


# --- joining by packets -------------------------------------------------------------------


def decoded_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])


def test_copied_audio_is_each_clips_own_and_never_drifts(tmp_path: Path) -> None:
    """2 s clips hold 93.75 AAC frames each: the audio is joined by whole packets, so each clip's
    track starts within half a frame of its video's first frame, and the error does not add up."""
    clips = [sweep_clip(tmp_path / f"s{i}.mp4", 2.0, i + 1) for i in range(4)]
    out = tmp_path / "final.mp4"
    result = media.stitch(clips, out)
    assert result.method == "copy" and result.notes == ()
    got = decoded_audio(out)
    for i, clip in enumerate(clips):
        want = decoded_audio(clip)[4096:90000]  # away from the cuts
        start = i * 96000  # where the clip's video starts, in samples
        lag = min(range(-1100, 1101), key=lambda d: float(np.abs(got[start + 4096 + d : start + 90000 + d] - want).sum()))
        assert abs(lag) <= 512, (i, lag)  # within half an AAC frame (10.7 ms) of its picture
        assert np.abs(got[start + 4096 + lag : start + 90000 + lag] - want).max() < 1e-5  # its packets, decoded alike
    with av.open(str(out)) as c:
        a, v = c.streams.audio[0], c.streams.video[0]
        assert a.start_time == 0 and v.start_time == 0
        assert float(a.duration * a.time_base) == pytest.approx(8.0, abs=1e-3)  # ends with the video
        assert float(v.duration * v.time_base) == pytest.approx(8.0, abs=1e-3)


def test_a_crossfade_encodes_only_around_its_transitions(tmp_path: Path) -> None:
    """3 s clips with a keyframe a second: each 0.5 s crossfade is encoded from the keyframe before
    it to the keyframe after it; every other frame is the clips' own, and the frames match what
    one xfade graph over all the clips shows."""
    clips = [sweep_clip(tmp_path / f"x{i}.mp4", 3.0, i + 1) for i in range(3)]
    out = tmp_path / "final.mp4"
    result = media.stitch(clips, out, crossfade=0.5)
    assert result.method == "crossfade" and "3.00 of 8.00 s re-encoded, the rest copied" in result.notes
    reference = tmp_path / "reference.mp4"
    inputs = [(c, 3.0, True) for c in clips]
    media.run_ffmpeg(media.crossfade_args(inputs, reference, crossfade=0.5, fps=FPS, size=SIZE), what="reference")
    ours, theirs = decoded_frames(out), decoded_frames(reference)
    assert len(ours) == len(theirs) == 3 * 36 - 2 * 6
    assert max(mean_abs_diff(a, b) for a, b in zip(ours, theirs, strict=True)) < 4.0
    originals = [decoded_frames(c) for c in clips]
    copied = [(0, 0, 24, 0), (1, 12, 24, 42), (2, 12, 36, 72)]  # (clip, first, end, where it starts in the output)
    for clip, first, end, at in copied:
        for k in range(first, end):
            assert np.array_equal(np.asarray(ours[at + k - first]), np.asarray(originals[clip][k])), (clip, k)
    assert mean_abs_diff(ours[33], originals[0][33]) > 10  # the middle of the first blend is neither clip
