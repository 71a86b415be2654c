"""The ffmpeg binary and the one process supervisor that runs it.

Every ffmpeg vidpipe starts goes through ``supervise``: it starts the process, feeds it raw
frames on stdin when asked, captures its messages (in memory, or in a log file while it is fed),
kills it when a cancel token fires or its time is up, and always reaps it. ``run_ffmpeg`` and
``encode_frames`` are the two ways the rest of vidpipe calls it; the binary comes from
imageio-ffmpeg (``IMAGEIO_FFMPEG_EXE`` wins) and is checked once per path (``check_ffmpeg``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import imageio_ffmpeg

from vidpipe_core.cancel import NEVER, CancelToken
from vidpipe_core.errors import MediaError

FFMPEG_TIMEOUT_S = 900.0

_GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
_FEED_ARGS = ("-hide_banner", "-nostats", "-loglevel", "error")  # ffmpeg reading frames on stdin
_STDERR_TAIL_LINES = 15
CANCEL_POLL_S = 0.25  # how often a running ffmpeg looks at its cancel token


# --------------------------------------------------------------------------------------
# The binary
# --------------------------------------------------------------------------------------

_checked: dict[str, str] = {}  # exe path -> version line (successes only)


def _ffmpeg_missing(detail: str) -> MediaError:
    return MediaError(f"ffmpeg cannot run: {detail}; install imageio-ffmpeg or set IMAGEIO_FFMPEG_EXE to a working ffmpeg")


def _locate_ffmpeg() -> str:
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (RuntimeError, OSError) as exc:
        raise _ffmpeg_missing(str(exc)) from exc


def check_ffmpeg() -> str:
    """The first line of ``ffmpeg -version``; MediaError when ffmpeg is missing or broken.

    A success is cached per executable path, so setting IMAGEIO_FFMPEG_EXE later is still honoured."""
    exe = _locate_ffmpeg()
    if exe in _checked:
        return _checked[exe]
    try:
        proc = supervise([exe, "-version"], what="ffmpeg -version", timeout=30)
    except (OSError, MediaError) as exc:  # it cannot start, or it hangs
        raise _ffmpeg_missing(f"{exe!r}: {exc}") from exc
    out = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0 or not out.startswith("ffmpeg"):
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _ffmpeg_missing(f"{exe!r} -version exited with {proc.returncode}: {' '.join(err[-3:]) or out[:200]}")
    _checked[exe] = out.splitlines()[0]
    return _checked[exe]


def ffmpeg_exe() -> str:
    """Path of a working ffmpeg binary (checked once per path)."""
    check_ffmpeg()
    return _locate_ffmpeg()


@dataclass(frozen=True)
class Finished:
    """How an ffmpeg process ended: its exit status, its stdout, and its messages (stderr, unless
    they went to ``log``); ``fed``: False when it stopped reading its stdin before the last chunk."""

    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""
    log: Path | None = None
    fed: bool = True

    def check(self, what: str) -> None:
        """MediaError with the tail of ffmpeg's messages unless it exited with 0 and took all it was fed."""
        if self.returncode != 0 or not self.fed:
            text = self.log.read_text("utf-8", "replace") if self.log is not None else self.stderr.decode("utf-8", "replace")
            tail = text.strip().splitlines()[-_STDERR_TAIL_LINES:]
            raise MediaError(f"{what}: ffmpeg exited with {self.returncode}: " + ("\n".join(tail) or "(no output)"))


