"""`python -m bench._measure [--every S] -- CMD...`: run CMD, report its peak memory as JSON.

Runs in its own process so that RUSAGE_CHILDREN covers only CMD and its descendants:
`ru_maxrss` is then the peak RSS of the largest single process among them (exact, kernel
accounting; descendants count once they have been waited for, which subprocess/ffmpeg callers
do). The sum over the tree is sampled with psutil every S seconds (RSS of CMD + all live
descendants at that instant; a short spike between samples can be missed)."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import psutil


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=float, default=0.05)
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    started = time.perf_counter()
    epoch_start = time.time()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak_tree = peak_self = 0
    samples = 0
    timeline: list[tuple[float, int]] = []
    import threading

    out: dict[str, str] = {}

    def drain(name: str, stream) -> None:  # type: ignore[no-untyped-def]
        out[name] = stream.read()

    threads = [
        threading.Thread(target=drain, args=(n, s), daemon=True) for n, s in (("stdout", child.stdout), ("stderr", child.stderr))
    ]
    for t in threads:
        t.start()
    while child.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            total = 0
            for p in tree:
                try:
                    rss = p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                if p.pid == child.pid:
                    peak_self = max(peak_self, rss)
            peak_tree = max(peak_tree, total)
            samples += 1
            timeline.append((round(time.perf_counter() - started, 3), total))
        except psutil.NoSuchProcess:
            pass
        time.sleep(args.every)
    wall = time.perf_counter() - started
    for t in threads:
        t.join(timeout=10)
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    # keep the timeline small: at most ~400 points
    step = max(1, len(timeline) // 400)
    print(
        json.dumps(
            {
                "returncode": child.returncode,
                "epoch_start": epoch_start,
                "wall_s": wall,
                "peak_tree_rss": peak_tree,
                "peak_main_rss": peak_self,
                "max_single_rss": maxrss,
                "samples": samples,
                "every_s": args.every,
                "timeline": timeline[::step],
                "stdout": out.get("stdout", ""),
                "stderr_tail": out.get("stderr", "")[-3000:],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
