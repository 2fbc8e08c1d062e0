import pytest

from dck_talking.timeline import output_frame_count, source_indices


def test_trim_when_the_video_is_longer():
    assert list(source_indices(3, 10, "loop")) == [0, 1, 2]


def test_policies_extend_a_short_video():
    assert list(source_indices(10, 4, "pingpong")) == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert list(source_indices(9, 4, "loop")) == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert list(source_indices(6, 4, "freeze")) == [0, 1, 2, 3, 3, 3]
    assert list(source_indices(4, 1, "pingpong")) == [0, 0, 0, 0]  # a photo


def test_pingpong_never_jumps():
    indices = list(source_indices(500, 7, "pingpong"))
    assert all(abs(a - b) == 1 for a, b in zip(indices, indices[1:]))


def test_output_lasts_as_long_as_the_audio():
    assert output_frame_count(16000 * 3, 16000, 25) == 75
    assert output_frame_count(16000 * 3 + 100, 16000, 25) == 76  # covers the tail, within one frame
    assert output_frame_count(16000 * 2, 16000, 30000 / 1001) == 60
    assert output_frame_count(10, 16000, 25) == 1


def test_unknown_policy():
    with pytest.raises(ValueError, match="unknown length policy 'bounce'"):
        list(source_indices(3, 2, "bounce"))
