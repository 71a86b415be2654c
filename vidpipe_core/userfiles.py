"""A person's own files in a project: character images and a music track.

One intake for both kinds: where a file may be read from (`allowed_roots`: VIDPIPE_INPUT_ROOTS, else
the folder the request came from; symlinks resolved first; ``s3://`` only when the artifacts are on
S3), what it must be (`check_image`, `check_music`), its sha256, and its copy into the project
folder (`copy_into_project`, at registration, atomically, checked against the digest taken when the
request was judged). Everything here runs before a project is written or paid for: a refused file
is one InvalidInput naming the field and what to change."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidpipe_core.config import Settings
from vidpipe_core.errors import ConfigurationError, InvalidInput

if TYPE_CHECKING:
    from vidpipe_core.schemas import GivenFile, ProjectSpec
    from vidpipe_core.storage import ArtifactStore

MB = 1024 * 1024
IMAGE_MAX_BYTES = 20 * MB
IMAGE_MIN_SHORT_SIDE = 256
MUSIC_MAX_BYTES = 100 * MB
IMAGE_FORMATS = {"PNG": (".png", "image/png"), "JPEG": (".jpg", "image/jpeg"), "WEBP": (".webp", "image/webp")}
# PyAV's container name -> (extension, the audio codecs accepted in it)
MUSIC_FORMATS: dict[str, tuple[str, frozenset[str]]] = {
    "mp3": (".mp3", frozenset({"mp3", "mp3float"})),
    "wav": (".wav", frozenset({"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_u8", "pcm_s16be"})),
    "mov,mp4,m4a,3gp,3g2,mj2": (".m4a", frozenset({"aac"})),
    "ogg": (".ogg", frozenset({"vorbis", "opus", "libvorbis", "libopus"})),
}
MUSIC_KINDS = "MP3, WAV, M4A (AAC) or OGG (Vorbis/Opus)"


@dataclass(frozen=True)
class Intake:
    """A user's file as judged at `new`: where it is read from (absolute path or s3:// URL), its
    bytes' digest and size, and the extension its copy gets."""

    source: str
    sha256: str
    size: int
    ext: str


