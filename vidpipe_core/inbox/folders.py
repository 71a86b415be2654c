"""The inbox folder and where a file ends: the inbox, accepted/ and rejected/ opened once per look
without following links (a linked folder is a ConfigurationError), the files ready to read (not
still being written), and the moves, through those descriptors only, so nothing is ever written
outside the inbox:

    accepted/<project-id>--<name>           registered (or identical to an earlier registration)
    rejected/<name> + <name>.error.txt      refused, with what to change; never retried
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vidpipe_core.config import Settings
from vidpipe_core.errors import ConfigurationError
from vidpipe_core.inbox.files import InboxSettings, display_name, is_ignored_name

ACCEPTED = "accepted"
REJECTED = "rejected"
ERROR_SUFFIX = ".error.txt"


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
        'This copy stays here and is not retried. File format: docs/automation.md, "The prompt inbox".\n'
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


def move(path: Path, dirs: InboxDirs, dst_dir_fd: int, target: Path) -> None:
    """Move the inbox's file ``path`` to ``target`` in the folder ``dst_dir_fd`` (accepted/ or rejected/)."""
    os.rename(path.name, target.name, src_dir_fd=dirs.inbox, dst_dir_fd=dst_dir_fd)


def reject_file(path: Path, dirs: InboxDirs, reason: str) -> Path:
    """Move a refused file to rejected/ with <name>.error.txt beside it; the explanation is written first,
    so a crash in between leaves the file in the inbox to be refused again, not unexplained."""
    target = free_path(dirs.path / REJECTED, path.name, dirs.rejected)
    write_note(dirs.rejected, f"{target.name}{ERROR_SUFFIX}", error_text(path.name, reason, dirs.path))
    move(path, dirs, dirs.rejected, target)
    return target


def accept_file(path: Path, dirs: InboxDirs, project_id: str) -> Path:
    target = free_path(dirs.path / ACCEPTED, f"{project_id}--{path.name}", dirs.accepted)
    move(path, dirs, dirs.accepted, target)
    return target
