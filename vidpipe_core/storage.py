"""The artifact store and the one place that knows the artifact layout.

    projects/<id>/storyboard.json
    projects/<id>/characters/<name>_<fp>.png    (a character's reference sheet; name made path-safe)
    projects/<id>/keyframes/frame_<k>_<fp>.png  (frame 0 starts scene 1, frame k ends scene k)
    projects/<id>/clips/scene_<n>_<fp>.mp4      (n: the scene number, from 1)
    projects/<id>/contact_sheet.png
    projects/<id>/final.mp4
    superseded/<id>/<UTC time>-<tag>/           (an earlier project's folder, see ``set_aside``)

Every path is built from a validated project id and a relative path that is checked to stay
inside the project's folder (on an object store: under the key prefix ``<root>/projects/<id>/``).

Atomic writes. On a local folder bytes go to a temporary name ``<target>.<pid>@<host>@<rand>.partial``
and are renamed; ``clean_partials`` removes those of dead writers. On an object store (S3, MinIO,
Ceph, R2, GCS) each write is one PUT, or one multipart upload for large files, straight to its
final key. This deliberately deviates from "write a temporary key, then copy it": these stores
show an object only once its PUT or multipart upload completes, never a part of it, and the
copy step of the temporary-key scheme relies on that very guarantee for the copy itself, so it
adds no safety; it would cost a second server-side write of every byte, and a writer that dies
between the two steps leaves a visible temporary object behind. What a dead writer can leave
here is an unfinished multipart upload: invisible to readers, but billed for its parts.
``clean_partials`` (run at the start of every step) aborts the project's uploads started more
than ``STALE_UPLOAD_S`` ago (a live writer's upload is younger), and ``delete_project`` aborts
all of them; a store or a key without the ListMultipartUploads permission only skips this.

Object stores are read with fsspec's listings cache off, so what another host wrote shows at
once. Tools that need a file on disk (ffmpeg) get one through ``local_copy``, staged in the data
dir's scratch folder (``<data dir>/tmp``, see ``scratch.py``) and removed afterwards: a step uses
no other local disk. Credentials never appear in the URL: s3:// reads the standard AWS variables
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...)."""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import fsspec

from vidpipe_core.errors import ConfigurationError, InvalidInput, one_line, redact_url, scrub_url
from vidpipe_core.ids import validate_project_id
from vidpipe_core.scenes import scene_number
from vidpipe_core.scratch import owner_is_gone, owner_tag, scratch_dir

log = logging.getLogger(__name__)

STALE_UPLOAD_S = 6 * 3600  # an unfinished multipart upload this old has no live writer
# Where the folder of an earlier project goes when its id is registered again (``set_aside``): beside
# ``projects/``, so no project's folder, `vidpipe delete` or a step ever reaches it.
SET_ASIDE = "superseded"
READ_BLOCK = 1 << 20  # bytes per ranged read of ``ArtifactStore.open`` on an object store


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
    def character_sheet(name: str, fingerprint: str, ext: str = ".png") -> str:
        """A character's reference sheet. The name comes from a model, so only a slug of it (lower-case
        letters, digits and ``-``, at most 40 characters) reaches the path; the fingerprint covers
        the name, so two names with one slug still get two files."""
        return confine(f"characters/{path_slug(name)}_{fingerprint[:12]}{ext}")

    @staticmethod
    def given_image(number: int, name: str, ext: str) -> str:
        """The copy of a character image the person gave (``number``: its place among the
        characters, from 1), the source its reference sheet is taken and repaired from."""
        return confine(f"inputs/character_{number:02d}_{path_slug(name)}{ext}")

    @staticmethod
    def music(ext: str) -> str:
        """The copy of the person's music track."""
        return confine(f"inputs/music{ext}")

    @staticmethod
    def keyframe(frame_index: int, fingerprint: str) -> str:
        return f"keyframes/frame_{frame_index:03d}_{fingerprint[:12]}.png"

    @staticmethod
    def narration(scene_index: int, fingerprint: str) -> str:
        """A scene's narration line as said (after any speed-up), named by the scene's number."""
        return f"narration/scene_{scene_number(scene_index):03d}_{fingerprint[:12]}.wav"

    @staticmethod
    def clip(scene_index: int, fingerprint: str) -> str:
        """Named by the scene's number as people count (scene_002_… is the clip captioned "Scene 2");
        the ledger keeps each clip's path, so files named before this rule (0-based) stay valid."""
        return f"clips/scene_{scene_number(scene_index):03d}_{fingerprint[:12]}.mp4"


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
    if _no_credentials(exc):
        fix = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the store's account"
    elif _unreachable(exc):
        fix = "check that the store's endpoint (AWS_ENDPOINT_URL for MinIO and other S3 servers) is up and reachable"
    elif isinstance(exc, ImportError):
        fix = "install the fsspec package for that protocol (e.g. `pip install s3fs` for s3://, gcsfs for gs://)"
    elif isinstance(exc, _CredentialsInUrl):
        fix = "put the keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), not in the URL"
    elif isinstance(exc, OSError):
        fix = "point it at a folder this user can create and write (default: <VIDPIPE_DATA_DIR>/artifacts)"
    else:
        fix = "use a local folder or an fsspec URL such as s3://bucket/prefix, gs://bucket/prefix or memory://name"
    return ConfigurationError(f"VIDPIPE_ARTIFACTS_URL={shown} cannot be used as the artifact store: {cause}; {fix}")


