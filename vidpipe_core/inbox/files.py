"""Reading a file that someone else put in the inbox, safely: a name the inbox may read (no control
or invisible format characters, not hidden or partial, not too long), and the bytes of a regular,
singly-linked file of bounded size, read without following links and checked not to have been
replaced or grown meanwhile, decoded as UTF-8. Every refusal is an InvalidInput that says what to
change (the file is then moved to rejected/ with that reason)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from vidpipe_core.config import Settings
from vidpipe_core.errors import InvalidInput
from vidpipe_core.text import escape_invisible, text_problem

PARTIAL_SUFFIXES = (".tmp", ".partial", ".part", ".crdownload", ".swp", "~")
MAX_NAME_BYTES = 120  # keeps accepted/<id>--<name> under NAME_MAX and `source` under 255 chars
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")

# The inbox limits are Settings fields (VIDPIPE_INBOX_MAX_BYTES, _MIN_AGE_S, _MAX_FILES_PER_TICK).
InboxSettings = Settings


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
