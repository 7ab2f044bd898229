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
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from ..errors import SamplesizeError, TransientError
from .base import Storage, join_uri

log = logging.getLogger(__name__)

T = TypeVar("T")
LOCK_SUFFIX = ".lock"
BEAT_S = 30.0  # how often the holder proves it is alive
STALE_S = 300.0  # a lock not renewed for this long belongs to a dead holder
POLL_S = 5.0  # how often a waiter looks for the finished object
# Anyone who can write the output prefix can write a lock, so a lock is read as
# untrusted input: a real one is under 200 bytes, and a real beat is a wall time
# at most a node's clock skew ahead of ours. Anything else would let one file
# make every pod wait forever or read gigabytes.
MAX_LOCK_BYTES = 64 * 1024
SKEW_S = 60.0
# A holder whose beat stays fresh but never finishes (hung, or a file rewritten
# by hand) must not hold the sweep forever. Two hours is far beyond decoding a
# pilot dataset or one backbone pass over it; the pod then exits 75 and is retried.
WAIT_S = 7200.0


def build_once(storage: Storage, key: str, build: Callable[[], T], load: Callable[[], T], *, what: str,
               beat_s: float | None = None, stale_s: float | None = None, poll_s: float | None = None,
               wait_s: float | None = None, clock: Callable[[], float] = time.time,
               sleep: Callable[[float], object] | None = None) -> T:
    """`load()` once `key` exists; meanwhile exactly one process runs `build()` (which stores `key`).

    `what` names the object in log lines. `clock` is wall time: beats are
    compared across machines. Unset timings are the module's constants; a
    wait longer than `wait_s` for a live holder raises TransientError.
    """
    beat_s = BEAT_S if beat_s is None else beat_s
    stale_s = STALE_S if stale_s is None else stale_s
    poll_s = POLL_S if poll_s is None else poll_s
    wait_s = WAIT_S if wait_s is None else wait_s
    sleep = sleep or time.sleep
    lock = key + LOCK_SUFFIX
    owner = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    started = clock()
    announced = False
    while True:
        if storage.exists(key):
            return load()
        if storage.write_once(lock, _stamp(owner, "building", clock())):
            with _holding(storage, lock, owner, beat_s, clock):
                return build()
        state = read_lock(storage, lock)
        if _changed_meanwhile(storage, key, lock, state):
            continue  # the next round loads the finished object, or takes the vanished lock
        now = clock()
        why = _not_held(state, now, stale_s)
        if why:
            log.warning("%s %s: lock %s is not held (%s); building it here", what, key, lock, why)
            return build()
        if now - started > wait_s:
            raise _waited_too_long(storage, key, what, state, now - started)
        if not announced:
            owner_seen = _cut(state.get("owner", "another pod"))
            log.warning("%s %s is being built by %s; waiting for it", what, key, owner_seen)
            announced = True
        sleep(poll_s)


def read_lock(storage: Storage, lock: str) -> dict:
    """The lock's state; an unreadable, oversized or vanished lock reads as not held ({})."""
    size = _size(storage, lock)
    if size is None or size > MAX_LOCK_BYTES:
        return {}
    try:
        with storage.open_read(lock) as f:
            raw = f.read(MAX_LOCK_BYTES + 1)  # bounded again: the object may have been replaced since listed
    except FileNotFoundError:
        return {}
    if len(raw) > MAX_LOCK_BYTES:
        return {}
    try:
        state = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the parser's depth
        return {}
    return state if isinstance(state, dict) else {}


def _changed_meanwhile(storage: Storage, key: str, lock: str, state: dict) -> bool:
    """The holder finished, or the lock vanished, between our look for the object and our read of the lock.

    Either is no reason to build: on a busy node a waiter often reads the holder's "done" stamp, and
    building then would decode the dataset a second time."""
    if state.get("state") == "done":
        return storage.exists(key)
    return not state and not storage.exists(lock)


def _size(storage: Storage, lock: str) -> int | None:
    """The lock's size from a listing of its folder (a few cache objects), never from reading it."""
    folder = lock.rpartition("/")[0]
    for listed, size, _ in storage.list_stats(folder):
        if listed == lock:
            return size
    return None


def _not_held(state: dict, now: float, stale_s: float) -> str | None:
    """Why the lock holds no one (a reason for the log), or None while a live holder has it."""
    if state.get("state") == "released":
        return "its builder failed"
    if state.get("state") != "building":
        return "no readable lock"
    beat = _beat(state.get("beat"))
    if beat is None:
        return f"its heartbeat {_cut(state.get('beat'))} is not a time"
    if beat > now + SKEW_S:
        return f"its heartbeat is {beat - now:.3g} s in the future, beyond any clock skew"
    if now - beat > stale_s:
        return f"no heartbeat for {now - beat:.0f} s"
    return None


def _beat(value: object) -> float | None:
    """A finite number of seconds, or None (text, true, a list, NaN, infinity, an integer past any float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        beat = float(value)
    except OverflowError:
        return None
    return beat if math.isfinite(beat) else None


def _waited_too_long(storage: Storage, key: str, what: str, state: dict, waited: float) -> TransientError:
    lock = key + LOCK_SUFFIX
    return TransientError(
        f"waited {waited:.0f} s for the {what} {key}, which {_cut(state.get('owner', 'another pod'))} is still "
        f"building: its lock {lock} has a fresh heartbeat but the object never appeared. This pod exits 75 and "
        f"is retried; if no pod is building it (the holder hangs, or the lock was written by hand), delete "
        f"{join_uri(storage.uri, lock)} and the next pod builds it itself"
    )


def _cut(value: object, limit: int = 80) -> str:
    """At most `limit` characters of a value read from a lock: its writer is not trusted."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


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
