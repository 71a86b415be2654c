"""Small helpers shared by tests: image comparison and reading Dagster metadata."""
from __future__ import annotations

import io

import dagster as dg
import numpy as np
from PIL import Image


def mean_abs_diff(a: Image.Image, b: Image.Image, size: tuple[int, int] = (64, 36)) -> float:
    """Mean absolute pixel difference (0-255) of two images scaled to a common small size."""
    x = np.asarray(a.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32)
    y = np.asarray(b.convert("RGB").resize(size, Image.BILINEAR), dtype=np.float32)
    return float(np.abs(x - y).mean())


def png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    assert records, f"{asset}[{partition}] was never materialized"
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def check_results(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    out = {}
    for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        data = rec.dagster_event.event_specific_data
        out[data.check_name] = data.passed
    return out
