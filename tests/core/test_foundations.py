"""Unit tests: ids, path confinement, fingerprints, cost, settings."""

from __future__ import annotations

import pytest

from vidpipe_core.config import Settings
from vidpipe_core.cost import estimate, guard_budget, video_cost
from vidpipe_core.errors import BudgetExceeded, InvalidInput
from vidpipe_core.fingerprint import clip_fingerprint, keyframe_fingerprint
from vidpipe_core.ids import new_project_id, slug_from_prompt, validate_project_id
from vidpipe_core.storage import ArtifactStore, Layout, confine


@pytest.mark.parametrize("good", ["a", "0", "my-video-2", "a" * 63, "9-lives"])
def test_valid_ids(good):
    assert validate_project_id(good) == good


@pytest.mark.parametrize("bad", ["", "-a", "A", "a_b", "a b", "../x", "a/b", "a" * 64, "é", "a.", ".", "a\n"])
def test_invalid_ids(bad):
    with pytest.raises(InvalidInput) as exc:
        validate_project_id(bad)
    assert exc.value.field == "id"


def test_slugs():
    assert slug_from_prompt("A Café at Night, with Jazz & rain!") == "a-cafe-at-night"  # not on "with" (tests/core/test_ids.py)
    assert slug_from_prompt("!!!") == "project"
    taken = {"a-b", "a-b-1"}
    assert new_project_id("A b", lambda i: False) == "a-b"
    generated = new_project_id("A b", lambda i: i in taken)
    assert generated.startswith("a-b-") and validate_project_id(generated)


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/abs", "..", "", "a\\b", "s3://bucket/x", "x\x00"])
def test_confine_refuses_escapes(bad):
    with pytest.raises(InvalidInput):
        confine(bad)


def test_confine_normalises():
    assert confine("keyframes/./a.png") == "keyframes/a.png"
    assert confine("a/b/../c") == "a/c"


def test_store_never_writes_outside_project(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(InvalidInput):
        store.write_bytes("p1", "../p2/x", b"x")
    with pytest.raises(InvalidInput):
        store.write_bytes("../p2", "x", b"x")
    path = store.write_bytes("p1", Layout.keyframe(0, "f" * 64), b"png")
    assert path.startswith(str(tmp_path / "store" / "projects" / "p1"))
    assert not list((tmp_path / "store").rglob("*.partial"))


def test_memory_store_roundtrip():
    store = ArtifactStore("memory://vp-test")
    store.write_bytes("p", "clips/a.mp4", b"abc")
    with store.local_copy("p", "clips/a.mp4") as local:
        assert local.read_bytes() == b"abc"


def _kf(**kw):
    base = dict(
        provider="animatic", model="animatic", prompt="p", aspect_ratio="16:9", reference_sha256=None, render_size=(256, 144)
    )
    base.update(kw)
    return keyframe_fingerprint(**base)


def _clip(**kw):
    base = dict(
        provider="google",
        model="veo",
        prompt="p",
        start_sha256="a",
        end_sha256="b",
        duration_s=4,
        aspect_ratio="16:9",
        generate_audio=True,
        negative_prompt="",
        seed=None,
    )
    base.update(kw)
    return clip_fingerprint(**base)


def test_fingerprints_change_with_every_input():
    assert _kf() == _kf()
    variants = [_kf(prompt="q"), _kf(model="m"), _kf(aspect_ratio="9:16"), _kf(reference_sha256="x"), _kf(render_size=(512, 288))]
    assert len({_kf(), *variants}) == 6
    clip_variants = [
        _clip(prompt="q"),
        _clip(start_sha256="c"),
        _clip(end_sha256="c"),
        _clip(duration_s=6),
        _clip(generate_audio=False),
        _clip(seed=1),
        _clip(negative_prompt="blur"),
        _clip(model="veo-fast"),
    ]
    assert len({_clip(), *clip_variants}) == 9


def test_cost_estimate_and_guard():
    from vidpipe_core.schemas import ProjectSpec, StageProviders

    s = Settings()
    spec = ProjectSpec(
        id="x",
        prompt="p",
        style="s",
        aspect_ratio="16:9",
        clip_duration=8,
        scenes=4,
        providers=StageProviders(storyboard="google", keyframes="google", clips="google"),
    )
    est = estimate(s, spec, {"storyboard": s.storyboard_model, "keyframes": s.image_model, "clips": s.video_model})
    assert est.clips_usd == pytest.approx(4 * 8 * 0.40)
    assert est.keyframes_usd == pytest.approx(5 * 0.039)
    assert 0 < est.storyboard_usd < 0.05
    assert video_cost(s, s.video_model, 10, audio=False) == pytest.approx(2.0)
    guard_budget("clips", 1.0, 2.0, 3.0)
    with pytest.raises(BudgetExceeded) as exc:
        guard_budget("clips", 1.0, 2.5, 3.0)
    assert "$3.50" in str(exc.value) and "$3.00" in str(exc.value)


def test_settings_from_env_and_file(tmp_path, monkeypatch):
    cfg = tmp_path / "vidpipe.toml"
    cfg.write_text("default_scenes = 7\nfps = 30\n")
    monkeypatch.setenv("VIDPIPE_CONFIG", str(cfg))
    monkeypatch.setenv("VIDPIPE_FPS", "25")
    s = Settings(data_dir=tmp_path)
    assert s.default_scenes == 7 and s.fps == 25
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'vidpipe.db'}"
