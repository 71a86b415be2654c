"""The artifact store and the one place that knows the artifact layout.

    projects/<id>/storyboard.json
    projects/<id>/characters/<name>_<fp>.png    (a character's reference sheet; name made path-safe)
    projects/<id>/keyframes/frame_<k>_<fp>.png  (frame 0 starts scene 1, frame k ends scene k)
    projects/<id>/clips/scene_<n>_<fp>.mp4      (n: the scene number, from 1)
    projects/<id>/contact_sheet.png
    projects/<id>/final.mp4

Every path is built from a validated project id and a relative path that is checked to stay
inside the project's folder. Writes are atomic: bytes go to a temporary name and are renamed
(local) or put in one request (object stores), so a half-written file is never visible."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec

from vidpipe_core.errors import ConfigurationError, InvalidInput, one_line, redact_url, scrub_url
from vidpipe_core.ids import validate_project_id
from vidpipe_core.scratch import owner_is_gone, owner_tag


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


PARTIAL = ".partial"
_PARTIAL_OWNER = re.compile(r"\.(\d+@[A-Za-z0-9._-]+)@[0-9a-f]{8}\.partial$")


def _partial_name(target: str) -> str:
    """``<target>.<pid>@<host>@<random>.partial``: whose write it is, so a dead writer's leftovers can go."""
    return f"{target}.{owner_tag()}@{uuid.uuid4().hex[:8]}{PARTIAL}"


class Layout:
    """Relative artifact paths of one project."""

    STORYBOARD = "storyboard.json"
    FINAL = "final.mp4"
    CONTACT_SHEET = "contact_sheet.png"

    @staticmethod
    def character_sheet(name: str, fingerprint: str) -> str:
        """A character's reference sheet. The name comes from a model, so only a slug of it (lower-case
        letters, digits and ``-``, at most 40 characters) reaches the path; the fingerprint covers
        the name, so two names with one slug still get two files."""
        return confine(f"characters/{path_slug(name)}_{fingerprint[:12]}.png")

    @staticmethod
    def keyframe(frame_index: int, fingerprint: str) -> str:
        return f"keyframes/frame_{frame_index:03d}_{fingerprint[:12]}.png"

    @staticmethod
    def clip(scene_index: int, fingerprint: str) -> str:
        """Named by the scene's number as people count (scene_002_… is the clip captioned "Scene 2");
        the ledger keeps each clip's path, so files named before this rule (0-based) stay valid."""
        return f"clips/scene_{scene_index + 1:03d}_{fingerprint[:12]}.mp4"


def path_slug(text: str, limit: int = 40) -> str:
    """A file-name-safe slug of free text: lower-case ASCII letters and digits joined by ``-``."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return slug or "unnamed"


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


def store_error(url: str, exc: BaseException) -> ConfigurationError:
    """One line for an artifact store that cannot be opened: the setting, its value without
    credentials, the cause, and what to change."""
    shown = redact_url(url)
    cause = scrub_url(one_line(exc), url)
    if isinstance(exc, ImportError):
        fix = "install the fsspec package for that protocol (e.g. `pip install s3fs` for s3://, gcsfs for gs://)"
    elif isinstance(exc, OSError):
        fix = "point it at a folder this user can create and write (default: <VIDPIPE_DATA_DIR>/artifacts)"
    else:
        fix = "use a local folder or an fsspec URL such as s3://bucket/prefix, gs://bucket/prefix or memory://name"
    return ConfigurationError(f"VIDPIPE_ARTIFACTS_URL={shown} cannot be used as the artifact store: {cause}; {fix}")


class ArtifactStore:
    """Bytes of every project under one fsspec URL (a local folder by default)."""

    def __init__(self, url: str) -> None:
        self.url = str(url)
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url)
            self.root = root.rstrip("/")
            self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
            if self.is_local:
                Path(self.root).mkdir(parents=True, exist_ok=True)
                if not os.access(self.root, os.W_OK | os.X_OK):
                    raise PermissionError(f"{self.root} is not writable")
        except Exception as exc:
            raise store_error(self.url, exc) from exc

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
            tmp = _partial_name(target)
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
            tmp = _partial_name(target)
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

    def clean_partials(self, project_id: str) -> list[str]:
        """Remove half-written files of dead writers in a project's folder (local stores; an
        object store never shows a half-written object). Returns the removed relative paths."""
        if not self.is_local:
            return []
        root = Path(self.project_root(project_id))
        removed = []
        for path in root.rglob(f"*{PARTIAL}") if root.is_dir() else ():
            found = _PARTIAL_OWNER.search(path.name)
            if found and path.is_file() and not path.is_symlink() and owner_is_gone(found.group(1)):
                path.unlink(missing_ok=True)
                removed.append(str(path.relative_to(root)))
        return removed

    def delete_project(self, project_id: str) -> None:
        root = self.project_root(project_id)
        if self.fs.exists(root):
            self.fs.rm(root, recursive=True)
