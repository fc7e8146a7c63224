"""Iterating in a background thread and handing each item over, through a slot of one, to the thread that uses it.

Inference decodes a source in one thread while the model runs in another (`inference.streams`); GPU decoding
fetches planned batches in one thread and decodes them in a second while the training step runs (`gpu_decode.py`).
A live source does not wait: when the model is slower than the source, the decoder hands over its newest window
and the one the model had not taken yet is dropped (`drop=True`), so labels stay current instead of falling
further behind for ever. A file or a pipe pushes back instead (`drop=False`): the decoder waits, nothing is lost.
The caller's thread only waits on the hand-over, in short polls, so Ctrl-C ends it at once even while the
decoder is blocked inside FFmpeg on a stalled source.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
# How often a waiting thread looks up: Ctrl-C and a stop are seen within this.
POLL_S = 0.1
_END = object()


@dataclass(frozen=True)
class _Raised:
    error: BaseException


class Handover(Generic[Item]):
    """Iterates `items` in a background thread; iterating the Handover gets them, in order, through a slot of one.

    `dropped` counts the items replaced before they were taken (`drop=True` only). An error raised by `items` is
    raised here; when this side stops (the loop ends, an error, Ctrl-C), the background thread stops after its
    current item and closes `items` there, so a generator's `with` blocks (an open container) end in the thread
    that uses them. With `wait`, stopping also waits for the thread to end (a loader's next epoch must not meet
    it); without, a read blocked on a stalled source never holds this side up. `name` names the thread.
    """

    def __init__(self, items: Iterator[Item], *, drop: bool, name: str = "decode", wait: bool = False):
        self.items, self.drop, self.dropped = items, drop, 0
        self.name, self.wait = name, wait
        self._slot: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[Item]:
        # a daemon: a read blocked in FFmpeg never keeps the process from exiting
        thread = threading.Thread(target=self._produce, name=self.name, daemon=True)
        thread.start()
        try:
            while (item := self._take()) is not _END:
                if isinstance(item, _Raised):
                    raise item.error
                yield item
        finally:
            self._stop.set()
            if self.wait:
                thread.join()

    def _take(self):
        while True:
            with contextlib.suppress(queue.Empty):
                return self._slot.get(timeout=POLL_S)

    def _produce(self) -> None:
        end = _END
        try:
            for item in self.items:
                if self._stop.is_set():
                    return
                self._hand(item)
        except BaseException as e:  # raised on the other side, where it can be reported
            end = _Raised(e)
        finally:
            close = getattr(self.items, "close", None)
            if close is not None:
                close()
        self._put(end)

    def _hand(self, item) -> None:
        if not self.drop:
            self._put(item)
            return
        try:
            self._slot.put_nowait(item)
        except queue.Full:
            with contextlib.suppress(queue.Empty):  # the other side may have just taken it
                self._slot.get_nowait()
                self.dropped += 1
            self._slot.put_nowait(item)  # only this thread puts: there is room now

    def _put(self, item) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._slot.put(item, timeout=POLL_S)
                return