def image_mime(data: bytes) -> str:
    """The MIME type of PNG, JPEG or WebP bytes (from their magic numbers); PNG when unknown."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def _is_url(text: str) -> bool:
    return "://" in text


def allowed_roots(settings: Settings, base: Path) -> list[str]:
    """Where files may be read from: VIDPIPE_INPUT_ROOTS (folders resolved, s3:// prefixes), else
    ``base`` (the working folder, or the inbox folder for inbox files)."""
    roots = list(settings.input_roots) or [str(base)]
    return [r.rstrip("/") + "/" if _is_url(r) else str(Path(r).expanduser().resolve()) for r in roots]


def _store_is_s3(settings: Settings) -> bool:
    return settings.resolved_artifacts_url.startswith(("s3://", "s3a://"))


def _locate(field: str, ref: str, settings: Settings, base: Path) -> str:
    """``ref`` as an absolute path (symlinks resolved) or an s3:// URL, refused when outside the
    allowed roots."""
    roots = allowed_roots(settings, base)
    if _is_url(ref):
        if not ref.startswith("s3://"):
            raise InvalidInput(field, f"{ref!r} is not a file path or an s3:// URL")
        if not _store_is_s3(settings):
            raise InvalidInput(field, f"{ref!r}: s3:// files are read only when the artifacts are on S3; give a local path")
        if not any(ref.startswith(r) for r in roots if _is_url(r)):
            raise InvalidInput(
                field, f"{ref!r} is outside the places files may be read from; add its prefix to VIDPIPE_INPUT_ROOTS"
            )
        return ref
    path = (base / Path(ref).expanduser()).resolve()
    for root in (Path(r) for r in roots if not _is_url(r)):
        if path == root or root in path.parents:
            return str(path)
    allowed = ", ".join(roots)
    raise InvalidInput(
        field, f"{ref!r} is outside the folders files may be read from; move it there or set VIDPIPE_INPUT_ROOTS", allowed
    )


def _read(field: str, source: str, limit: int) -> bytes:
    """The bytes of ``source``, refused when missing, unreadable or larger than ``limit`` (checked
    before reading)."""
    try:
        if _is_url(source):
            import fsspec

            fs, key = fsspec.core.url_to_fs(source)
            size = int(fs.size(key))
            if size > limit:
                raise InvalidInput(field, f"{source!r} is {size / MB:.1f} MB", f"at most {limit // MB} MB")
            data = fs.cat_file(key)
        else:
            if Path(source).exists() and not Path(source).is_file():  # a folder, a FIFO that would block
                raise InvalidInput(field, f"{source!r} is not a regular file")
            with open(source, "rb") as fh:
                st = os.fstat(fh.fileno())
                if st.st_size > limit:
                    raise InvalidInput(field, f"{source!r} is {st.st_size / MB:.1f} MB", f"at most {limit // MB} MB")
                data = fh.read(limit + 1)
    except InvalidInput:
        raise
    except FileNotFoundError:
        raise InvalidInput(field, f"{source!r} does not exist") from None
    except OSError as exc:
        raise InvalidInput(field, f"{source!r} cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    except ValueError as exc:
        raise InvalidInput(field, f"{source!r} cannot be read ({exc.__class__.__name__})") from None
    if len(data) > limit:
        raise InvalidInput(field, f"{source!r} is larger than {limit // MB} MB", f"at most {limit // MB} MB")
    if not data:
        raise InvalidInput(field, f"{source!r} is empty")
    return bytes(data)


def check_image(field: str, source: str, data: bytes) -> str:
    """The extension of an image a character's sheet may be: PNG, JPEG or WebP, whole, at least
    IMAGE_MIN_SHORT_SIDE pixels on its short side."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            kind = im.format or ""
            im.load()
            width, height = im.size
    except Exception:
        raise InvalidInput(field, f"{source!r} is not a readable PNG, JPEG or WebP image") from None
    if kind not in IMAGE_FORMATS:
        raise InvalidInput(field, f"{source!r} is a {kind or 'unknown'} image", "PNG, JPEG or WebP")
    if min(width, height) < IMAGE_MIN_SHORT_SIDE:
        raise InvalidInput(
            field, f"{source!r} is {width}x{height} pixels, too small", f"at least {IMAGE_MIN_SHORT_SIDE} px on its short side"
        )
    return IMAGE_FORMATS[kind][0]


def check_music(field: str, source: str, data: bytes) -> str:
    """The extension of a music track: a container and codec of MUSIC_FORMATS with an audio stream
    that decodes."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            kind = container.format.name
            streams = list(container.streams.audio)
            if not streams:
                raise InvalidInput(field, f"{source!r} has no audio stream", MUSIC_KINDS)
            codec = streams[0].codec_context.name
            decoded = next(iter(container.decode(streams[0])), None)
    except InvalidInput:
        raise
    except Exception:
        raise InvalidInput(field, f"{source!r} is not a readable audio file", MUSIC_KINDS) from None
    found = MUSIC_FORMATS.get(kind)
    if found is None or codec not in found[1]:
        raise InvalidInput(field, f"{source!r} is {codec} audio in a {kind.split(',')[0]} file", MUSIC_KINDS)
    if decoded is None:
        raise InvalidInput(field, f"{source!r} holds no audio that decodes", MUSIC_KINDS)
    return found[0]


def _take(field: str, ref: str, settings: Settings, base: Path, limit: int, check: Callable[[str, str, bytes], str]) -> Intake:
    """A file as the request names it, judged: where it is, what it is (``check``), its digest."""
    source = _locate(field, ref, settings, base)
    data = _read(field, source, limit)
    ext = check(field, ref, data)
    return Intake(source, hashlib.sha256(data).hexdigest(), len(data), ext)


def take_image(field: str, ref: str, settings: Settings, base: Path) -> Intake:
    """A character image as the request names it, judged."""
    return _take(field, ref, settings, base, IMAGE_MAX_BYTES, check_image)


def take_music(field: str, ref: str, settings: Settings, base: Path) -> Intake:
    """A music track as the request names it, judged."""
    return _take(field, ref, settings, base, MUSIC_MAX_BYTES, check_music)


def given_files(spec: ProjectSpec) -> Iterable[GivenFile]:
    """Every user file of ``spec``: the characters' images, then the music."""
    for character in spec.characters:
        if character.image is not None:
            yield character.image
    if spec.music is not None:
        yield spec.music


def copy_into_project(store: ArtifactStore, spec: ProjectSpec) -> None:
    """Copy each of ``spec``'s user files into the project folder (an atomic write each), read again
    from where it was judged and refused unless it still has the digest recorded then."""
    for given in given_files(spec):
        if not given.source:
            continue
        limit = MUSIC_MAX_BYTES if given is spec.music else IMAGE_MAX_BYTES
        data = _read("file", given.source, limit)
        if hashlib.sha256(data).hexdigest() != given.sha256:
            raise InvalidInput("file", f"{given.source!r} changed while the project was registered; register it again")
        store.write_bytes(spec.id, given.path, data)


@contextmanager
def music_file(store: ArtifactStore, spec: ProjectSpec) -> Iterator[Path | None]:
    """The project's music track as a local file for ffmpeg (None without music), checked against
    the sha256 recorded at `new`; a copy that no longer matches is refused (vidpipe cannot make
    the person's file again), naming what to do."""
    if spec.music is None:
        yield None
        return
    from vidpipe_core.storage import sha256_file

    try:
        with store.local_copy(spec.id, spec.music.path) as local:
            if sha256_file(local) != spec.music.sha256:
                raise ConfigurationError(
                    f"project {spec.id}: the copy of your music ({spec.music.path}) is damaged; "
                    "register the project again with --music"
                )
            yield local
    except FileNotFoundError:
        raise ConfigurationError(
            f"project {spec.id}: the copy of your music ({spec.music.path}) is missing; register the project again with --music"
        ) from None
