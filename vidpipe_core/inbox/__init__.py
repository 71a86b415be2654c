"""The prompt inbox: prompt files dropped into a folder become projects.

A file is YAML (``.yaml``/``.yml``) or JSON (``.json``) with ``prompt`` and the optional fields of
``InboxRequest``, or plain text (``.txt``) whose whole content is the prompt. Writers create the
file under a hidden or ``*.tmp`` name (ignored) and rename it when complete; files modified in the
last ``inbox_min_age_s`` seconds are left for the next look as well.

Every file that is read ends in exactly one place, so nothing is evaluated twice:

    accepted/<project-id>--<name>           registered (or identical to an earlier registration)
    rejected/<name> + <name>.error.txt      refused, with what to change; never retried

The inbox and both folders are opened once per look without following links (a linked folder is
a ``ConfigurationError``); every read, move and note goes through those descriptors, so nothing is
ever written outside the inbox, whatever its writers put there.

A registered project's ``source`` is ``inbox:accepted/<project-id>--<name>;sha256=<digest>``. The
digest is of the parsed request, so re-dropping identical content finds the project it made
instead of making a second one. The project row is written before the file is moved; a crash in
between is finished by the next look (the digest finds the row, the file is moved).

Nothing here imports Dagster: the sensor turns an ``InboxTick`` into partitions and run requests.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import json
import os
import re
import reprlib
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vidpipe_core.config import Settings
from vidpipe_core.errors import ConfigurationError, InvalidInput, VidpipeError, invalid
from vidpipe_core.models import Project, utc
from vidpipe_core.projects import build_spec, create_project, project_exists
from vidpipe_core.schemas import ProjectSpec
from vidpipe_core.services import Services
from vidpipe_core.text import escape_invisible, text_problem

ACCEPTED = "accepted"
REJECTED = "rejected"
ERROR_SUFFIX = ".error.txt"
FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".txt": "text"}
PARTIAL_SUFFIXES = (".tmp", ".partial", ".part", ".crdownload", ".swp", "~")
MAX_NAME_BYTES = 120  # keeps accepted/<id>--<name> under NAME_MAX and `source` under 255 chars
SOURCE_PREFIX = "inbox:"
DIGEST_MARK = ";sha256="
DIGEST_CHARS = 32
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


# The inbox limits are Settings fields (VIDPIPE_INBOX_MAX_BYTES, _MIN_AGE_S, _MAX_FILES_PER_TICK).
InboxSettings = Settings


class InboxRequest(BaseModel):
    """The fields an inbox file may set; everything else is refused by name."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    prompt: str
    id: str | None = None
    style: str | None = None
    aspect_ratio: str | None = None
    clip_duration: int | None = None
    scenes: int | None = None
    max_cost_usd: float | None = None
    provider: str | None = None
    storyboard_provider: str | None = None
    keyframe_provider: str | None = None
    clip_provider: str | None = None
    generate_audio: bool | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    fast: bool | None = None
    safety_policy: str | None = None
    crossfade: float | None = None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for ``build_spec``/``create_project`` (everything but the prompt)."""
        values = self.model_dump(exclude_none=True, exclude={"prompt"})
        if "clip_provider" in values:
            values["clip_provider_name"] = values.pop("clip_provider")
        return values

    def digest(self) -> str:
        """Identity of the request: equal for the same fields and values, whatever the file format."""
        values = self.model_dump(exclude_none=True)
        values["prompt"] = values["prompt"].strip()
        canonical = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_CHARS]


FIELDS = tuple(InboxRequest.model_fields)


@dataclass(frozen=True)
class InboxEntry:
    """A valid inbox file. ``spec`` is the validated preview; a generated id is final only once registered."""

    path: Path
    name: str
    request: InboxRequest
    spec: ProjectSpec
    digest: str


# Reading and validating one file -----------------------------------------------------------------


class _YamlLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # a base chosen at import (libyaml if present)
    """Safe YAML without the YAML 1.1 surprises: `16:9` stays a string (not the base-60 int 969),
    dates stay strings, `0123` stays a string. A key given twice is refused (YAML keeps the last one
    silently), and so are merge keys (`<<`): a prompt file has no use for them, and some PyYAML
    versions expand merges of aliased merges exponentially (an alias bomb)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise InvalidInput("file", f"uses a YAML merge key (<<) at line {line}; write the fields out instead")
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise InvalidInput("file", f"field {_short(key_node.value)} appears twice (line {line}); keep one")
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_YamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"
        r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
    ),
    list("-+0123456789."),
)


