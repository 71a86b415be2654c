"""The one ffmpeg wrapper and prober of vidpipe, by concern:

- ``runner``: the ffmpeg binary and the one process supervisor every ffmpeg goes through
  (``supervise``; ``run_ffmpeg``, and ``encode_frames`` that feeds one raw frames on stdin), with
  cancel, timeouts and ffmpeg's messages captured;
- ``encoding``: the house format (encoder settings, output options, frame sizes);
- ``probe``: what a file is, read with PyAV (there is no ffprobe), and one decoded frame;
- ``plan``: the stitch planner (what is copied as packets, what is encoded for the fades);
- ``frames``, ``commands``, ``audio``, ``mux``: a stitch's segment frames, its ffmpeg command
  lines, its audio by packets and its muxing; ``stitcher``: the stitch itself (``stitch``);
- ``sheet``: contact sheets.

Callers use this package (``media.probe_file(...)``); the modules import one another directly.
"""

from vidpipe_core.media.audio import AUDIO_WARM_UP
from vidpipe_core.media.commands import (
    SEGMENT_X264_PARAMS,
    ClipInput,
    audio_job_args,
    crossfade_args,
    crossfade_offsets,
    segment_args,
)
from vidpipe_core.media.encoding import (
    AUDIO_BITRATE,
    AUDIO_CODEC,
    AUDIO_RATE,
    KEYFRAME_INTERVAL_S,
    PIX_FMT,
    THREADS,
    VIDEO_CODEC,
    X264_CRF,
    X264_PRESET,
    audio_out_kwargs,
    dimensions,
    ffmpeg_number,
    video_out_kwargs,
)
from vidpipe_core.media.frames import BLACK, Planes, read_frames, segment_frames
from vidpipe_core.media.plan import Blend, Copy, Encode, Frames, stitch_timeline
from vidpipe_core.media.probe import (
    MediaInfo,
    SampledFrames,
    VideoScan,
    probe,
    probe_bytes,
    probe_file,
    read_frame,
    sample_frames,
    scan_video,
    video_look,
)
from vidpipe_core.media.runner import (
    CANCEL_POLL_S,
    FFMPEG_TIMEOUT_S,
    Finished,
    check_ffmpeg,
    encode_frames,
    ffmpeg_exe,
    release_freed_memory,
    run_ffmpeg,
    supervise,
)
from vidpipe_core.media.sheet import (
    SHEET_BACKGROUND,
    SHEET_GAP,
    contact_sheet,
    contact_sheet_image,
    contact_sheet_size,
    ellipsize,
)
from vidpipe_core.media.stitcher import STITCH_WORKERS, STITCH_WORKERS_PIXELS, StitchResult, stitch

__all__ = [
    "AUDIO_BITRATE",
    "AUDIO_CODEC",
    "AUDIO_RATE",
    "AUDIO_WARM_UP",
    "BLACK",
    "CANCEL_POLL_S",
    "FFMPEG_TIMEOUT_S",
    "KEYFRAME_INTERVAL_S",
    "PIX_FMT",
    "SEGMENT_X264_PARAMS",
    "SHEET_BACKGROUND",
    "SHEET_GAP",
    "STITCH_WORKERS",
    "STITCH_WORKERS_PIXELS",
    "THREADS",
    "VIDEO_CODEC",
    "X264_CRF",
    "X264_PRESET",
    "Blend",
    "ClipInput",
    "Copy",
    "Encode",
    "Finished",
    "Frames",
    "MediaInfo",
    "Planes",
    "StitchResult",
    "VideoScan",
    "audio_job_args",
    "audio_out_kwargs",
    "check_ffmpeg",
    "contact_sheet",
    "contact_sheet_image",
    "contact_sheet_size",
    "crossfade_args",
    "crossfade_offsets",
    "dimensions",
    "ellipsize",
    "encode_frames",
    "ffmpeg_exe",
    "ffmpeg_number",
    "probe",
    "probe_bytes",
    "probe_file",
    "read_frame",
    "sample_frames",
    "SampledFrames",
    "read_frames",
    "release_freed_memory",
    "run_ffmpeg",
    "scan_video",
    "segment_args",
    "segment_frames",
    "stitch",
    "stitch_timeline",
    "supervise",
    "video_look",
    "video_out_kwargs",
]
