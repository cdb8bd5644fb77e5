"""Micro-batching: concurrent requests to one model share a forward pass.

Request threads put their input on a bounded queue and wait on a future; one worker
thread per model gathers up to `max_batch_size` inputs, waiting at most `max_wait_s`
after the first, and runs them together. The forward pass releases the GIL, so the
server's other threads keep accepting and answering requests meanwhile.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


# The fixed cost of one forward pass, in characters of input it could have processed instead.
PASS_OVERHEAD_CHARS = 64


class Overloaded(Exception):
    """The model's queue is full or the answer would come after the deadline."""


@dataclass
class _Item:
    text: str
    deadline: float
    future: Future = field(default_factory=Future)


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[Sequence[str]], Sequence[object]],
        *,
        name: str,
        max_batch_size: int,
        max_wait_s: float,
        queue_size: int,
    ):
        self._run = run
        self.name = name
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait_s = max(0.0, max_wait_s)
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, text: str, timeout_s: float):
        """Run one input; raises Overloaded past the deadline, or the input's own error."""
        return self.submit_many([text], timeout_s)[0]

    def submit_many(self, texts: Sequence[str], timeout_s: float) -> list:
        """Run inputs that batch with each other and with other callers' inputs."""
        deadline = time.monotonic() + timeout_s
        items = [_Item(text=text, deadline=deadline) for text in texts]
        for queued, item in enumerate(items):
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                _cancel(items[:queued])
                raise Overloaded(f"Model {self.name} has {self._queue.qsize()} requests queued.") from None
        try:
            return [item.future.result(timeout=max(0.0, deadline - time.monotonic())) for item in items]
        except FutureTimeout:
            # Cancelled items are skipped by the worker; one already running finishes unseen.
            _cancel(items)
            raise Overloaded(f"Model {self.name} did not answer within {timeout_s:g}s.") from None

    def stop(self) -> None:
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            gather_until = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                remaining = gather_until - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            live = self._claim(batch)
            for group in by_length(live):
                self._run_batch(group)

    @staticmethod
    def _claim(batch: list[_Item]) -> list[_Item]:
        now = time.monotonic()
        live = []
        for item in batch:
            if item.deadline <= now:
                # Its caller has given up (or is about to): spend no compute on it.
                item.future.cancel()
            elif item.future.set_running_or_notify_cancel():
                live.append(item)
        return live

    def _run_batch(self, live: list[_Item]) -> None:
        try:
            outputs = self._run([item.text for item in live])
        except Exception as exc:
            if len(live) == 1:
                logger.exception("Model %s failed on an input", self.name)
                live[0].future.set_exception(exc)
                return
            # One bad input must not fail the others: rerun them one by one.
            for item in live:
                try:
                    item.future.set_result(self._run([item.text])[0])
                except Exception as exc:
                    logger.exception("Model %s failed on an input", self.name)
                    item.future.set_exception(exc)
            return
        for item, output in zip(live, outputs, strict=True):
            item.future.set_result(output)


def by_length(items: list[_Item]) -> list[list[_Item]]:
    """Split a gathered batch into passes of similar length, at the least padded cost.

    A padded forward pass costs as if every input were as long as the longest; at sentence
    lengths padding is the largest waste (docs/benchmarks.md: the raw model, split by length vs file order),
    while each pass also has a fixed cost. Inputs are sorted by length (characters stand in
    for tokens) and cut where `passes x PASS_OVERHEAD_CHARS + sum(size x longest)` is least
    (an exact dynamic programme; a batch holds at most a few dozen inputs).
    """
    ordered = sorted(items, key=lambda item: len(item.text))
    lengths = [len(item.text) for item in ordered]
    best = [0.0] + [float("inf")] * len(ordered)  # best[i]: cheapest cost of the first i inputs
    cut = [0] * (len(ordered) + 1)
    for end in range(1, len(ordered) + 1):
        for start in range(end):
            cost = best[start] + PASS_OVERHEAD_CHARS + (end - start) * lengths[end - 1]
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(ordered)
    while end:
        groups.append(ordered[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def _cancel(items: list[_Item]) -> None:
    for item in items:
        item.future.cancel()
