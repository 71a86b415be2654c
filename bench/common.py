"""Shared plumbing of the benchmarks: header block, statistics, tables, JSON results, a fresh
vidpipe/Dagster home, the wire emulator in its own process, and peak-RSS measurement of a
process tree.

Nothing here asserts anything: the benchmarks print and record."""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = sys.executable

# Variables that would switch the google-genai SDK away from express mode against the emulator.
_CONFLICTING_GOOGLE_ENV = (
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_GENAI_CLIENT_MODE",
    "GOOGLE_API_USE_CLIENT_CERTIFICATE",
    "GOOGLE_API_USE_MTLS_ENDPOINT",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


# ------------------------------------------------------------------------------------------
# Header block: when, where, what
# ------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _ffmpeg_line() -> str:
    try:
        from vidpipe_core.media import check_ffmpeg

        return check_ffmpeg()
    except Exception as exc:
        return f"unavailable ({exc})"


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
        return head.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def header(load_at_start: tuple[float, float, float] | None = None) -> dict[str, Any]:
    import psutil

    load = load_at_start or os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": {
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {
            "vidpipe": _version("vidpipe"),
            "git": _git(),
            "dagster": _version("dagster"),
            "google-genai": _version("google-genai"),
            "ffmpeg": _ffmpeg_line(),
            "moviepy": _version("moviepy"),
        },
        "load_average_at_start": [round(x, 2) for x in load],
    }


def header_markdown(h: dict[str, Any]) -> str:
    m, v = h["machine"], h["versions"]
    return "\n".join(
        [
            f"- date: {h['date']}",
            f"- machine: {m['cpu_model']}, os.cpu_count()={m['cpu_count']}, {m['ram_gib']} GiB RAM, {m['platform']}, "
            f"Python {m['python']}",
            f"- versions: vidpipe {v['vidpipe']} (git {v['git']}), dagster {v['dagster']}, google-genai {v['google-genai']}, "
            f"moviepy {v['moviepy']}",
            f"- ffmpeg: {v['ffmpeg']}",
            f"- load average at start (1/5/15 min): {' / '.join(str(x) for x in h['load_average_at_start'])}"
            + (f"; at end: {' / '.join(str(x) for x in h['load_average_at_end'])}" if h.get("load_average_at_end") else ""),
        ]
    )


