"""The intake of a person's own files: which images and music tracks are accepted (by what they
are, never by their names), where they may be read from, and the messages that say what to change."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidpipe_core.config import Settings
from vidpipe_core.errors import InvalidInput
from vidpipe_core.userfiles import image_mime, take_image, take_music


def _track(path: Path, fmt: str, codec: str, rate: int = 48000) -> Path:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "stereo"
        tone = (np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate) * 0.3).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


@pytest.mark.parametrize(
    ("name", "fmt", "codec", "ext"),
    [("a.mp3", "mp3", "libmp3lame", ".mp3"), ("a.m4a", "ipod", "aac", ".m4a"), ("a.ogg", "ogg", "libopus", ".ogg")],
)
def test_mp3_m4a_and_ogg_tracks_are_accepted_whatever_their_names(tmp_path, name, fmt, codec, ext):
    track = _track(tmp_path / name, fmt, codec)
    renamed = track.rename(tmp_path / "track.bin")  # judged by what it is
    taken = take_music("music", renamed.name, Settings(), tmp_path)
    assert taken.ext == ext and taken.size == renamed.stat().st_size and taken.source == str(renamed)


def test_audio_of_another_kind_and_files_without_audio_are_refused(tmp_path):
    _track(tmp_path / "a.flac", "flac", "flac")
    with pytest.raises(InvalidInput, match=r"is flac audio in a flac file \(allowed: MP3, WAV, M4A \(AAC\) or OGG"):
        take_music("music", "a.flac", Settings(), tmp_path)
    Image.new("RGB", (300, 300)).save(tmp_path / "cover.mp3", format="PNG")
    with pytest.raises(InvalidInput, match="has no audio stream"):
        take_music("music", "cover.mp3", Settings(), tmp_path)


@pytest.mark.parametrize(
    ("fmt", "mime", "ext"), [("PNG", "image/png", ".png"), ("JPEG", "image/jpeg", ".jpg"), ("WEBP", "image/webp", ".webp")]
)
def test_png_jpeg_and_webp_images_are_accepted_and_sent_as_what_they_are(tmp_path, fmt, mime, ext):
    out = io.BytesIO()
    Image.new("RGB", (256, 512), (1, 2, 3)).save(out, format=fmt)
    (tmp_path / "face.img").write_bytes(out.getvalue())
    assert take_image("character 'A'", "face.img", Settings(), tmp_path).ext == ext
    assert image_mime(out.getvalue()) == mime


def test_a_gif_or_a_folder_is_refused_naming_what_it_is(tmp_path):
    Image.new("RGB", (300, 300)).save(tmp_path / "a.png", format="GIF")
    with pytest.raises(InvalidInput, match=r"'a.png' is a GIF image \(allowed: PNG, JPEG or WebP\)"):
        take_image("character 'A'", "a.png", Settings(), tmp_path)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(InvalidInput, match="is not a regular file"):
        take_image("character 'A'", "dir.png", Settings(), tmp_path)


def test_input_roots_replace_the_default_folder_and_links_are_followed_before_the_check(tmp_path):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    Image.new("RGB", (300, 300)).save(other / "a.png")
    Image.new("RGB", (300, 300)).save(allowed / "b.png")
    (other / "b-link.png").symlink_to(allowed / "b.png")
    settings = Settings(input_roots=(str(allowed),))
    # Read from the folder the request came from (``base``), but only inside the roots.
    with pytest.raises(InvalidInput, match=f"allowed: {allowed}"):
        take_image("character 'A'", "a.png", settings, other)
    assert take_image("character 'A'", "b-link.png", settings, other).source == str(allowed / "b.png")
    assert take_image("character 'A'", str(allowed / "b.png"), Settings(), allowed).sha256
    assert json.loads(Settings(input_roots=("/srv/in",)).model_dump_json())["input_roots"] == ["/srv/in"]
