"""Approximate-time synchronisation of RGB, depth and camera_info that always yields the newest matching set.

Why not message_filters: it is missing from the PyPI ROS 2 wheels, its Python ApproximateTimeSynchronizer
differs between distros, and it exposes no counters. A pose node wants one policy everywhere: match the
*newest* set of messages whose stamps lie within `slop` of each other, discard everything older (those frames
are stale by the time we could process them), and count what was received, matched and dropped so the node can
warn loudly when nothing synchronises. Pure Python, no ROS types: stamps are integer nanoseconds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass
class SyncStats:
    received: dict[str, int]
    matched: int = 0
    dropped: dict[str, int] = field(default_factory=dict)     # discarded without ever being part of a match
    out_of_order: dict[str, int] = field(default_factory=dict)  # older than the last emitted match


class ApproximateSync:
    """Match one message per topic with stamps within `slop_ns` of each other, newest first.

    `add(topic, stamp_ns, msg)` returns the matched messages (in `topics` order) when this arrival completes a
    newer set than any emitted before, else None. Thread-safe.
    """

    def __init__(self, topics: Sequence[str], slop_s: float, queue_size: int = 5):
        if len(set(topics)) != len(topics) or not topics:
            raise ValueError(f"topics must be distinct and non-empty, got {list(topics)}")
        if slop_s < 0:
            raise ValueError(f"slop must be >= 0 s, got {slop_s}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.topics = tuple(topics)
        self.slop_ns = int(round(slop_s * 1e9))
        self._queues: dict[str, deque] = {t: deque() for t in self.topics}
        self._queue_size = queue_size
        self._last_match_ns: int | None = None
        self._lock = threading.Lock()
        self.stats = SyncStats(received={t: 0 for t in self.topics},
                               dropped={t: 0 for t in self.topics},
                               out_of_order={t: 0 for t in self.topics})

    def add(self, topic: str, stamp_ns: int, msg: Any) -> tuple | None:
        if topic not in self._queues:
            raise KeyError(f"unknown topic {topic!r}; known: {self.topics}")
        with self._lock:
            self.stats.received[topic] += 1
            if self._last_match_ns is not None and stamp_ns <= self._last_match_ns - self.slop_ns:
                self.stats.out_of_order[topic] += 1
                return None
            queue = self._queues[topic]
            queue.append((stamp_ns, msg))
            if len(queue) > self._queue_size:
                queue.popleft()
                self.stats.dropped[topic] += 1
            return self._try_match(stamp_ns)

    def _try_match(self, pivot_ns: int) -> tuple | None:
        # For every topic the message nearest the new arrival's stamp; a match needs all within slop.
        chosen = []
        for topic in self.topics:
            queue = self._queues[topic]
            if not queue:
                return None
            chosen.append(min(range(len(queue)), key=lambda i: abs(queue[i][0] - pivot_ns)))
        stamps = [self._queues[t][i][0] for t, i in zip(self.topics, chosen)]
        if max(stamps) - min(stamps) > self.slop_ns:
            return None
        result = tuple(self._queues[t][i][1] for t, i in zip(self.topics, chosen))
        for topic, index in zip(self.topics, chosen):
            queue = self._queues[topic]
            self.stats.dropped[topic] += index  # older messages that never matched
            for _ in range(index + 1):
                queue.popleft()
        self.stats.matched += 1
        self._last_match_ns = max(stamps)
        return result

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {t: len(q) for t, q in self._queues.items()}