class _CredentialsInUrl(ValueError):
    pass


def _named(exc: BaseException, *names: str) -> bool:
    """Whether ``exc`` (or one of its causes) is of a class named in ``names`` (botocore's errors are
    matched by name: this module does not import botocore, which only s3fs needs)."""
    seen: BaseException | None = exc
    while seen is not None:
        if any(k.__name__ in names for k in type(seen).__mro__):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _no_credentials(exc: BaseException) -> bool:
    return _named(exc, "NoCredentialsError", "PartialCredentialsError", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def _unreachable(exc: BaseException) -> bool:
    return _named(exc, "EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError")


def reaching_store_failed(exc: BaseException) -> bool:
    """Whether ``exc`` says the artifact store could not be reached at all (no credentials, no
    endpoint), as opposed to a file operation that failed."""
    return _no_credentials(exc) or _unreachable(exc)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


class ArtifactStore:
    """Bytes of every project under one fsspec URL (a local folder by default).

    ``data_dir``: whose scratch folder (``<data dir>/tmp``) stages the local copies of an object
    store's files; None takes VIDPIPE_DATA_DIR from the settings when a copy is first needed."""

    def __init__(self, url: str, data_dir: str | Path | None = None) -> None:
        self.url = str(url)
        self._data_dir = Path(data_dir) if data_dir is not None else None
        try:
            protocol = fsspec.core.split_protocol(self.url)[0] or "file"
            if protocol not in ("file", "local") and "@" in self.url.split("://", 1)[-1].split("/", 1)[0]:
                # s3fs would take "key:secret@bucket" for a bucket name and carry it into every URI shown.
                raise _CredentialsInUrl("credentials in the URL are not accepted")
            if protocol not in ("file", "local"):
                # What fsspec would otherwise find wrong only at the first read or write, in a step.
                urlsplit(self.url).port  # noqa: B018  # ValueError: a port that is no number, a broken [IPv6]
                if not self.url.split("://", 1)[-1].strip("/"):
                    raise ValueError(f"{protocol}:// names no bucket or location")
            # An object store is shared with other hosts: never answer from a stale listing.
            options: dict[str, Any] = {} if protocol in ("file", "local") else {"use_listings_cache": False}
            self.fs, root = fsspec.core.url_to_fs(self.url, **options)
            self.root = root.rstrip("/")
            self.is_local = "file" in _protocols(self.fs) or "local" in _protocols(self.fs)
            if self.is_local:
                Path(self.root).mkdir(parents=True, exist_ok=True)
                if not os.access(self.root, os.W_OK | os.X_OK):
                    raise PermissionError(f"{self.root} is not writable")
        except Exception as exc:
            raise store_error(self.url, exc) from exc
        self.is_s3 = any(p in ("s3", "s3a") for p in _protocols(self.fs))

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

    def size(self, project_id: str, relpath: str) -> int | None:
        """The stored file's size in bytes (one stat or HEAD request), None when there is none."""
        try:
            return int(self.fs.size(self.path(project_id, relpath)))
        except FileNotFoundError:
            return None

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
            self.fs.pipe_file(target, data)  # one PUT (multipart when large): visible only once complete
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

    def scratch_base(self) -> Path:
        """The data dir whose ``tmp/`` holds local copies (see ``scratch.py``)."""
        if self._data_dir is None:
            from vidpipe_core.config import get_settings

            self._data_dir = get_settings().data_dir
        return self._data_dir

    @contextmanager
    def local_copy(self, project_id: str, relpath: str) -> Iterator[Path]:
        """A local filesystem path for tools like ffmpeg: the file itself when the store is local,
        else a copy in the data dir's scratch folder, removed when the block ends."""
        src = self.path(project_id, relpath)
        if self.is_local:
            yield Path(src)
            return
        with scratch_dir(self.scratch_base(), "vidpipe-copy") as d:
            local = d / posixpath.basename(src)
            self.fs.get_file(src, str(local))
            yield local

    @contextmanager
    def open(self, project_id: str, relpath: str) -> Iterator[IO[bytes]]:
        """A stored file open for reading, seekable. A reader that needs only part of it (a video's
        header to probe it, the group of pictures of one frame) transfers only that part from an
        object store (ranged reads of READ_BLOCK bytes), where ``local_copy`` downloads it all."""
        options = {} if self.is_local else {"block_size": READ_BLOCK, "cache_type": "readahead"}
        with self.fs.open(self.path(project_id, relpath), "rb", **options) as f:
            yield f

    def has_project(self, project_id: str) -> bool:
        """Whether anything is stored for the project: its folder, or on an object store any key
        under ``<root>/projects/<id>/`` (so ``p10`` or an object named ``projects/p1x`` is not ``p1``)."""
        root = self.project_root(project_id)
        if self.is_local:
            return bool(self.fs.exists(root))
        try:
            return bool(self._keys_under(root, limit=1))
        except Exception as exc:
            if reaching_store_failed(exc):  # the first request a new project makes: say what to set
                raise store_error(self.url, exc) from exc
            raise

    def _keys_under(self, root: str, limit: int | None = None) -> list[str]:
        """Every stored key strictly under ``root/`` (never ``root`` itself or a sibling sharing its prefix)."""
        prefix = root + "/"
        if self.is_s3:
            bucket, key, _ = self.fs.split_path(prefix)
            keys: list[str] = []
            token: dict[str, str] = {}
            while True:
                page = self.fs.call_s3(
                    "list_objects_v2", Bucket=bucket, Prefix=key, **({"MaxKeys": limit} if limit else {}), **token
                )
                keys.extend(f"{bucket}/{o['Key']}" for o in page.get("Contents", []))
                if limit and len(keys) >= limit or not page.get("IsTruncated"):
                    return keys
                token = {"ContinuationToken": page["NextContinuationToken"]}
        try:
            found = self.fs.find(root)
        except FileNotFoundError:
            return []
        return [k for k in found if k.startswith(prefix)][:limit]

    # an earlier project's files ----------------------------------------------------------
    def _set_aside_root(self, project_id: str) -> str:
        return f"{self.root}/{SET_ASIDE}/{validate_project_id(project_id)}"

    def _shown(self, path: str) -> str:
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def set_aside(self, project_id: str, tag: str, *, now: datetime | None = None) -> str | None:
        """Move everything stored under the project's folder to ``superseded/<id>/<UTC time>-<tag>/``
        and return that place (a URI); None when nothing is stored. For a project id registered
        again: the files are an earlier project's, and they are kept, never deleted, where no step
        of the new project reads or overwrites them. ``tag`` names the registration that moved
        them (``set_aside_for`` finds the place again from it). A local folder is renamed (one
        atomic step); on an object store every key is copied first and the originals are removed
        only once every copy exists, so a failure leaves them where they were."""
        if not re.fullmatch(r"[0-9a-z]{1,32}", tag):
            raise ValueError(f"{tag!r} is not a set-aside tag (lower-case letters and digits)")
        if not self.has_project(project_id):
            return None
        root = self.project_root(project_id)
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        target = f"{self._set_aside_root(project_id)}/{stamp}-{tag}"
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(root, target)  # a rename, unless the two are on different file systems
            return self._shown(target)
        if self._keys_under(target, limit=1):
            raise FileExistsError(f"{self._shown(target)} already exists")
        keys = self._keys_under(root)
        for key in keys:
            self.fs.copy(key, target + key[len(root) :])
        self.fs.rm(keys)
        return self._shown(target)

    def set_aside_places(self, project_id: str) -> list[str]:
        """Where the folders of earlier projects with this id were moved (``set_aside``), oldest first."""
        base = self._set_aside_root(project_id)
        if self.is_local:
            return [self._shown(f"{base}/{name}") for name in sorted(os.listdir(base))] if os.path.isdir(base) else []
        names = {key[len(base) + 1 :].split("/", 1)[0] for key in self._keys_under(base)}
        return [self._shown(f"{base}/{name}") for name in sorted(names)]

    def set_aside_for(self, project_id: str, tag: str) -> str | None:
        """Where the registration tagged ``tag`` moved an earlier project's folder, if it moved one."""
        return next((p for p in self.set_aside_places(project_id) if p.endswith(f"-{tag}")), None)

    # unfinished multipart uploads (object stores) --------------------------------------
    def _uploads(self, project_id: str) -> list[dict[str, Any]]:
        """The project's unfinished multipart uploads (S3 API), each with Key, UploadId, Initiated."""
        bucket, key, _ = self.fs.split_path(self.project_root(project_id) + "/")
        uploads: list[dict[str, Any]] = []
        markers: dict[str, str] = {}
        while True:
            page = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=key, **markers)
            uploads.extend(u for u in page.get("Uploads", []) if u["Key"].startswith(key))  # some servers ignore Prefix
            if not page.get("IsTruncated"):
                return uploads
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

    def _abort(self, upload: dict[str, Any]) -> None:
        bucket = self.fs.split_path(self.root + "/")[0]
        self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    def abort_uploads(self, project_id: str, older_than_s: float = 0.0, *, now: float | None = None) -> list[str]:
        """Abort the project's unfinished multipart uploads started more than ``older_than_s`` ago
        (by the server's ``Initiated`` time; ``now`` defaults to this host's clock); returns their
        keys relative to the project. Never raises: without the permission to list
        uploads (or with a store that has none) nothing is aborted and a warning is logged."""
        if not self.is_s3:
            return []  # no multipart API known here (gcsfs and others show nothing half-written either)
        try:
            uploads = self._uploads(project_id)
        except Exception as exc:
            log.warning("could not list unfinished uploads of project %s: %s", project_id, scrub_url(one_line(exc), self.url))
            return []
        bucket_prefix = self.fs.split_path(self.project_root(project_id) + "/")[1]
        now = time.time() if now is None else now
        aborted = []
        for upload in uploads:
            started = upload.get("Initiated")
            age = now - started.timestamp() if isinstance(started, datetime) else 0.0  # unknown: taken as fresh
            if age < older_than_s:
                continue
            try:
                self._abort(upload)
            except Exception as exc:
                log.warning("could not abort an unfinished upload of project %s: %s", project_id, one_line(exc))
                continue
            aborted.append(upload["Key"][len(bucket_prefix) :])
        return aborted

    def clean_partials(self, project_id: str, *, now: float | None = None) -> list[str]:
        """Remove what dead writers left in a project (run at the start of every step): a local
        store's ``.partial`` files of processes of this host that are gone; an object store's
        unfinished multipart uploads older than ``STALE_UPLOAD_S``. Returns the relative paths."""
        if not self.is_local:
            return self.abort_uploads(project_id, older_than_s=STALE_UPLOAD_S, now=now)
        root = Path(self.project_root(project_id))
        removed = []
        for path in root.rglob(f"*{PARTIAL}") if root.is_dir() else ():
            found = _PARTIAL_OWNER.search(path.name)
            if found and path.is_file() and not path.is_symlink() and owner_is_gone(found.group(1)):
                path.unlink(missing_ok=True)
                removed.append(str(path.relative_to(root)))
        return removed

    def delete_project(self, project_id: str) -> None:
        """Remove everything stored for the project and nothing else: on an object store exactly
        the keys under ``<root>/projects/<id>/``, and its unfinished uploads."""
        root = self.project_root(project_id)
        if self.is_local:
            if self.fs.exists(root):
                self.fs.rm(root, recursive=True)
            return
        keys = self._keys_under(root)
        if keys:
            self.fs.rm(keys)
        self.abort_uploads(project_id)
