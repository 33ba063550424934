"""Request batching for the serving threads: :class:`Batcher`.

Requests run in a thread pool but score one at a time (the service lock, and the GIL), and a
hybrid request is mostly per-call overhead: five component matmuls of one user against the
catalog, a few dozen numpy calls on a few hundred candidates. Scoring the users of the requests
that are waiting together costs little more than scoring one (the item matrices are read once;
the calls are made once), so under concurrent load throughput rises and the queue shortens.

How (no timer, no extra thread): a request puts its key in the queue. If no batch is being
computed, it becomes the *leader*: it takes every waiting key (up to ``max_batch``), computes them
in one call outside the queue lock, hands each waiting request its result and wakes them. Under
concurrent load the leader first waits a moment for the requests on their way (at most
``linger``, and never longer than a model call takes on average). A
request that arrives during a computation waits and is served by the next leader, the first of
the waiting requests to wake. With one request in flight nothing waits: a batch of one, computed
at once, so an idle server answers as fast as before.

Results are exactly those of separate calls for the models whose ``recommend`` treats users
independently (every avrec model does: rows of a batch are scored independently; float noise of a
batched matmul can only reorder exact ties). A failing batch is retried one key at a time, so an
error reaches only the request that caused it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any

#: most keys one leader computes in one call
DEFAULT_MAX_BATCH = 32
#: batches whose largest size sets how many requests a lingering leader waits for
RECENT_BATCHES = 16
#: seconds a leader waits for more requests when the server is under concurrent load
DEFAULT_LINGER = 0.003


class _Slot:
    __slots__ = ("key", "group", "done", "result", "error")

    def __init__(self, key: Any, group: Hashable) -> None:
        self.key, self.group = key, group
        self.done, self.result, self.error = False, None, None


class Batcher:
    """Compute waiting requests together.

    Parameters
    ----------
    compute : callable
        ``compute(group, keys) -> results``: one result per key, in order. Keys of one call
        share a ``group`` (e.g. the list length), so one call computes one kind of request.
    max_batch : int
        Most keys per call.

    Notes
    -----
    ``batches`` and ``requests`` count calls and keys, so ``requests / batches`` is the mean
    batch size.
    """

    def __init__(self, compute: Callable[[Hashable, Sequence[Any]], Sequence[Any]],
                 max_batch: int = DEFAULT_MAX_BATCH, linger: float = DEFAULT_LINGER) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if not 0 <= linger < 1:
            raise ValueError(f"linger must be in [0, 1) seconds, got {linger}")
        self.compute = compute
        self.max_batch = int(max_batch)
        self.linger = float(linger)
        # whether the last batch showed concurrent load: it had company, or others queued meanwhile
        self._loaded = False
        self._lingering = False
        self._call_s = float(linger)  # running mean of a model call's seconds (starts at the cap)
        self._recent: deque[int] = deque(maxlen=RECENT_BATCHES)  # sizes of the last batches
        self._cv = threading.Condition()
        self._queue: list[_Slot] = []
        self._busy = False
        self.batches = 0
        self.requests = 0

    def submit(self, key: Any, group: Hashable = None) -> Any:
        """The result of ``key``, computed alone or together with other waiting keys of its group.

        Raises whatever ``compute`` raised for this key alone.
        """
        slot = _Slot(key, group)
        with self._cv:
            self._queue.append(slot)
            if self._lingering:
                self._cv.notify_all()
            while not slot.done and self._busy:
                self._cv.wait()
            if slot.done:
                return _outcome(slot)
            if self.linger > 0 and self._concurrent():
                # other requests are on their way: give them up to ``linger`` to queue up, less
                # once as many are queued as the largest of the recent batches (the concurrency
                # the server has been seeing). Not the last batch's size: under a closed loop that
                # locks into cohorts that never merge (measured: batches of 2 at 4 in flight).
                self._busy = self._lingering = True
                # never longer than a model call takes: waiting more than one call costs the
                # waiting requests more than computing them in the next call would (an ALS list
                # is ~0.3 ms, a hybrid batch several ms)
                deadline = time.monotonic() + min(self.linger, self._call_s)
                want = min(max(max(self._recent, default=self.max_batch), 2), self.max_batch)
                while sum(s.group == group for s in self._queue) < want:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                self._busy = self._lingering = False
            # leader: everything waiting in this slot's group, oldest first
            batch = [s for s in self._queue if s.group == group][: self.max_batch]
            if slot not in batch:  # older waiters fill the batch: take this one in their place
                batch[-1] = slot
            taken = {id(s) for s in batch}
            self._queue = [s for s in self._queue if id(s) not in taken]
            self._busy = True
        t0 = time.perf_counter()
        try:
            self._run(group, batch)
        finally:
            # a running mean of a model call's wall time (the linger's cap)
            self._call_s += 0.2 * (time.perf_counter() - t0 - self._call_s)
            with self._cv:
                self._busy = False
                self._loaded = len(batch) > 1 or bool(self._queue)
                self._recent.append(len(batch))
                self.batches += 1
                self.requests += len(batch)
                self._cv.notify_all()
        return _outcome(slot)

    def _concurrent(self) -> bool:
        """Whether to linger: the last batch showed concurrent load, or others are queued now."""
        return self._loaded or len(self._queue) > 1

    def _run(self, group: Hashable, batch: list[_Slot]) -> None:
        try:
            results = list(self.compute(group, [s.key for s in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"compute returned {len(results)} results for {len(batch)} keys")
            for s, r in zip(batch, results):
                s.result = r
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:  # one bad key must not fail the others: each alone, its own error
                for s in batch:
                    try:
                        s.result = self.compute(group, [s.key])[0]
                    except BaseException as one:
                        s.error = one
        for s in batch:
            s.done = True


def _outcome(slot: _Slot) -> Any:
    if slot.error is not None:
        raise slot.error
    return slot.result