def display_name(name: str) -> str:
    """A file name safe to print: undecodable bytes as \\xNN, control and format characters
    escaped (an emoji's joiner kept)."""
    return escape_invisible(name)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def is_ignored_name(name: str) -> bool:
    """Hidden and partial files: the tmp-then-rename convention (``.boat.yaml.tmp`` -> ``boat.yaml``)."""
    return name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES)


def check_name(path: Path, inbox: Path) -> str:
    """The file's name, if it is one the inbox may read; InvalidInput otherwise."""
    name = path.name
    if not name or name in (".", "..") or os.path.realpath(path.parent) != os.path.realpath(inbox):
        raise InvalidInput("name", f"{str(path)!r} is not a file directly inside the inbox {str(inbox)!r}")
    if _has_surrogates(name):
        raise InvalidInput("name", f"'{display_name(name)}' is not valid UTF-8; rename the file")
    if _CONTROL.search(name):
        raise InvalidInput("name", f"'{display_name(name)}' contains control characters or '\\'; rename the file")
    problem = text_problem(name)
    if problem is not None:  # a format character: "photo\u202egpj.txt" shows as "phototxt.jpg"
        raise InvalidInput("name", f"'{display_name(name)}' {problem.removesuffix('; remove it')}; rename the file")
    if is_ignored_name(name):
        raise InvalidInput("name", f"{name!r} is hidden or partial (.*, *.tmp, *.partial); rename it when complete")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise InvalidInput("name", f"is {len(name.encode())} bytes long; use a shorter name", f"at most {MAX_NAME_BYTES} bytes")
    return name