def supervise(
    argv: Sequence[str],
    *,
    what: str,
    feed: Iterable[bytes] | None = None,
    log: Path | None = None,
    timeout: float = FFMPEG_TIMEOUT_S,
    cancel: CancelToken = NEVER,
) -> Finished:
    """Run ``argv`` (the whole command line) to its end and say how it ended; the one place a
    process of ffmpeg is started, and it never outlives this call. ``feed``: chunks written to its
    stdin one after the other, then closed (else stdin is /dev/null and stdout is captured).
    ``log``: a file for its messages instead of memory; required with ``feed``, since nothing
    reads a pipe while it is fed (a full pipe would stall it). A cancelled token kills it (at the
    next chunk while it is fed, within CANCEL_POLL_S while it runs) and raises Interrupted; past
    ``timeout`` seconds it is killed too, MediaError. OSError when it cannot be started."""
    if feed is not None and log is None:
        raise ValueError("supervise: a process that is fed needs a log file for its messages")
    deadline = time.monotonic() + timeout
    with contextlib.ExitStack() as stack:
        err: IO[bytes] | int = stack.enter_context(log.open("wb")) if log is not None else subprocess.PIPE
        stdin = subprocess.PIPE if feed is not None else subprocess.DEVNULL
        stdout = subprocess.DEVNULL if feed is not None else subprocess.PIPE
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=err)
        out: bytes | None = None
        messages: bytes | None = None
        fed = True
        with proc:
            try:
                if feed is not None:
                    fed = _feed(proc, feed, what=what, deadline=deadline, timeout=timeout, cancel=cancel)
                while True:
                    try:
                        wait = min(CANCEL_POLL_S, max(0.01, deadline - time.monotonic()))
                        if feed is None:
                            out, messages = proc.communicate(timeout=wait)
                        else:
                            proc.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        cancel.check()
                        if time.monotonic() >= deadline:
                            raise MediaError(f"{what}: ffmpeg did not finish within {timeout:.0f} s") from None
            except BaseException:
                proc.kill()
                proc.wait()
                if proc.stdin is not None:  # what is still buffered for a killed process is dropped
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
                raise
    return Finished(proc.returncode, out or b"", messages or b"", log, fed)


def _feed(
    proc: subprocess.Popen[bytes], chunks: Iterable[bytes], *, what: str, deadline: float, timeout: float, cancel: CancelToken
) -> bool:
    """Write ``chunks`` to the process's stdin and close it; False when it stopped reading early."""
    assert proc.stdin is not None  # stdin=PIPE
    broken = False
    for chunk in chunks:
        cancel.check()
        if time.monotonic() >= deadline:
            raise MediaError(f"{what}: ffmpeg did not finish within {timeout:.0f} s")
        try:
            proc.stdin.write(chunk)
        except BrokenPipeError:  # ffmpeg stopped early: its messages say why
            broken = True
            break
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    return not broken


def run_ffmpeg(args: Sequence[str], *, what: str, timeout: float = FFMPEG_TIMEOUT_S, cancel: CancelToken = NEVER) -> None:
    """Run ffmpeg with ``args`` (everything after the program name); MediaError with stderr's tail on failure.
    A cancelled token kills ffmpeg within half a second and raises Interrupted."""
    argv = [ffmpeg_exe(), *_GLOBAL_ARGS, *args]
    try:
        finished = supervise(argv, what=what, timeout=timeout, cancel=cancel)
    except OSError as exc:  # it could not be started
        raise _ffmpeg_missing(str(exc)) from exc
    finished.check(what)


def ffmpeg_messages(args: Sequence[str], *, what: str, timeout: float = FFMPEG_TIMEOUT_S, cancel: CancelToken = NEVER) -> str:
    """``run_ffmpeg`` for a job whose result is what it prints at the info level (a filter's
    measurements, such as loudnorm's): its messages, once it exited with 0."""
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", *args]
    try:
        finished = supervise(argv, what=what, timeout=timeout, cancel=cancel)
    except OSError as exc:
        raise _ffmpeg_missing(str(exc)) from exc
    finished.check(what)
    return finished.stderr.decode("utf-8", "replace")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return libc
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


def release_freed_memory() -> None:
    """Hand memory that Python has freed back to the OS (glibc's malloc_trim). Frames made or
    decoded on worker threads are freed into those threads' malloc arenas, which glibc keeps: an
    in-process run that renders 1080p clips on several threads otherwise keeps ~100 MiB it no
    longer uses through every later step (bench/README.md, memory)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def encode_frames(args: list[str], pictures: Iterator[bytes], *, what: str, log: Path, cancel: CancelToken = NEVER) -> None:
    """Run ffmpeg with ``args`` and feed it ``pictures`` (raw frames) on stdin. ffmpeg's messages go to
    ``log`` (a file: a pipe nobody reads could fill up and stall it). A cancelled token kills
    ffmpeg at the next frame and raises Interrupted; MediaError with the log's tail on failure."""
    argv = [ffmpeg_exe(), *_FEED_ARGS, *args]
    finished = supervise(argv, what=what, feed=pictures, log=log, cancel=cancel)
    release_freed_memory()  # the frames fed to the encoder are garbage now
    finished.check(what)
