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
from collections.abc import Iterator, Sequence
from pathlib import Path

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
        proc = subprocess.run([exe, "-version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
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


def run_ffmpeg(args: Sequence[str], *, what: str, timeout: float = FFMPEG_TIMEOUT_S, cancel: CancelToken = NEVER) -> None:
    """Run ffmpeg with ``args`` (everything after the program name); MediaError with stderr's tail on failure.
    A cancelled token kills ffmpeg within half a second and raises Interrupted."""
    argv = [ffmpeg_exe(), *_GLOBAL_ARGS, *args]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        raise _ffmpeg_missing(str(exc)) from exc
    deadline = time.monotonic() + timeout
    with proc:
        try:
            while True:
                try:
                    _out, err = proc.communicate(timeout=min(CANCEL_POLL_S, max(0.01, deadline - time.monotonic())))
                    break
                except subprocess.TimeoutExpired:
                    cancel.check()
                    if time.monotonic() >= deadline:
                        raise MediaError(f"{what}: ffmpeg did not finish within {timeout:.0f} s") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-_STDERR_TAIL_LINES:]
        raise MediaError(f"{what}: ffmpeg exited with {proc.returncode}: " + ("\n".join(tail) or "(no output)"))


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
    deadline = time.monotonic() + FFMPEG_TIMEOUT_S
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None  # stdin=PIPE
        try:
            broken = False
            for picture in pictures:
                cancel.check()
                if time.monotonic() >= deadline:
                    raise MediaError(f"{what}: ffmpeg did not finish within {FFMPEG_TIMEOUT_S:.0f} s")
                try:
                    proc.stdin.write(picture)
                except BrokenPipeError:  # ffmpeg stopped early: its log says why
                    broken = True
                    break
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            while True:
                try:
                    proc.wait(timeout=CANCEL_POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    cancel.check()
                    if time.monotonic() >= deadline:
                        raise MediaError(f"{what}: ffmpeg did not finish within {FFMPEG_TIMEOUT_S:.0f} s") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    release_freed_memory()  # the frames fed to the encoder are garbage now
    if proc.returncode != 0 or broken:
        tail = log.read_text("utf-8", "replace").strip().splitlines()[-_STDERR_TAIL_LINES:]
        raise MediaError(f"{what}: ffmpeg exited with {proc.returncode}: " + ("\n".join(tail) or "(no output)"))