# ------------------------------------------------------------------------------------------
# Statistics and tables
# ------------------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, Any]:
    vals = [float(v) for v in values]
    if not vals:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {"n": len(vals), "median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals}


def fmt_s(s: dict[str, Any] | float | None, digits: int = 2) -> str:
    """'7.43 (7.38–7.51)' for a summary, '7.43' for a number."""
    if s is None:
        return "–"
    if isinstance(s, dict):
        if s.get("median") is None:
            return "–"
        if s["n"] == 1:
            return f"{s['median']:.{digits}f}"
        return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"
    return f"{s:.{digits}f}"


def mib(n_bytes: float | None) -> str:
    return "–" if n_bytes is None else f"{n_bytes / 2**20:.0f}"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(columns) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Report:
    """What one benchmark hands back: markdown to print, data to record."""

    name: str
    title: str
    setup: list[str] = field(default_factory=list)  # how it was measured (bullets)
    tables: list[str] = field(default_factory=list)  # markdown tables
    notes: list[str] = field(default_factory=list)  # findings (bullets)
    data: dict[str, Any] = field(default_factory=dict)  # everything, for the JSON

    def markdown(self, head: dict[str, Any]) -> str:
        parts = [f"## {self.title}", "", header_markdown(head), ""]
        if self.setup:
            parts += ["Setup:", "", *[f"- {s}" for s in self.setup], ""]
        for t in self.tables:
            parts += [t, ""]
        if self.notes:
            parts += ["Findings:", "", *[f"- {n}" for n in self.notes], ""]
        return "\n".join(parts)


def write_json(report: Report, head: dict[str, Any], quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{report.name}-{stamp}.json"
    doc = {
        "benchmark": report.name,
        "quick": quick,
        "header": head,
        "setup": report.setup,
        "notes": report.notes,
        "tables_markdown": report.tables,
        "data": report.data,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, out)
    return out


# ------------------------------------------------------------------------------------------
# A fresh vidpipe + Dagster home
# ------------------------------------------------------------------------------------------


def fresh_home(prefix: str) -> Path:
    """A new temporary VIDPIPE_DATA_DIR with DAGSTER_HOME inside it (dagster.yaml copied on first use)."""
    root = Path(tempfile.mkdtemp(prefix=f"vidpipe-bench-{prefix}-"))
    os.environ["VIDPIPE_DATA_DIR"] = str(root / "data")
    os.environ["DAGSTER_HOME"] = str(root / "dagster")
    os.environ.pop("VIDPIPE_CONFIG", None)
    # The benchmarks time whole renders: no review gate stops them before the clips.
    os.environ.setdefault("VIDPIPE_REVIEW", "none")
    return root


def remove_home(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def set_pool_limit(limit: int) -> None:
    """Limit of the global `video-operations` pool on the instance at $DAGSTER_HOME."""
    from vidpipe_core.config import get_settings
    from vidpipe_dagster.instance import get_instance

    settings = get_settings()
    instance = get_instance(settings)
    instance.event_log_storage.set_concurrency_slots(settings.video_pool, limit)


# ------------------------------------------------------------------------------------------
# The wire emulator, in its own process (a remote service does not share our GIL or cores' time
# slices politely either; in-process it would also compete for the GIL with the code measured)
# ------------------------------------------------------------------------------------------


class EmulatorProcess:
    def __init__(
        self,
        *,
        video_latency_s: float,
        latency: dict[str, float],
        image_height: int,
        video_height: int,
        video_delivery: str = "bytes",
    ) -> None:
        self.config = {
            "video_latency_s": video_latency_s,
            "latency": latency,
            "image_height": image_height,
            "video_height": video_height,
            "video_delivery": video_delivery,
        }
        argv = [
            PYTHON,
            "-m",
            "vidpipe_emulator",
            "--port",
            "0",
            "--video-latency",
            str(video_latency_s),
            "--image-height",
            str(image_height),
            "--video-height",
            str(video_height),
            "--video-delivery",
            video_delivery,
            "--faults",
            json.dumps({"latency": latency}),
        ]
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if not first.startswith("VIDPIPE_EMULATOR_URL="):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"emulator did not start: {first!r} {err[-2000:]}")
        self.url = first.split("=", 1)[1]

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path, data=data, method="GET" if body is None else "POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._call("/_emulator/stats")

    def requests(self) -> list[dict[str, Any]]:
        return self._call("/_emulator/requests")

    def reset(self) -> None:
        self._call("/_emulator/reset", {})

    def configure(self, **changes: Any) -> None:
        self._call("/_emulator/config", changes)

    def point_sdk_here(self) -> None:
        """The environment that makes `genai.Client()` use Vertex express mode against this emulator."""
        for name in _CONFLICTING_GOOGLE_ENV:
            os.environ.pop(name, None)
        os.environ.update(
            {
                "GOOGLE_GENAI_USE_VERTEXAI": "true",
                "GOOGLE_API_KEY": "bench-not-a-secret",
                "GOOGLE_VERTEX_BASE_URL": self.url,
                "GOOGLE_GEMINI_BASE_URL": self.url,
            }
        )
        no_proxy = [p for p in (os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost") if p]
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(no_proxy)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InflightSampler:
    """Samples the emulator's `inflight` (submitted, not yet delivered operations) every `every` s."""

    def __init__(self, emu: EmulatorProcess, every: float = 0.1) -> None:
        self.emu, self.every = emu, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-inflight")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.perf_counter(), int(self.emu.stats()["inflight"])))
            except Exception:
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> InflightSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def mean_between(self, t0: float, t1: float) -> float:
        """Time-weighted mean of the samples in [t0, t1] (step function)."""
        pts = [(t, v) for t, v in self.samples if t0 <= t <= t1]
        if len(pts) < 2:
            return float(pts[0][1]) if pts else 0.0
        area = sum(v * (pts[i + 1][0] - t) for i, (t, v) in enumerate(pts[:-1]))
        return area / (pts[-1][0] - pts[0][0])


# ------------------------------------------------------------------------------------------
# Peak memory of a process tree
# ------------------------------------------------------------------------------------------


def run_measured(
    argv: Sequence[str], *, env: dict[str, str] | None = None, every: float = 0.05, timeout: float = 3600
) -> dict[str, Any]:
    """Run `argv` through `python -m bench._measure` (a fresh wrapper process), which samples the
    RSS of the child's whole process tree (child + every descendant, e.g. ffmpeg) every `every`
    seconds and reads RUSAGE_CHILDREN.ru_maxrss (the largest single process of the tree, exact)
    after the child exits. The child's stdout is returned; its last line may be JSON."""
    wrapper = [PYTHON, "-m", "bench._measure", "--every", str(every), "--", *argv]
    proc = subprocess.run(wrapper, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"measurement wrapper failed: {proc.stderr[-3000:]}")
    measured = json.loads(lines[-1])
    measured["stdout"] = measured.get("stdout", "")
    if measured["returncode"] != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {measured['returncode']}: {measured.get('stderr_tail', '')}")
    return measured


def last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in output: {text[-500:]!r}")


def maxrss_children_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b)


def log(msg: str) -> None:
    """Progress on stderr (stdout carries the tables)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
