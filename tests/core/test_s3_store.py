"""The artifact store on S3 (moto's S3 server from tests/s3server.py, or the server named by
VIDPIPE_TEST_S3_ENDPOINT): path confinement, the project prefix rule, unfinished multipart
uploads, local copies in the data dir's scratch folder, and stored bytes checked against the ledger."""

from __future__ import annotations

import hashlib

import pytest

from vidpipe_core.errors import ConfigurationError, InvalidInput
from vidpipe_core.integrity import read_checked
from vidpipe_core.storage import STALE_UPLOAD_S, ArtifactStore, Layout


def _store(s3, tmp_path) -> ArtifactStore:  # type: ignore[no-untyped-def]
    return ArtifactStore(s3.url, tmp_path / "data")


def _uploads(s3) -> list[dict]:  # type: ignore[no-untyped-def]
    return s3.server.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])


def _start_upload(s3, key: str) -> str:  # type: ignore[no-untyped-def]
    """A multipart upload with one part sent and never completed: what a writer killed mid-upload leaves."""
    client = s3.server.client()
    upload = client.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 1024)
    return upload


@pytest.mark.parametrize(
    "project_id, relpath",
    [
        ("p1", "../p2/x"),
        ("p1", "a/../../p2/x"),
        ("p1", "/vidpipe/projects/p2/x"),
        ("p1", "s3://another-bucket/x"),
        ("p1", ".."),
        ("../p2", "x"),
        ("p1/../p2", "x"),
        ("p1/x", "y"),
        ("", "x"),
    ],
)
def test_hostile_paths_and_ids_are_refused_on_s3(s3, tmp_path, project_id, relpath):
    store = _store(s3, tmp_path)
    store.write_bytes("p1", "ok.txt", b"ok")
    with pytest.raises(InvalidInput):
        store.write_bytes(project_id, relpath, b"evil")
    with pytest.raises(InvalidInput):
        store.read_bytes(project_id, relpath)
    with pytest.raises(InvalidInput), store.local_copy(project_id, relpath):
        pass
    assert s3.keys() == ["vidpipe/projects/p1/ok.txt"]
    # Keys in the URL would become part of every URI vidpipe shows and stores: refused, not shown.
    with pytest.raises(ConfigurationError) as refused:
        ArtifactStore(f"s3://AKIDEXAMPLE:pw-hidden-123@{s3.bucket}/vidpipe")
    assert "pw-hidden-123" not in str(refused.value) and "AWS_ACCESS_KEY_ID" in str(refused.value)


def test_delete_removes_only_the_projects_prefix(s3, tmp_path):
    store = _store(s3, tmp_path)
    store.write_bytes("p1", Layout.STORYBOARD, b"{}")
    store.write_bytes("p1", Layout.clip(0, "f" * 64), b"clip")
    store.write_bytes("p10", Layout.STORYBOARD, b"{}")
    s3.put("vidpipe/projects/p1x", b"an object whose name starts like p1")
    s3.put("vidpipe/projects/p1", b"an object named like the project's folder")
    s3.put("elsewhere/projects/p1/storyboard.json", b"another root")
    _start_upload(s3, "vidpipe/projects/p1/final.mp4")
    _start_upload(s3, "vidpipe/projects/p10/final.mp4")
    assert store.has_project("p1") and store.has_project("p10")
    assert not store.has_project("p1x") and not store.has_project("p2")  # p1x is an object, not a project

    store.delete_project("p1")

    assert s3.keys() == [
        "elsewhere/projects/p1/storyboard.json",
        "vidpipe/projects/p1",
        "vidpipe/projects/p10/storyboard.json",
        "vidpipe/projects/p1x",
    ]
    assert [u["Key"] for u in _uploads(s3)] == ["vidpipe/projects/p10/final.mp4"]
    assert not store.has_project("p1") and store.has_project("p10")


def test_unfinished_upload_is_invisible_kept_while_fresh_and_aborted_when_stale(s3, tmp_path):
    store = _store(s3, tmp_path)
    mine = _start_upload(s3, "vidpipe/projects/p1/clips/scene_001_abc.mp4")
    _start_upload(s3, "vidpipe/projects/p10/clips/scene_001_abc.mp4")
    assert not store.exists("p1", "clips/scene_001_abc.mp4") and not store.has_project("p1")

    # Ages count from the server's own Initiated time (moto reports a fixed date, a real server the real one).
    started = next(u["Initiated"] for u in _uploads(s3) if u["UploadId"] == mine).timestamp()
    assert store.clean_partials("p1", now=started + 60) == []
    assert store.clean_partials("p1", now=started + STALE_UPLOAD_S - 60) == []
    assert len(_uploads(s3)) == 2
    assert store.clean_partials("p1", now=started + STALE_UPLOAD_S + 60) == ["clips/scene_001_abc.mp4"]
    assert [u["Key"] for u in _uploads(s3)] == ["vidpipe/projects/p10/clips/scene_001_abc.mp4"]

    # Listing uploads can be refused (no ListMultipartUploads permission, here a bucket that is
    # not there): the clean-up is skipped, the step goes on.
    gone = ArtifactStore(f"s3://{s3.bucket}-missing/vidpipe", tmp_path / "data")
    assert gone.clean_partials("p1") == []
    assert ArtifactStore("memory://vp-no-uploads", tmp_path / "data").clean_partials("p1") == []  # no multipart API


def test_local_copy_is_staged_in_the_data_dirs_scratch_and_removed(s3, tmp_path, monkeypatch):
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    store = _store(s3, tmp_path)
    store.write_bytes("p1", "clips/a.mp4", b"clip bytes")
    with store.local_copy("p1", "clips/a.mp4") as local:
        assert local.read_bytes() == b"clip bytes"
        assert local.is_relative_to(tmp_path / "data" / "tmp")
        assert local.name == "a.mp4"
    assert not local.exists() and list((tmp_path / "data" / "tmp").iterdir()) == []
    assert list(system_tmp.iterdir()) == []
    with pytest.raises(FileNotFoundError), store.local_copy("p1", "clips/missing.mp4"):
        pass
    assert list((tmp_path / "data" / "tmp").iterdir()) == []


def test_changed_or_deleted_object_is_caught_by_sha256(s3, tmp_path):
    store = _store(s3, tmp_path)
    relpath = Layout.clip(0, "f" * 64)
    data = b"the clip as written"
    store.write_bytes("p1", relpath, data)
    recorded = hashlib.sha256(data).hexdigest()
    assert read_checked(store, "p1", relpath, recorded) == (data, None)
    assert store.exists("p1", relpath)

    # Another host overwrites it, then deletes it: this store sees both at once (no listings cache).
    key = f"vidpipe/projects/p1/{relpath}"
    s3.put(key, b"the clip as another writer left it")
    got, problem = read_checked(store, "p1", relpath, recorded)
    assert got == b"the clip as another writer left it" and problem and "does not match the ledger" in problem
    store.fs.find(store.project_root("p1"))  # a listing, which a listings cache would keep
    s3.server.client().delete_object(Bucket=s3.bucket, Key=key)
    assert not store.exists("p1", relpath) and not store.has_project("p1")
    assert read_checked(store, "p1", relpath, recorded) == (None, "the file is missing")
