"""Writing a stitch: the spans' video packets one after the other, re-timed and never decoded,
with the audio's packets interleaved by time, into a faststart mp4 (PyAV's muxer)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av

from vidpipe_core.cancel import CancelToken
from vidpipe_core.errors import MediaError
from vidpipe_core.media.audio import _Audio
from vidpipe_core.media.probe import _demuxer


def _splice(video: Sequence[tuple[Path, int, int]], audio: _Audio | None, out: Path, *, fps: float, cancel: CancelToken) -> None:
    """Write ``out``: the frames [start, end) of each (file, start, end) in turn, their packets
    re-timed, never decoded, and ``audio``'s packets interleaved by time (faststart mp4)."""
    try:
        with av.open(str(out), mode="w", format="mp4", container_options={"movflags": "+faststart"}) as output:
            with _demuxer(video[0][0]) as first:
                vout = output.add_stream_from_template(first.streams.video[0])
            aout: av.audio.stream.AudioStream | None = None
            if audio is not None:
                with _demuxer(audio.template) as src:
                    aout = output.add_stream_from_template(src.streams.audio[0])
            queue = deque(audio.packets if audio is not None else [])
            a_tb = Fraction(1, audio.rate) if audio is not None else Fraction(1)

            def audio_until(seconds: float | None) -> None:
                while queue and (seconds is None or queue[0][1] * a_tb <= seconds):
                    data, pts, dur = queue.popleft()
                    packet = av.Packet(data)
                    packet.pts = packet.dts = pts
                    packet.duration, packet.time_base = dur, a_tb
                    assert aout is not None  # packets are queued only with an audio stream
                    packet.stream = aout
                    output.mux(packet)

            offset = 0  # frames written
            last_dts: Fraction | None = None
            for path, start, end in video:
                with _demuxer(path) as src:
                    stream = src.streams.video[0]
                    tb, base = stream.time_base or Fraction(1, 90000), stream.start_time or 0
                    ticks = 1 / (fps * float(tb))
                    shift = round((offset - start) * ticks) - base
                    for packet in src.demux(stream):
                        if packet.pts is None or not packet.size:
                            continue
                        index = round((packet.pts - base) / ticks)
                        if not start <= index < end:
                            continue
                        packet.dts = (packet.pts if packet.dts is None else packet.dts) + shift
                        packet.pts += shift
                        if not packet.duration:
                            packet.duration = round(ticks)
                        dts = Fraction(packet.dts) * tb
                        if last_dts is not None and dts <= last_dts:
                            raise MediaError(f"{path.name}: its frames cannot follow the previous span's (decoding order)")
                        last_dts = dts
                        audio_until(float(dts))
                        packet.stream = vout
                        output.mux(packet)
                        if index % 64 == 0:
                            cancel.check()
                offset += end - start
            audio_until(None)
    except av.FFmpegError as exc:
        raise MediaError(f"writing {out.name}: {exc}") from exc
