"""A stitch's audio by packets: each clip's AAC track cut to its video within half a frame and
joined without decoding, and only the packets that carry a fade decoded and encoded again, on
the same grid of AAC frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from vidpipe_core.media.probe import _demuxer


@dataclass
class _Audio:
    """An audio track as packets: (data, pts, duration) in samples; ``template`` has the stream
    that describes them (codec and its configuration)."""

    template: Path
    rate: int
    packets: list[tuple[bytes, int, int]]


class _NoCopy(Exception):
    """The audio cannot be joined by copying packets (the caller re-encodes it)."""


def _audio_packets(path: Path) -> tuple[list[tuple[bytes, int, int]], int, int]:
    """A file's audio packets (data, pts, duration) in samples from the stream's start (encoder
    priming has pts < 0), its sample rate and its frame size."""
    with _demuxer(path) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        scale = float(stream.time_base or Fraction(1, rate)) * rate
        base = stream.start_time or 0
        packets = [
            (bytes(p), round((p.pts - base) * scale), round((p.duration or 0) * scale))
            for p in container.demux(stream)
            if p.pts is not None and p.size
        ]
        size = stream.codec_context.frame_size
    if not packets or not size or any(d > size for _, _, d in packets):
        raise _NoCopy(f"{path.name}: audio frames of no fixed size")
    return packets, rate, size


def _copied_audio(paths: Sequence[Path], starts: Sequence[int], total: int, fps: float) -> _Audio:
    """The clips' audio packets one after the other, each clip's first content sample at its video's
    first frame (``starts``, in frames) within half an AAC frame, and never drifting: a clip's track
    is cut by whole packets where the next clip's begins (its encoder priming kept, so that its first
    samples decode as they were encoded), and the last one ends with the video (``total`` frames)."""
    out: list[tuple[bytes, int, int]] = []
    cursor: int | None = None
    rate = size = 0
    clips = [_audio_packets(p) for p in paths]
    for i, (packets, rate, size) in enumerate(clips):
        if (rate, size) != clips[0][1:]:
            raise _NoCopy("the clips' audio differs")
        shift = round(starts[i] * rate / fps)  # where this clip's sample 0 goes in the output
        if i + 1 < len(clips):
            nxt = clips[i + 1][0]
            until = round(starts[i + 1] * clips[i + 1][1] / fps) + nxt[0][1]  # the next clip's first packet
        else:
            until = round(total * rate / fps)
        if cursor is None:
            k, cursor = 0, packets[0][1] + shift
        else:
            at = cursor - shift  # the packet that best continues the output here
            k = min(range(len(packets)), key=lambda j: abs(packets[j][1] - at))
        last = i + 1 == len(clips)
        while k < len(packets) and (cursor < until if last else cursor + size - until <= size // 2):
            out.append((packets[k][0], cursor, size))
            cursor += size
            k += 1
        if cursor < until - size // 2:
            raise _NoCopy(f"{paths[i].name}: its audio is shorter than its video")
    assert cursor is not None
    data, pts, _ = out[-1]
    out[-1] = (data, pts, max(1, min(size, until - pts)))  # the audio ends with the video
    return _Audio(paths[0], rate, out)


def _codec(template: Path, mode: Literal["r", "w"]) -> av.audio.codeccontext.AudioCodecContext:
    """A decoder ("r") of ``template``'s audio stream, or an encoder ("w") that writes the same
    configuration (else _NoCopy: its packets could not follow the stream's)."""
    with _demuxer(template) as container:
        cc = container.streams.audio[0].codec_context
        name, rate, layout, bit_rate, extra = cc.name, cc.sample_rate, cc.layout.name, cc.bit_rate, bytes(cc.extradata or b"")
    ctx = av.CodecContext.create(name, mode)
    assert isinstance(ctx, av.audio.codeccontext.AudioCodecContext)
    if mode == "r":
        ctx.extradata = extra
        return ctx
    ctx.sample_rate, ctx.layout, ctx.format = rate, layout, "fltp"
    ctx.bit_rate = bit_rate or 128_000
    ctx.time_base = Fraction(1, rate)
    ctx.open()
    if bytes(ctx.extradata or b"") != extra:
        raise _NoCopy("this AAC encoder's configuration differs from the clips'")
    return ctx


AUDIO_WARM_UP = 2  # AAC frames the encoder is given before the first one it replaces


def _reencode(audio: _Audio, first: int, last: int, gain: Callable[[np.ndarray], np.ndarray]) -> list[tuple[bytes, int, int]]:
    """Packets ``first``..``last`` (indices) decoded, multiplied by ``gain(sample times)`` and
    encoded again on the same grid of AAC frames. An AAC frame's window overlaps its neighbours',
    and its shape follows theirs: so the decoder is given the packet before the first one it
    needs and the one after ``last``, and the encoder starts AUDIO_WARM_UP frames early on the
    same samples (its first frames thrown away), so that the new packets meet the old ones as the
    old ones met each other (their windows cancel out at the joins)."""
    packets, rate = audio.packets, audio.rate
    decoder = _codec(audio.template, "r")
    begin = max(0, first - AUDIO_WARM_UP)  # the first packet whose samples the encoder is given
    blocks = []
    for data, pts, _ in packets[max(0, begin - 1) : min(len(packets), last + 2)]:
        for frame in decoder.decode(av.Packet(data)):
            blocks.append((pts, frame.to_ndarray()))
    start = packets[begin][1] if begin > 0 else 0  # a track's first packet is its encoder priming
    samples = np.concatenate([b for pts, b in blocks if pts >= start], axis=1).astype(np.float32)
    samples = samples * gain(start + np.arange(samples.shape[1])).astype(np.float32)
    encoder = _codec(audio.template, "w")
    size = encoder.frame_size
    encoded: list[tuple[bytes, int]] = []
    for k in range(0, samples.shape[1] - samples.shape[1] % size, size):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, k : k + size]), format="fltp", layout=encoder.layout.name
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, k, Fraction(1, rate)
        encoded += [(bytes(p), start + (p.pts or 0)) for p in encoder.encode(frame)]
    encoded += [(bytes(p), start + (p.pts or 0)) for p in encoder.encode(None)]
    wanted = {pts: dur for _, pts, dur in packets[first : last + 1]}
    kept = [(data, pts, wanted[pts]) for data, pts in encoded if pts in wanted]
    if len(kept) != len(wanted):
        raise _NoCopy("the re-encoded frames do not line up with the track's")
    return kept


