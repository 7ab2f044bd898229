"""One process builds a shared cache object while the others wait for it.

The first wave of trial pods all need the prepared dataset and the feature
cache. Without coordination each pod decodes the dataset and runs the
backbone, and the first writer wins: correct, but the whole first wave spends
its GPU time on the same work. Here the first process creates `<key>.lock`
(create-only, so exactly one succeeds), builds and stores `key`; the others
poll until `key` exists and read it.

The lock only saves work; correctness still rests on `write_once` of the
object itself. So a dead holder is never waited for forever: the holder
rewrites the lock every `beat_s` seconds, and a waiter that finds the last
beat older than `stale_s`, or the lock released by a holder that failed,
builds the object itself, as it would without the lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from ..errors import SamplesizeError
from .base import Storage

log = logging.getLogger(__name__)

T = TypeVar("T")
LOCK_SUFFIX = ".lock"
BEAT_S = 30.0  # how often the holder proves it is alive
STALE_S = 300.0  # a lock not renewed for this long belongs to a dead holder
POLL_S = 5.0  # how often a waiter looks for the finished object


def build_once(storage: Storage, key: str, build: Callable[[], T], load: Callable[[], T], *, what: str,
               beat_s: float | None = None, stale_s: float | None = None, poll_s: float | None = None,
               clock: Callable[[], float] = time.time, sleep: Callable[[float], object] | None = None) -> T:
    """`load()` once `key` exists; meanwhile exactly one process runs `build()` (which stores `key`).

    `what` names the object in log lines. `clock` is wall time: beats are
    compared across machines. Unset timings are the module's constants.
    """
    beat_s = BEAT_S if beat_s is None else beat_s
    stale_s = STALE_S if stale_s is None else stale_s
    poll_s = POLL_S if poll_s is None else poll_s
    sleep = sleep or time.sleep
    lock = key + LOCK_SUFFIX
    owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    announced = False
    while True:
        if storage.exists(key):
            return load()
        if storage.write_once(lock, _stamp(owner, "building", clock())):
            with _holding(storage, lock, owner, beat_s, clock):
                return build()
        state = read_lock(storage, lock)
        age = clock() - state.get("beat", float("-inf"))
        if state.get("state") != "building" or age > stale_s:
            why = "its builder failed" if state.get("state") == "released" else f"no heartbeat for {age:.0f} s"
            log.warning("%s %s: lock %s is not held (%s); building it here", what, key, lock, why)
            return build()
        if not announced:
            log.warning("%s %s is being built by %s; waiting for it", what, key, state.get("owner", "another pod"))
            announced = True
        sleep(poll_s)


def read_lock(storage: Storage, lock: str) -> dict:
    """The lock's state; an unreadable or vanished lock reads as not held."""
    try:
        state = json.loads(storage.read(lock))
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _stamp(owner: str, state: str, beat: float) -> bytes:
    return json.dumps({"owner": owner, "state": state, "beat": beat}).encode()


@contextmanager
def _holding(storage: Storage, lock: str, owner: str, beat_s: float, clock):
    """Renew the lock every `beat_s` seconds while the body builds; release it if the build fails."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(beat_s):
            try:
                storage.write(lock, _stamp(owner, "building", clock()))
            except SamplesizeError as exc:  # a missed beat only risks duplicate work, never wrong results
                log.warning("renewing %s failed: %s", lock, exc)

    thread = threading.Thread(target=beat, name=f"lease {lock}", daemon=True)
    thread.start()
    state = "released"
    try:
        yield
        state = "done"
    finally:
        stop.set()
        thread.join()
        try:
            storage.write(lock, _stamp(owner, state, clock()))
        except SamplesizeError as exc:
            log.warning("marking %s %s failed: %s", lock, state, exc)
