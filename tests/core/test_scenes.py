"""Scene numbers: people type and read them from 1, the ledger counts from 0 (vidpipe_core.scenes)."""

import pytest

from vidpipe_core.errors import InvalidInput
from vidpipe_core.scenes import frame_label, frame_tag, scene_indices, scene_label, scene_list


def test_typed_numbers_become_indices_and_bad_ones_are_refused_as_typed() -> None:
    assert scene_indices([1, 3], 3) == [0, 2]
    with pytest.raises(InvalidInput) as zero:
        scene_indices([0], 3)
    assert "0 is out of range; scenes are numbered from 1" in str(zero.value)
    assert "1-3" in str(zero.value)
    with pytest.raises(InvalidInput) as past:
        scene_indices([2, 4, 5], 3)
    assert "4, 5 are out of range" in str(past.value)


def test_labels_count_from_one() -> None:
    assert scene_label(0) == "scene 1"
    assert scene_list([2, 0, 2]) == "scenes 1, 3"
    assert scene_list([1]) == "scene 2"
    assert [frame_label(k, 2) for k in range(3)] == [
        "the start frame of scene 1",
        "the frame between scenes 1 and 2",
        "the end frame of scene 2",
    ]
    assert frame_tag(1, 2) == "scene 1 end / 2 start"