def _refaded(audio: _Audio, *, fade_in: float, fade_out: float, total: int) -> _Audio:
    """``audio`` with its first ``fade_in`` seconds faded in and its last ``fade_out`` faded out
    (``total``: its length in samples); only the packets that carry the fades are encoded again."""
    packets, rate, size = audio.packets, audio.rate, audio.packets[0][2]
    fin, fout = round(fade_in * rate), round(fade_out * rate)
    head = max((k for k, (_, pts, _) in enumerate(packets) if pts < fin), default=-1) if fin else -1
    tail = (
        min((k for k, (_, pts, _) in enumerate(packets) if pts + 2 * size > total - fout), default=len(packets))
        if fout
        else len(packets)
    )

    def gain(t: np.ndarray) -> np.ndarray:
        g = np.ones(t.shape, dtype=np.float64)
        if fin:
            g = np.minimum(g, np.clip(t / fin, 0.0, 1.0))
        if fout:
            g = np.minimum(g, np.clip((total - t) / fout, 0.0, 1.0))
        return g

    if head + 1 >= tail - 1:  # the two fades touch: the whole track
        return _Audio(audio.template, rate, _reencode(audio, 0, len(packets) - 1, gain))
    out = list(packets)
    if head >= 0:
        out[: head + 1] = _reencode(audio, 0, head, gain)
    if tail < len(packets):
        out[tail:] = _reencode(audio, tail, len(packets) - 1, gain)
    return _Audio(audio.template, rate, out)


def _file_audio(path: Path, total: int, fps: float) -> _Audio:
    """The audio track of one file (an audio job's output) as packets, ending with the video."""
    packets, rate, size = _audio_packets(path)
    end = round(total * rate / fps)
    kept = [(d, pts, dur or size) for d, pts, dur in packets if pts < end]
    data, pts, dur = kept[-1]
    kept[-1] = (data, pts, max(1, min(dur, end - pts)))
    return _Audio(path, rate, kept)
