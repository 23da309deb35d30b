"""The approximate-time synchroniser: matching within slop, newest-first, counters, bad orderings."""

import pytest

from cleanpose_ros.sync import ApproximateSync

MS = 1_000_000


def feed(sync, events):
    out = []
    for topic, stamp in events:
        match = sync.add(topic, stamp, (topic, stamp))
        if match:
            out.append(match)
    return out


def test_matches_messages_within_slop_in_topic_order():
    sync = ApproximateSync(["rgb", "depth", "info"], slop_s=0.01)
    matches = feed(sync, [("depth", 100 * MS + 3 * MS), ("info", 100 * MS), ("rgb", 100 * MS)])
    assert matches == [(("rgb", 100 * MS), ("depth", 103 * MS), ("info", 100 * MS))]
    assert sync.stats.matched == 1 and sync.pending() == {"rgb": 0, "depth": 0, "info": 0}


def test_no_match_outside_slop_and_counts_received():
    sync = ApproximateSync(["rgb", "depth"], slop_s=0.01)
    assert feed(sync, [("rgb", 0), ("depth", 50 * MS)]) == []
    assert sync.stats.received == {"rgb": 1, "depth": 1} and sync.stats.matched == 0


def test_newest_set_wins_and_older_frames_are_dropped():
    sync = ApproximateSync(["rgb", "depth"], slop_s=0.005, queue_size=10)
    # Three RGB frames arrive before any depth; then the depth of the newest one.
    matches = feed(sync, [("rgb", 0), ("rgb", 33 * MS), ("rgb", 66 * MS), ("depth", 66 * MS)])
    assert matches == [(("rgb", 66 * MS), ("depth", 66 * MS))]
    assert sync.stats.dropped["rgb"] == 2
    # A late depth for an already-superseded frame is out of order, never matched.
    assert feed(sync, [("depth", 33 * MS)]) == []
    assert sync.stats.out_of_order["depth"] == 1


def test_queue_overflow_counts_drops():
    sync = ApproximateSync(["rgb", "depth"], slop_s=0.001, queue_size=2)
    feed(sync, [("rgb", i * 100 * MS) for i in range(5)])
    assert sync.pending()["rgb"] == 2 and sync.stats.dropped["rgb"] == 3


def test_stream_of_synchronised_frames_all_match():
    sync = ApproximateSync(["rgb", "depth", "info"], slop_s=0.015)
    events = []
    for i in range(30):
        t = i * 33 * MS
        events += [("rgb", t), ("info", t), ("depth", t + 2 * MS)]
    assert len(feed(sync, events)) == 30 and sum(sync.stats.dropped.values()) == 0


@pytest.mark.parametrize(
    "kwargs", [dict(topics=["a", "a"]), dict(topics=[]), dict(slop_s=-1), dict(queue_size=0)]
)
def test_invalid_configuration_is_rejected(kwargs):
    args = dict(topics=["a", "b"], slop_s=0.01, queue_size=3) | kwargs
    with pytest.raises(ValueError):
        ApproximateSync(**args)
