"""``python -m vidpipe_emulator --port 0``: run the emulator in the foreground.

The first stdout line is ``VIDPIPE_EMULATOR_URL=http://127.0.0.1:PORT``
(flushed) so a parent process can read the URL before sending requests.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from types import FrameType
from typing import Any

from .server import Emulator


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vidpipe_emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--image-height", type=int, default=None)
    p.add_argument("--video-height", type=int, default=None)
    p.add_argument("--video-latency", type=float, default=None, help="seconds until a Veo op is done")
    p.add_argument("--video-latency-jitter", type=float, default=None, help="+/- seconds of seeded jitter on it")
    p.add_argument("--video-delivery", choices=("bytes", "uri"), default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-auth", action="store_true", help="do not require x-goog-api-key/Authorization")
    p.add_argument("--faults", default=None, help="JSON object of Faults fields, e.g. '{\"rate_429\": 0.1}'")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options: dict[str, Any] = {}
    for key, value in (
        ("image_height", args.image_height),
        ("video_height", args.video_height),
        ("video_latency_s", args.video_latency),
        ("video_latency_jitter_s", args.video_latency_jitter),
        ("video_delivery", args.video_delivery),
        ("seed", args.seed),
    ):
        if value is not None:
            options[key] = value
    if args.no_auth:
        options["require_api_key"] = False
    if args.faults:
        options.update(json.loads(args.faults))
    emulator = Emulator(host=args.host, port=args.port, **options)
    url = emulator.bind()

    def _terminate(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _terminate)
    print(f"VIDPIPE_EMULATOR_URL={url}", flush=True)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
