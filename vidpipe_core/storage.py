"""The artifact store and the one place that knows the artifact layout.

    projects/<id>/storyboard.json
    projects/<id>/keyframes/frame_<k>_<fp>.png
    projects/<id>/clips/scene_<i>_<fp>.mp4
    projects/<id>/contact_sheet.png
    projects/<id>/final.mp4

Every path is built from a validated project id and a relative path that is checked to stay
inside the project's folder. Writes are atomic: bytes go to a temporary name and are renamed
(local) or put in one request (object stores), so a half-written file is never visible."""
from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec

from vidpipe_core.errors import InvalidInput
from vidpipe_core.ids import validate_project_id


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Layout:
    """Relative artifact paths of one project."""

    STORYBOARD = "storyboard.json"
    FINAL = "final.mp4"
    CONTACT_SHEET = "contact_sheet.png"

    @staticmethod
    def keyframe(frame_index: int, fingerprint: str) -> str:
        return f"keyframes/frame_{frame_index:03d}_{fingerprint[:12]}.png"

    @staticmethod
    def clip(scene_index: int, fingerprint: str) -> str:
        return f"clips/scene_{scene_index:03d}_{fingerprint[:12]}.mp4"


def confine(relpath: str) -> str:
    """Normalise a relative artifact path and refuse anything that would leave the project folder."""
    if not isinstance(relpath, str) or not relpath or "\x00" in relpath or "\\" in relpath:
        raise InvalidInput("path", f"{relpath!r} is not a valid artifact path")
    if relpath.startswith("/") or "://" in relpath:
        raise InvalidInput("path", f"{relpath!r} must be relative to the project folder")
    norm = posixpath.normpath(relpath)
    if norm in (".", "..") or norm.startswith("../") or any(part == ".." for part in norm.split("/")):
        raise InvalidInput("path", f"{relpath!r} leaves the project folder")
    return norm


class ArtifactStore:
    """Bytes of every project under one fsspec URL (a local folder by default)."""

    def __init__(self, url: str) -> None:
        self.url = str(url)
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = root.rstrip("/")
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    # paths ----------------------------------------------------------------------------
    def project_root(self, project_id: str) -> str:
        return f"{self.root}/projects/{validate_project_id(project_id)}"

    def path(self, project_id: str, relpath: str) -> str:
        return f"{self.project_root(project_id)}/{confine(relpath)}"

    def uri(self, project_id: str, relpath: str) -> str:
        p = self.path(project_id, relpath)
        return p if self.is_local else self.fs.unstrip_protocol(p)

    # io -------------------------------------------------------------------------------
    def exists(self, project_id: str, relpath: str) -> bool:
        return self.fs.exists(self.path(project_id, relpath))

    def read_bytes(self, project_id: str, relpath: str) -> bytes:
        return self.fs.cat_file(self.path(project_id, relpath))

    def write_bytes(self, project_id: str, relpath: str, data: bytes) -> str:
        target = self.path(project_id, relpath)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.{uuid.uuid4().hex}.partial"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        else:
            self.fs.pipe_file(target, data)
        return target

    def put_file(self, project_id: str, relpath: str, local_path: str | Path) -> str:
        """Move a finished local file into the store atomically."""
        target = self.path(project_id, relpath)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.{uuid.uuid4().hex}.partial"
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, target)
        else:
            self.fs.put_file(str(local_path), target)
        return target

    @contextmanager
    def local_copy(self, project_id: str, relpath: str) -> Iterator[Path]:
        """A local filesystem path for tools like ffmpeg (the file itself when the store is local)."""
        src = self.path(project_id, relpath)
        if self.is_local:
            yield Path(src)
            return
        with tempfile.TemporaryDirectory(prefix="vidpipe-") as d:
            local = Path(d) / posixpath.basename(src)
            self.fs.get_file(src, str(local))
            yield local

    def delete_project(self, project_id: str) -> None:
        root = self.project_root(project_id)
        if self.fs.exists(root):
            self.fs.rm(root, recursive=True)
