"""One worker thread that owns every torch call: a one-slot mailbox of the newest frame plus a queue of calls.

Why: latency must not grow under load (a frame replaced before the worker picks it up is dropped and counted),
and running the model, the tracker and the parameter changes on one thread means no locks around them and a
single OpenMP thread pool (libgomp makes one per thread that runs torch ops).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable


class Worker:
    def __init__(self, process: Callable[[Any], None], on_error: Callable[[BaseException], None]):
        self._process, self._on_error = process, on_error
        self._mailbox: Any = None
        self._calls: deque[tuple[Future, Callable, tuple]] = deque()
        self._cv = threading.Condition()
        self._stop = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="cleanpose_worker", daemon=True)
        self._thread.start()

    def post(self, item: Any) -> None:
        """Hand over the newest item; one still waiting is dropped."""
        with self._cv:
            if self._mailbox is not None:
                self.dropped += 1
            self._mailbox = item
            self._cv.notify()

    def call(self, fn: Callable, *args) -> Any:
        """Run fn(*args) on the worker thread (ahead of the next mailbox item) and return its result or
        raise."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        future: Future = Future()
        with self._cv:
            if self._stop:
                raise RuntimeError("the pose node is shutting down")
            self._calls.append((future, fn, args))
            self._cv.notify()
        return future.result()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._mailbox is None and not self._calls and not self._stop:
                    self._cv.wait()
                if self._stop:
                    for future, _, _ in self._calls:
                        future.set_exception(RuntimeError("the pose node is shutting down"))
                    return
                call = self._calls.popleft() if self._calls else None
                if call is None:
                    item, self._mailbox = self._mailbox, None
            if call is not None:
                future, fn, args = call
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed back to the caller
                    future.set_exception(exc)
                continue
            try:
                self._process(item)
            except Exception as exc:  # one bad frame must never stop the worker
                self._on_error(exc)

    def stop(self, timeout: float = 5.0) -> None:
        with self._cv:
            self._stop = True
            self._mailbox = None
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout)