def read_regular_file(path: Path, max_bytes: int, dir_fd: int | None = None) -> bytes:
    """The bytes of a regular, singly-linked file of at most max_bytes; links are never followed.
    With ``dir_fd`` (the open inbox), ``path.name`` is read in that folder."""
    where: Path | str = path if dir_fd is None else path.name
    st = os.stat(where, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        raise InvalidInput(
            "file",
            f"is a symbolic link (to '{display_name(os.readlink(where, dir_fd=dir_fd))}'); "
            "links are never followed, copy the file itself into the inbox",
        )
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput("file", "is not a regular file (a FIFO, socket or device); drop a text file")
    if st.st_nlink > 1:
        raise InvalidInput("file", f"has {st.st_nlink} hard links; copy the file into the inbox instead of linking it")
    if st.st_size > max_bytes:
        raise InvalidInput("file", f"is {st.st_size} bytes; shorten it", f"at most {max_bytes} bytes")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(where, flags, dir_fd=dir_fd)
    except PermissionError:
        raise InvalidInput("file", "cannot be read (permission denied); make it readable and drop it again") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(opened.st_mode):
            raise InvalidInput("file", "was replaced while being read; write it as .name.tmp and rename it when complete")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise InvalidInput(
            "file", "grew while being read; write it as .name.tmp and rename it when complete", f"at most {max_bytes} bytes"
        )
    return data


def decode_text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            "file", f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise InvalidInput("file", "contains NUL characters; is it a text file?")
    return text.removeprefix("\ufeff")


_repr = reprlib.Repr()  # keyword arguments only from Python 3.12
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxstring, _repr.maxother = 2, 4, 4, 60, 60


def _short(value: Any) -> str:
    """A bounded repr: never expands a deep or alias-bombed structure."""
    return _repr.repr(value)


def _field_error(err: Any) -> InvalidInput:
    """One field's problem, from one of pydantic's errors."""
    name = ".".join(str(p) for p in err["loc"]) or "file"
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(name, FIELDS, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return InvalidInput(name, f"is not a known field{hint}", ", ".join(FIELDS))
    if kind == "missing":
        return InvalidInput(name, "is missing; every inbox file needs a prompt" if name == "prompt" else "is missing")
    if value is None:
        return InvalidInput(name, "is null; give it a value or remove the line")
    if isinstance(value, (list, dict, set, tuple, bytes)):
        what = {dict: "a mapping", bytes: "binary data"}.get(type(value), f"a {type(value).__name__}")
        return InvalidInput(name, f"is {what}, not a single value")
    if kind == "string_type":
        return InvalidInput(name, f"{_short(value)} is not text; put it in quotes")
    if kind.startswith("int_"):
        return InvalidInput(name, f"{_short(value)} is not a whole number")
    if kind.startswith("bool_"):
        return InvalidInput(name, f"{_short(value)} is not true or false")
    if kind == "finite_number":
        return InvalidInput(name, f"{_short(value)} is not a finite number")
    if kind.startswith("float_"):
        return InvalidInput(name, f"{_short(value)} is not a number")
    return InvalidInput(name, err["msg"])


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique (json.loads keeps the last of a repeated key silently)."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            raise InvalidInput("file", f"field {_short(key)} appears twice; keep one")
        fields[key] = value
    return fields


def parse_request(text: str, fmt: str) -> InboxRequest:
    """An InboxRequest from the text of a file in format "yaml", "json" or "text"; InvalidInput
    naming every field problem at once."""
    raw = _raw_fields(text, fmt)
    request, problems = check_fields(raw)
    if problems:
        raise invalid(problems)
    assert request is not None
    return request


def check_fields(raw: dict[str, Any]) -> tuple[InboxRequest | None, list[InvalidInput]]:
    """The request and every problem of its fields (unknown, missing, wrong type), all at once. With
    problems, the request holds the fields that are fine (None when the prompt is not), so their
    values can be checked too and the file is refused naming everything to change."""
    try:
        return InboxRequest.model_validate(raw), []
    except ValidationError as exc:
        errors = exc.errors()
    problems = [_field_error(e) for e in errors]
    bad = {e["loc"][0] for e in errors if e["loc"]}
    try:
        rest = InboxRequest.model_validate({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        rest = None
    return rest, problems


def validate_request(request: InboxRequest, settings: Settings) -> ProjectSpec:
    """The spec the request would make (``build_spec``'s rules), before anything is written."""
    try:
        return build_spec(settings, request.prompt, **request.options())
    except InvalidInput:
        raise
    except VidpipeError as exc:  # e.g. provider: google without credentials
        raise InvalidInput("provider", str(exc)) from None


def _raw_fields(text: str, fmt: str) -> dict[str, Any]:
    """The file's fields as a mapping (InvalidInput for a file that is not one)."""
    if fmt == "text":
        raw: Any = {"prompt": text}
    elif fmt == "json":
        try:
            raw = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise InvalidInput("file", f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:  # 5000-digit numbers, nesting thousands deep
            raise InvalidInput("file", f"is not usable JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    else:
        try:
            raw = yaml.load(text, Loader=_YamlLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = (
                ", ".join(filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)]))
                or str(exc).splitlines()[0]
            )
            hint = (
                "; a value containing ': ' needs quotes, or write `prompt: |` and the text indented on the next lines"
                if "mapping values are not allowed" in problem
                else ""
            )
            raise InvalidInput("file", f"is not valid YAML: {problem}{where}{hint}") from None
        except (ValueError, RecursionError) as exc:
            raise InvalidInput("file", f"is not usable YAML: {type(exc).__name__}: {str(exc)[:200]}") from None
    if raw is None:
        raise InvalidInput("prompt", "is missing; the file is empty")
    if not isinstance(raw, dict):
        raise InvalidInput("file", f"must be a mapping of fields (prompt: ..., scenes: ...), not a {type(raw).__name__}")
    for key in raw:
        if not isinstance(key, str):
            raise InvalidInput("file", f"field name {_short(key)} is not text", ", ".join(FIELDS))
    return raw


def parse_inbox_file(
    path: Path | str, settings: Settings, limits: InboxSettings | None = None, *, dir_fd: int | None = None
) -> InboxEntry:
    """Read and validate one inbox file; InvalidInput names the field (or `name`/`file`) and what to change.
    ``dir_fd``: the open inbox (``InboxDirs.inbox``), read instead of the path's folder."""
    limits = limits or InboxSettings()
    path = Path(path)
    name = check_name(path, settings.resolved_inbox_dir)
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise InvalidInput(
            "name", f"{Path(name).suffix or 'a name without extension'!r} is not a prompt file type", ", ".join(FORMATS)
        )
    text = decode_text(read_regular_file(path, limits.inbox_max_bytes, dir_fd))
    request, problems = check_fields(_raw_fields(text, fmt))
    spec = None
    if request is not None:  # the fields that parsed are checked too, so every problem is named
        try:
            spec = validate_request(request, settings)
        except InvalidInput as exc:
            problems += exc.problems
    if problems:
        raise invalid(problems)
    assert request is not None and spec is not None
    return InboxEntry(path=path, name=name, request=request, spec=spec, digest=request.digest())


# The folder -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxDirs:
    """The inbox and its two folders, opened without following links."""

    path: Path  # the inbox, for messages and InboxTick paths
    inbox: int  # directory file descriptors
    accepted: int
    rejected: int


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def configured_inbox(settings: Settings) -> Path:
    """The inbox as configured, absolute but not resolved: ``resolved_inbox_dir`` would follow the very
    link that must be refused."""
    return Path(os.path.abspath((settings.inbox_dir or settings.data_dir / "inbox").expanduser()))


def _open_folder(name: str | Path, dir_fd: int | None, shown: Path, fix: str) -> int:
    """A descriptor of the folder ``name``, never through a link; ConfigurationError otherwise."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            target = display_name(os.readlink(name, dir_fd=dir_fd))
            raise ConfigurationError(
                f"inbox: {display_name(str(shown))} is a symbolic link (to {target}); the inbox never "
                f"reads or moves files through links, so nothing was moved. {fix}"
            ) from None
        raise ConfigurationError(
            f"inbox: {display_name(str(shown))} is not a folder; move it away so vidpipe can create the folder"
        ) from None


@contextmanager
def open_inbox(settings: Settings) -> Iterator[InboxDirs]:
    """Create the inbox, accepted/ and rejected/ if missing and hold them open for one look."""
    path = configured_inbox(settings)
    with suppress(FileExistsError):  # a dangling link is reported by _open_folder
        path.mkdir(parents=True, exist_ok=True)
    opened: list[int] = []
    try:
        opened.append(
            _open_folder(path, None, path, "Set VIDPIPE_INBOX_DIR to the folder itself, or replace the link with a folder.")
        )
        for sub in (ACCEPTED, REJECTED):
            with suppress(FileExistsError):
                os.mkdir(sub, dir_fd=opened[0])
            shown = path / sub
            opened.append(
                _open_folder(
                    sub,
                    opened[0],
                    shown,
                    f"Replace it with a folder (rm '{display_name(str(shown))}' && mkdir '{display_name(str(shown))}').",
                )
            )
        yield InboxDirs(settings.resolved_inbox_dir, *opened)
    finally:
        for fd in opened:
            os.close(fd)


def file_key(st: os.stat_result, name: str) -> str:
    """Identifies one version of a file (name, size, mtime) without reading it."""
    return f"{name}|{st.st_size}|{st.st_mtime_ns}"


@dataclass
class InboxListing:
    ready: dict[Path, str]  # ready file -> file_key, oldest first
    waiting: int = 0  # modified too recently; next look


def list_inbox(dirs: InboxDirs, limits: InboxSettings, now: float | None = None) -> InboxListing:
    """Files to evaluate: everything but directories, hidden/partial names and files still being written."""
    now = time.time() if now is None else now
    found: list[tuple[int, str, Path, str]] = []
    waiting = 0
    with os.scandir(dirs.inbox) as entries:
        for entry in entries:
            try:
                if is_ignored_name(entry.name) or entry.is_dir(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # renamed or removed while we looked
                continue
            if now - st.st_mtime < limits.inbox_min_age_s:
                waiting += 1
                continue
            found.append((st.st_mtime_ns, entry.name, dirs.path / entry.name, file_key(st, entry.name)))
    found.sort(key=lambda t: (t[0], t[1]))
    return InboxListing(ready={p: k for _, _, p, k in found}, waiting=waiting)


def _exists(name: str | Path, dir_fd: int | None) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def free_path(folder: Path, name: str, dir_fd: int | None = None) -> Path:
    """folder/name, or folder/<stem>-2<suffix>, -3, ... when taken (a file or its .error.txt).
    With ``dir_fd`` (the open ``folder``), the names are looked up there."""
    suffix = Path(name).suffix if not name.startswith(".") else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    n = 1
    while True:
        candidate = folder / (name if n == 1 else f"{stem}-{n}{suffix}")
        where = candidate.name if dir_fd is not None else candidate
        if not _exists(where, dir_fd) and not _exists(f"{where}{ERROR_SUFFIX}", dir_fd):
            return candidate
        n += 1


def error_text(name: str, reason: str, inbox: Path) -> str:
    return (
        f"vidpipe did not register '{display_name(name)}' from the prompt inbox.\n\n"
        f"    {reason}\n\n"
        f"Fix the file and drop it into {inbox} again (write it as .name.tmp, then rename it).\n"
        'This copy stays here and is not retried. File format: README.md, section "Prompt inbox".\n'
        f"Rejected at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC.\n"
    )


def write_note(dir_fd: int, name: str, text: str) -> None:
    """Write ``name`` in the folder ``dir_fd`` all at once: a new file under a random name (O_EXCL and
    O_NOFOLLOW, so a link placed in the folder is never written through), renamed into place."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def _move(path: Path, dirs: InboxDirs, dst_dir_fd: int, target: Path) -> None:
    os.rename(path.name, target.name, src_dir_fd=dirs.inbox, dst_dir_fd=dst_dir_fd)


def reject_file(path: Path, dirs: InboxDirs, reason: str) -> Path:
    """Move a refused file to rejected/ with <name>.error.txt beside it; the explanation is written first,
    so a crash in between leaves the file in the inbox to be refused again, not unexplained."""
    target = free_path(dirs.path / REJECTED, path.name, dirs.rejected)
    write_note(dirs.rejected, f"{target.name}{ERROR_SUFFIX}", error_text(path.name, reason, dirs.path))
    _move(path, dirs, dirs.rejected, target)
    return target


def accept_file(path: Path, dirs: InboxDirs, project_id: str) -> Path:
    target = free_path(dirs.path / ACCEPTED, f"{project_id}--{path.name}", dirs.accepted)
    _move(path, dirs, dirs.accepted, target)
    return target


# Projects made from the inbox -------------------------------------------------------------------


def project_source(accepted_name: str, digest: str) -> str:
    return f"{SOURCE_PREFIX}{ACCEPTED}/{accepted_name}{DIGEST_MARK}{digest}"


def source_digest(source: str) -> str | None:
    if not source.startswith(SOURCE_PREFIX) or DIGEST_MARK not in source:
        return None
    return source.rsplit(DIGEST_MARK, 1)[1]


def source_file(source: str) -> str:
    """The accepted file's path relative to the inbox, from a project's source."""
    return source.removeprefix(SOURCE_PREFIX).rsplit(DIGEST_MARK, 1)[0]


@dataclass(frozen=True)
class InboxProject:
    id: str
    source: str
    created_at: datetime  # aware UTC


def registered_digests(services: Services) -> dict[str, str]:
    """Request digest -> project id, for every project made from the inbox."""
    with services.db.session() as s:
        rows = s.execute(select(Project.id, Project.source).where(Project.source.like(f"{SOURCE_PREFIX}%"))).all()
    return {d: pid for pid, src in rows if (d := source_digest(src))}


def inbox_projects(
    services: Services, *, since: datetime | None = None, ids: list[str] | None = None, limit: int | None = None
) -> list[InboxProject]:
    """Projects made from the inbox, oldest first: created at or after `since`, or among `ids`."""
    q = select(Project.id, Project.source, Project.created_at).where(Project.source.like(f"{SOURCE_PREFIX}%"))
    if ids is not None:
        q = q.where(Project.id.in_(ids))
    if since is not None:
        q = q.where(Project.created_at >= since)
    q = q.order_by(Project.created_at, Project.id)
    if limit is not None:
        q = q.limit(limit)
    with services.db.session() as s:
        return [InboxProject(pid, src, utc(created)) for pid, src, created in s.execute(q).all()]


def register_entry(services: Services, entry: InboxEntry, dirs: InboxDirs) -> tuple[ProjectSpec, Path]:
    """Write the project row (source names the accepted path), then move the file there."""
    options = entry.request.options()
    if "id" in options and project_exists(services, options["id"]):
        raise InvalidInput(
            "id",
            f"{options['id']!r} is already taken by another project; choose another id "
            "or remove the id field to have one generated",
        )
    planned = build_spec(services.settings, entry.request.prompt, taken=lambda i: project_exists(services, i), **options)
    target = free_path(dirs.path / ACCEPTED, f"{planned.id}--{entry.name}", dirs.accepted)
    try:
        spec = create_project(
            services, entry.request.prompt, source=project_source(target.name, entry.digest), **{**options, "id": planned.id}
        )
    except IntegrityError:  # registered by someone else between the check and the insert
        raise InvalidInput("id", f"{planned.id!r} is already taken by another project; choose another id") from None
    _move(entry.path, dirs, dirs.accepted, target)
    return spec, target


# One look at the folder -------------------------------------------------------------------------

Log = Callable[[str, str], None]  # (level, message)


def _parse_guarded(path: Path, settings: Settings, limits: InboxSettings, log: Log, dir_fd: int) -> InboxEntry:
    """parse_inbox_file, with any unexpected failure turned into a rejection: parsing has no side
    effects, and a file that fails the same way on every tick must not block the inbox."""
    try:
        return parse_inbox_file(path, settings, limits, dir_fd=dir_fd)
    except (InvalidInput, OSError):
        raise
    except Exception as exc:
        text = display_name(str(exc)[:200])
        log("error", f"{display_name(path.name)}: unexpected {type(exc).__name__} while parsing: {text}")
        raise InvalidInput("file", f"could not be parsed ({type(exc).__name__}: {text})") from None


class DatabaseUnavailable(Exception):
    """The database cannot be reached at all: every file would fail the same way, so none is refused."""


def _db_reason(exc: BaseException) -> str:
    """The driver's first line, short: never the statement and its parameters."""
    cause = getattr(exc, "orig", None) or exc
    text = next(iter(str(cause).strip().splitlines()), "")[:200]
    return display_name(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)


def _is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)) or bool(
        getattr(exc, "connection_invalidated", False)
    )


def _register_guarded(services: Services, entry: InboxEntry, dirs: InboxDirs) -> tuple[ProjectSpec, Path]:
    """register_entry, with the database's refusal of this one file (a value it cannot store) turned
    into the file's rejection: the same file would fail on every tick and hold up the ones behind it."""
    try:
        return register_entry(services, entry, dirs)
    except (SQLAlchemyError, ValueError) as exc:
        if _is_unavailable(exc):
            raise DatabaseUnavailable(_db_reason(exc)) from exc
        raise InvalidInput(
            "file", f"the database refused it ({_db_reason(exc)}); check its text for unusual characters"
        ) from None


@dataclass
class InboxTick:
    registered: list[tuple[str, Path]] = field(default_factory=list)  # (project id, accepted file)
    duplicates: list[tuple[str, Path]] = field(default_factory=list)  # identical to an existing project
    rejected: list[tuple[Path, str]] = field(default_factory=list)  # (rejected file, reason)
    stuck: dict[str, str] = field(default_factory=dict)  # file key -> why it could not be moved
    waiting: int = 0  # still being written
    deferred: int = 0  # over the per-tick cap
    unavailable: int = 0  # left: the database could not be reached
    present: set[str] = field(default_factory=set)  # keys of files still in the inbox


def _evaluate(
    services: Services, path: Path, dirs: InboxDirs, limits: InboxSettings, known: dict[str, str], tick: InboxTick, log: Log
) -> None:
    """Register, recognise or reject one file, and record which in ``tick``."""
    shown = display_name(path.name)
    try:
        entry = _parse_guarded(path, services.settings, limits, log, dirs.inbox)
        existing = known.get(entry.digest)
        if existing is not None:
            target = accept_file(path, dirs, existing)
            tick.duplicates.append((existing, target))
            log(
                "info",
                f"{shown}: same request as project {existing!r}; no new project "
                f"(moved to {ACCEPTED}/{display_name(target.name)})",
            )
            return
        spec, target = _register_guarded(services, entry, dirs)
    except InvalidInput as exc:
        target = reject_file(path, dirs, str(exc))
        tick.rejected.append((target, str(exc)))
        log(
            "warning",
            f"{shown}: rejected - {exc} (moved to {REJECTED}/{display_name(target.name)}, "
            f"reason in {display_name(target.name)}{ERROR_SUFFIX})",
        )
        return
    known[entry.digest] = spec.id
    tick.registered.append((spec.id, target))
    log("info", f"{shown}: registered project {spec.id!r} (moved to {ACCEPTED}/{display_name(target.name)})")


def process_inbox(
    services: Services,
    limits: InboxSettings | None = None,
    *,
    skip: Iterable[str] = (),
    now: float | None = None,
    log: Log | None = None,
) -> InboxTick:
    """Evaluate up to ``inbox_max_files_per_tick`` ready files: register, recognise or reject each once.

    ``skip`` holds keys (see ``file_key``) of files that could not be moved earlier; they are not
    evaluated again until they change. A linked inbox, accepted/ or rejected/ folder raises
    ConfigurationError before anything is read or moved."""
    limits = limits or InboxSettings()
    log = log or (lambda level, msg: None)
    skip = set(skip)
    with open_inbox(services.settings) as dirs:
        listing = list_inbox(dirs, limits, now)
        tick = InboxTick(waiting=listing.waiting)
        keys = listing.ready
        tick.present = {k for k in keys.values() if k in skip}
        todo = [p for p, k in keys.items() if k not in skip]
        tick.deferred = max(0, len(todo) - limits.inbox_max_files_per_tick)
        batch = todo[: limits.inbox_max_files_per_tick]
        known = registered_digests(services) if batch else {}  # request digest -> project id
        for index, path in enumerate(batch):
            try:
                _evaluate(services, path, dirs, limits, known, tick, log)
            except DatabaseUnavailable as exc:  # not the file's fault: leave it and the rest for the next tick
                tick.unavailable = len(batch) - index
                log(
                    "error",
                    f"the database is unavailable ({exc}); {tick.unavailable} file(s) stay in the inbox for the next tick",
                )
                break
            except FileNotFoundError:  # taken away while we looked: nothing to do
                continue
            except OSError as exc:  # cannot read or move it: leave it, say so once, look again when it changes
                key = keys[path]
                tick.stuck[key] = str(exc)
                tick.present.add(key)
                log(
                    "error",
                    f"{display_name(path.name)}: could not be processed ({display_name(str(exc))}); it stays "
                    "in the inbox and is not evaluated again until it changes",
                )
    return tick
