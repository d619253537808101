"""`background`: run an iterator in a thread, a few items ahead of its consumer.

Generation (numpy, Arrow) and loading (the database driver, files) release the GIL in their
heavy parts, so the producer's work overlaps the consumer's while memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
QUEUE_CHUNKS = 2


def background(chunks: Iterator[T]) -> Iterator[T]:
    """Run the iterator `chunks` in a thread, at most QUEUE_CHUNKS items ahead of the consumer."""
    box: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        box.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            box.put(exc)

    thread = threading.Thread(target=produce, name="shape-pipeline-generator", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                box.get_nowait()
            except queue.Empty:
                thread.join(0.1)
