"""One preparation per sweep: one process builds a shared cache object while the others wait.

Run on a local folder and on fake-gcs-server, with real threads standing in
for the pods of the first wave. Waiting is observed through the injected
`sleep` (a waiter sleeps only while someone else holds a live lock), never
through timing.
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc

import numpy as np
import pytest
from conftest import write_image_folder

from samplesize.config import load_config
from samplesize.errors import DataError
from samplesize.storage.lease import LOCK_SUFFIX, build_once, read_lock
from samplesize.commands import open_uri
from samplesize.storage import LocalStorage

KEY = "cache/thing.npz"


@pytest.fixture(params=["local", "gcs"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "out")
    emulator = request.getfixturevalue("gcs_emulator")
    return open_uri(f"gs://{emulator.new_bucket()}/sweep")


def _never_sleep(seconds):
    raise AssertionError("no one holds a live lock: nothing to wait for")


def test_one_process_builds_while_the_others_wait_and_read_its_copy(storage):
    builds, waits = [], []
    building, waiter_waits = threading.Event(), threading.Event()

    def build():
        builds.append(threading.current_thread().name)
        building.set()
        assert waiter_waits.wait(60), "the second process never waited"
        storage.write_once(KEY, b"built once")
        return "built"

    def load():
        return storage.read(KEY).decode()

    def sleep(seconds):
        waits.append(seconds)
        waiter_waits.set()
        time.sleep(0.01)

    results = {}
    holder = threading.Thread(target=lambda: results.update(
        holder=build_once(storage, KEY, build, load, what="test object")), name="holder")
    holder.start()
    assert building.wait(60)
    results["waiter"] = build_once(storage, KEY, build, load, what="test object", poll_s=0.01, sleep=sleep)
    holder.join(60)
    assert builds == ["holder"]
    assert results == {"holder": "built", "waiter": "built once"}
    assert waits and read_lock(storage, KEY + LOCK_SUFFIX)["state"] == "done"


def test_a_dead_holders_lock_goes_stale_and_the_next_process_builds(storage):
    now = 1_000_000.0
    storage.write_once(KEY + LOCK_SUFFIX, json.dumps({"owner": "killed-pod", "state": "building",
                                                      "beat": now - 301}).encode())

    def build():
        storage.write_once(KEY, b"rebuilt")
        return "rebuilt"

    got = build_once(storage, KEY, build, lambda: "loaded", what="test object", stale_s=300, clock=lambda: now,
                     sleep=_never_sleep)
    assert got == "rebuilt" and storage.read(KEY) == b"rebuilt"


def test_a_live_holders_heartbeat_keeps_the_lock_fresh(storage):
    renewed = threading.Event()
    lock = KEY + LOCK_SUFFIX

    def build():
        first = read_lock(storage, lock)["beat"]
        for _ in range(5000):  # the holder's heartbeat thread rewrites the lock meanwhile
            if read_lock(storage, lock).get("beat", first) > first:
                renewed.set()
                break
            time.sleep(0.002)
        storage.write_once(KEY, b"x")
        return "built"

    assert build_once(storage, KEY, build, lambda: "loaded", what="test object", beat_s=0.01) == "built"
    assert renewed.is_set()


def test_a_failed_build_releases_the_lock_so_the_next_process_builds_at_once(storage):
    def failing():
        raise DataError("class folder cats holds no usable image")

    with pytest.raises(DataError):
        build_once(storage, KEY, failing, lambda: "loaded", what="test object")
    assert read_lock(storage, KEY + LOCK_SUFFIX)["state"] == "released"

    def build():
        storage.write_once(KEY, b"fixed")
        return "built"

    assert build_once(storage, KEY, build, lambda: "loaded", what="test object", sleep=_never_sleep) == "built"


def test_an_existing_object_is_read_without_taking_the_lock(storage):
    storage.write_once(KEY, b"already there")
    got = build_once(storage, KEY, lambda: pytest.fail("built again"), lambda: storage.read(KEY),
                     what="test object", sleep=_never_sleep)
    assert got == b"already there"
    assert not storage.exists(KEY + LOCK_SUFFIX)


def test_a_holder_that_finishes_while_we_read_its_lock_is_loaded_not_built_again(storage, monkeypatch):
    """The race a busy node meets: the object appears just after we looked for it, and we read the "done" stamp."""
    storage.write_once(KEY + LOCK_SUFFIX, json.dumps({"owner": "pod-a", "state": "done", "beat": time.time()}).encode())
    looks = []
    real_exists = storage.exists

    def exists(key):
        looks.append(key)
        if key == KEY and looks.count(KEY) == 1:
            storage.write_once(KEY, b"built by pod-a")  # pod-a finishes right after our first look
            return False
        return real_exists(key)

    monkeypatch.setattr(storage, "exists", exists)
    got = build_once(storage, KEY, lambda: pytest.fail("built again"), lambda: storage.read(KEY),
                     what="test object", sleep=_never_sleep)
    assert got == b"built by pod-a"


# ------------------------------------------------------- the prepared dataset


def test_pods_of_the_first_wave_decode_the_dataset_once(storage, tmp_path, monkeypatch):
    from samplesize.data import prepared as data_module

    folder = write_image_folder(tmp_path / "images", per_class=10)
    cfg = load_config(overrides=[f"dataset.source=folder:{folder}", "dataset.image_size=12", f"output={tmp_path}"])
    decodes, real = [], data_module.load_source
    started, waiting = threading.Event(), threading.Event()

    def counted(ds, source):
        decodes.append(ds.source)
        started.set()
        assert waiting.wait(60)
        return real(ds, source)

    monkeypatch.setattr(data_module, "load_source", counted)
    monkeypatch.setattr("samplesize.storage.lease.POLL_S", 0.01)
    real_sleep = time.sleep
    monkeypatch.setattr("samplesize.storage.lease.time.sleep", lambda s: (waiting.set(), real_sleep(0.01)))
    out = {}
    first = threading.Thread(target=lambda: out.update(first=data_module.prepare_dataset(cfg, storage, LocalStorage(folder))))
    first.start()
    assert started.wait(60)
    out["second"] = data_module.prepare_dataset(cfg, storage, LocalStorage(folder))
    first.join(60)
    assert len(decodes) == 1
    for prepared in out.values():
        assert prepared.pool_size + len(prepared.test_labels) == 30
    np.testing.assert_array_equal(out["first"].pool_images, out["second"].pool_images)


def test_preparing_a_folder_never_holds_its_pixels_in_memory(tmp_path):
    from samplesize.data import prepare_dataset, split_test  # noqa: F401  (imports done before measuring)

    import sklearn.model_selection  # noqa: F401
    from PIL import Image  # noqa: F401

    # 59 MB of pixels: well above the fixed chunks that do pass through memory
    # (256 rows when splitting, numpy's 16 MiB buffer when writing the .npz).
    size, per_class, classes = 128, 300, ("a", "b", "c", "d")
    folder = write_image_folder(tmp_path / "images", classes=classes, per_class=per_class)
    cfg = load_config(overrides=[f"dataset.source=folder:{folder}", f"dataset.image_size={size}"])
    pixels = len(classes) * per_class * size * size * 3
    storage = LocalStorage(tmp_path / "out")
    tracemalloc.start()
    try:
        prepared = prepare_dataset(cfg, storage, LocalStorage(folder))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prepared.pool_size + len(prepared.test_labels) == len(classes) * per_class
    # Decoded images, pool and test arrays and the .npz go through files; what
    # stays in memory is one chunk at a time (holding the pixels took 3-4 copies).
    assert peak < pixels / 2, f"peak {peak} bytes for {pixels} bytes of pixels"
    reread = LocalStorage(tmp_path / "out")
    from samplesize.data.prepared import _open_prepared, prepared_key

    stored = _open_prepared(reread, prepared_key(cfg, LocalStorage(folder)))
    np.testing.assert_array_equal(stored.pool_images, prepared.pool_images)
    np.testing.assert_array_equal(stored.test_images, prepared.test_images)


# ------------------------------------------- hostile or broken lock files (issue 24)


class _Recording:
    """The storage, with the keys it was asked to read: a huge lock must not be read whole."""

    def __init__(self, inner):
        self._inner, self.reads = inner, []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def read(self, key):
        self.reads.append(key)
        return self._inner.read(key)

    def open_read(self, key):
        self.reads.append(key)
        return self._inner.open_read(key)


def _waits_at_most(n):
    """A sleep that fails the test instead of waiting forever (the old code's hang)."""
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        if len(calls) > n:
            raise AssertionError(f"still waiting after {n} polls: the wait has no end")

    return sleep


@pytest.mark.parametrize(
    "lock",
    [
        b'{"owner": "x", "state": "building", "beat": 1e300}',
        b'{"owner": "x", "state": "building", "beat": NaN}',
        b'{"owner": "x", "state": "building", "beat": Infinity}',
        b'{"owner": "x", "state": "building", "beat": -Infinity}',
        b'{"owner": "x", "state": "building", "beat": "soon"}',
        b'{"owner": "x", "state": "building", "beat": true}',
        b'{"owner": "x", "state": "building", "beat": [1000000]}',
        b'{"owner": "x", "state": "building", "beat": 1003600}',  # an hour ahead of the clock
        b'{"owner": "x", "state": "building"}',
        b'{"owner": "x", "state": ["building"], "beat": 1000000}',
        b'["building", 1000000]',
        b'{"owner": "x", "state": "buil',
        b"\xff\xfe\x00garbage",
        b"",
        b'{"owner": "x", "state": "building", "beat": 1' + b"0" * 4000 + b"}",
        b"[" * 60_000,
    ],
    ids=["1e300", "NaN", "Infinity", "-Infinity", "soon", "true", "list", "future", "no-beat", "state-list",
         "not-a-mapping", "truncated", "not-utf8", "empty",
         "4000-digit-int", "nested-60000-deep"],
)
def test_lease_files_with_absurd_heartbeats_are_stale_and_the_next_process_builds(storage, lock):
    now = 1_000_000.0
    storage.write_once(KEY + LOCK_SUFFIX, lock)

    def build():
        storage.write_once(KEY, b"rebuilt")
        return "rebuilt"

    got = build_once(storage, KEY, build, lambda: "loaded", what="test object", stale_s=300, clock=lambda: now,
                     sleep=_waits_at_most(0))
    assert got == "rebuilt" and storage.read(KEY) == b"rebuilt"


def test_lease_file_within_the_clock_skew_allowance_is_still_waited_for(storage):
    now = 1_000_000.0
    storage.write_once(KEY + LOCK_SUFFIX, json.dumps({"owner": "x", "state": "building", "beat": now + 20}).encode())

    def sleep(seconds):
        storage.write_once(KEY, b"built elsewhere")

    got = build_once(storage, KEY, lambda: pytest.fail("built though a live holder's clock is only 20 s ahead"),
                     lambda: storage.read(KEY), what="test object", clock=lambda: now, sleep=sleep)
    assert got == b"built elsewhere"


def test_lease_file_larger_than_its_bound_is_stale_without_being_read_whole(storage):
    now = 1_000_000.0  # a live-looking lock, 1 MiB of owner name: valid, fresh, and far past any sane size
    huge = json.dumps({"owner": "x" * 2**20, "state": "building", "beat": now}).encode()
    storage.write_once(KEY + LOCK_SUFFIX, huge)
    recording = _Recording(storage)

    def build():
        storage.write_once(KEY, b"rebuilt")
        return "rebuilt"

    got = build_once(recording, KEY, build, lambda: "loaded", what="test object", clock=lambda: now,
                     sleep=_waits_at_most(0))
    assert got == "rebuilt"
    assert KEY + LOCK_SUFFIX not in recording.reads
    assert read_lock(recording, KEY + LOCK_SUFFIX) == {}


def test_lease_wait_for_a_holder_that_never_finishes_ends_with_a_transient_error_naming_the_lock(storage):
    from samplesize.errors import EXIT_TRANSIENT, TransientError

    lock = KEY + LOCK_SUFFIX
    now = [1_000_000.0]

    def beating_forever():  # a live holder: its beat stays fresh, the object never appears
        storage.write(lock, json.dumps({"owner": "stuck-pod", "state": "building", "beat": now[0]}).encode())

    beating_forever()
    polls = _waits_at_most(10_000)

    def sleep(seconds):
        polls(seconds)
        now[0] += seconds
        beating_forever()

    with pytest.raises(TransientError) as err:
        build_once(storage, KEY, lambda: pytest.fail("built under a live lock"), lambda: "loaded",
                   what="test object", poll_s=5, wait_s=600, clock=lambda: now[0], sleep=sleep)
    message = str(err.value)
    assert err.value.exit_code == EXIT_TRANSIENT
    assert lock in message and "stuck-pod" in message and "delete" in message
    assert 600 <= now[0] - 1_000_000.0 <= 610
