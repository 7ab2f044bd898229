"""Storage backends: a local folder and GCS (against fake-gcs-server).

Covers the storage side of the fault cases in the README's "Failure handling":
create-only results (a retried or duplicated trial never overwrites), no partial
files, keys that cannot leave the output prefix, a read-only output folder,
transient GCS errors retried, and permission / missing-bucket errors failing at once.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from samplesize.errors import (
    EXIT_PERMISSION,
    EXIT_TRANSIENT,
    ConfigError,
    DataError,
    AccessError,
    TransientError,
)
from samplesize.commands import gcs_options_from_env, open_uri
from samplesize.storage import GcsOptions, LocalStorage

ESCAPING_KEYS = ["../escape.json", "trials/../../escape.json", "/etc/passwd", "trials//x.json", "./x.json", "trials/.."]


def gcs_storage(bucket: str, prefix: str = "sweep", retry_deadline: float = 30.0):
    from samplesize.storage.gcs import GcsStorage

    options = GcsOptions(retry_deadline=retry_deadline, emulator_host=os.environ.get("STORAGE_EMULATOR_HOST"))
    return GcsStorage(f"gs://{bucket}/{prefix}", options)


@pytest.fixture(params=["local", "gcs"])
def any_storage(request, tmp_path):
    """A fresh, empty storage of each backend."""
    if request.param == "local":
        return LocalStorage(tmp_path / "out")
    emulator = request.getfixturevalue("gcs_emulator")
    return gcs_storage(emulator.new_bucket())


# -- both backends -------------------------------------------------------


def test_second_write_once_is_refused_and_first_content_kept(any_storage):
    assert any_storage.write_once("trials/trial-00000.json", b'{"first": 1}') is True
    assert any_storage.write_once("trials/trial-00000.json", b'{"second": 2}') is False
    assert any_storage.read("trials/trial-00000.json") == b'{"first": 1}'


def test_list_read_exists_round_trip(any_storage):
    files = {
        "trials/trial-00000.json": b"0",
        "trials/trial-00001.json": b"1",
        "report/summary.json": b"{}",
        "cache/prepared-ab12.npz": bytes(range(256)),
    }
    for key, data in files.items():
        assert any_storage.write_once(key, data)
    any_storage.write("report/summary.json", b'{"v": 2}')  # reports are replaced in place

    assert any_storage.list() == sorted(files)
    assert any_storage.list("trials") == ["trials/trial-00000.json", "trials/trial-00001.json"]
    assert any_storage.list("trials/") == any_storage.list("trials")
    assert any_storage.list("nothing-here") == []
    assert any_storage.read("cache/prepared-ab12.npz") == bytes(range(256))
    assert any_storage.read("report/summary.json") == b'{"v": 2}'
    assert any_storage.exists("trials/trial-00001.json")
    assert not any_storage.exists("trials/trial-00002.json")
    with pytest.raises(FileNotFoundError):
        any_storage.read("trials/trial-00002.json")


def test_open_read_gives_a_seekable_file_of_the_bytes(any_storage):
    data = os.urandom(3 * 1024 * 1024)
    any_storage.write_once("cache/dataset-ab12.npz", data)
    with any_storage.open_read("cache/dataset-ab12.npz") as f:
        f.seek(len(data) - 10)
        assert f.read() == data[-10:]  # an .npz reader seeks to the end first
        f.seek(0)
        assert f.read() == data
    with pytest.raises(FileNotFoundError):
        any_storage.open_read("cache/missing.npz")


@pytest.mark.parametrize("key", ESCAPING_KEYS)
def test_keys_that_would_leave_the_output_prefix_are_refused(any_storage, key):
    for attempt in (
        lambda: any_storage.write_once(key, b"x"),
        lambda: any_storage.write(key, b"x"),
        lambda: any_storage.read(key),
        lambda: any_storage.open_read(key),
        lambda: any_storage.exists(key),
    ):
        with pytest.raises(DataError, match="key"):
            attempt()
    with pytest.raises(DataError):
        any_storage.list(key)
    assert any_storage.list() == []


# -- local folder --------------------------------------------------------


def _race_writer(root: str, writer: int, keys: list[str], barrier, results) -> None:
    store = LocalStorage(root)
    barrier.wait()
    results.put((writer, [k for k in keys if store.write_once(k, f"writer-{writer}".encode())]))


def test_local_write_once_from_racing_processes_has_exactly_one_winner_per_key(tmp_path):
    ctx = multiprocessing.get_context("fork")
    keys = [f"trials/trial-{i:05d}.json" for i in range(50)]
    writers = 4
    barrier, results = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=_race_writer, args=(str(tmp_path), w, keys, barrier, results)) for w in range(writers)]
    for p in procs:
        p.start()
    won = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join()
        assert p.exitcode == 0

    store = LocalStorage(tmp_path)
    for key in keys:
        winners = [w for w, ks in won.items() if key in ks]
        assert len(winners) == 1, f"{key}: winners {winners}"
        assert store.read(key) == f"writer-{winners[0]}".encode()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]


@pytest.mark.parametrize("interrupt", [TransientError("stopped by SIGTERM"), KeyboardInterrupt()])
@pytest.mark.parametrize("method", ["write", "write_once"])
def test_a_signal_during_a_local_write_leaves_no_part_file_and_the_old_file_intact(tmp_path, monkeypatch,
                                                                                     interrupt, method):
    """SIGTERM raises TransientError from its handler mid-write (issue 24, case 15): only OSError removed the temp."""
    store = LocalStorage(tmp_path)
    store.write("report/report.html", b"old")

    def stopped(fd):
        raise interrupt
    monkeypatch.setattr(os, "fsync", stopped)
    with pytest.raises(type(interrupt)):
        getattr(store, method)("report/report.html" if method == "write" else "report/new.html", b"new" * 1000)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]
    assert store.read("report/report.html") == b"old" and not store.exists("report/new.html")


def test_local_writes_leave_no_part_file_and_listing_hides_one_from_a_killed_writer(tmp_path):
    store = LocalStorage(tmp_path)
    store.write_once("trials/trial-00000.json", b"a")
    store.write_once("trials/trial-00000.json", b"b")
    store.write("report/summary.json", b"{}")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["summary.json", "trial-00000.json"]

    # What a writer killed between writing and renaming leaves behind.
    (tmp_path / "trials" / ".trial-00001.json.k3j2.part").write_bytes(b"partial")
    assert store.list() == ["report/summary.json", "trials/trial-00000.json"]
    assert not store.exists("trials/trial-00001.json")


@contextlib.contextmanager
def read_only_folder(path: Path):
    """Make `path` unwritable, even for root (who ignores permission bits): chattr +i."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True) if chattr else None
    if done is None or done.returncode != 0:
        why = done.stderr.strip() if done else "chattr is not installed"
        pytest.skip(f"running as root, which ignores permission bits, and `chattr +i` failed ({why})")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def test_local_read_only_output_folder_fails_clearly_and_keeps_earlier_results(tmp_path):
    store = LocalStorage(tmp_path)
    store.write_once("trials/trial-00000.json", b"earlier")
    with read_only_folder(tmp_path / "trials"):
        with pytest.raises(AccessError, match="trial-00001.json") as err:
            store.write_once("trials/trial-00001.json", b"new")
        assert err.value.exit_code == EXIT_PERMISSION
        assert str(tmp_path / "trials") in str(err.value)
        assert store.read("trials/trial-00000.json") == b"earlier"
        assert store.list() == ["trials/trial-00000.json"]


# -- GCS -----------------------------------------------------------------


def test_open_storage_picks_gcs_for_gs_uris(gcs_emulator):
    from samplesize.storage.gcs import GcsStorage

    bucket = gcs_emulator.new_bucket()
    store = open_uri(f"gs://{bucket}/sweep/")
    assert isinstance(store, GcsStorage)
    assert store.uri == f"gs://{bucket}/sweep"


def test_gcs_retry_deadline_comes_from_environment(gcs_emulator, monkeypatch):
    from samplesize.storage.gcs import GcsStorage

    monkeypatch.setenv("SAMPLESIZE_GCS_RETRY_DEADLINE", "2.5")
    assert GcsStorage("gs://any-bucket/sweep", gcs_options_from_env()).retry_deadline == 2.5
    monkeypatch.setenv("SAMPLESIZE_GCS_RETRY_DEADLINE", "soon")
    with pytest.raises(ConfigError, match="SAMPLESIZE_GCS_RETRY_DEADLINE"):
        GcsStorage("gs://any-bucket/sweep", gcs_options_from_env())


def test_gcs_without_credentials_fails_at_once_saying_how_to_provide_them(tmp_path, monkeypatch):
    from samplesize.storage.gcs import GcsStorage

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    with pytest.raises(AccessError, match="Workload Identity") as err:
        GcsStorage("gs://some-bucket/sweep", gcs_options_from_env())
    assert err.value.exit_code == EXIT_PERMISSION


def test_gcs_errors_name_the_service_account_and_never_a_secret():
    from google.auth import compute_engine
    from google.oauth2 import credentials as user_credentials

    from samplesize.storage.gcs import describe_credentials

    gke = compute_engine.Credentials(service_account_email="trials@proj.iam.gserviceaccount.com")
    assert describe_credentials(gke) == "service account trials@proj.iam.gserviceaccount.com"
    assert "default service account" in describe_credentials(compute_engine.Credentials())
    user = user_credentials.Credentials(token="ya29.secret-token", refresh_token="1//secret-refresh")
    described = describe_credentials(user)
    assert "secret" not in described and "Application Default Credentials" in described


def test_gcs_create_only_writes_racing_from_two_clients_have_exactly_one_winner(gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    keys = [f"trials/trial-{i:05d}.json" for i in range(10)]
    barrier, won = threading.Barrier(2), {}

    def writer(name: str) -> None:
        store = gcs_storage(bucket)  # its own client, as a second pod would have
        barrier.wait()
        won[name] = [k for k in keys if store.write_once(k, name.encode())]

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("pod-a", "pod-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = gcs_storage(bucket)
    for key in keys:
        winners = [n for n, ks in won.items() if key in ks]
        assert len(winners) == 1, f"{key}: winners {winners}"
        assert store.read(key) == winners[0].encode()


def test_gcs_large_write_once_round_trips_and_second_is_refused(gcs_emulator):
    """Over 8 MiB the client switches to a resumable upload.

    GCS enforces if_generation_match=0 on it; fake-gcs-server does not, so here the
    refusal comes from write_once's existence check. A true race above 8 MiB is
    guarded by GCS only (see the README, "Google Cloud Storage").
    """
    store = gcs_storage(gcs_emulator.new_bucket())
    big = os.urandom(9 * 1024 * 1024)
    assert store.write_once("cache/prepared.npz", big)
    assert store.write_once("cache/prepared.npz", b"other") is False
    assert store.read("cache/prepared.npz") == big


def test_gcs_objects_get_a_content_type_for_browsing(gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    store = gcs_storage(bucket)
    store.write("report/report.html", b"<html></html>")
    store.write_once("trials/trial-00000.json", b"{}")
    blobs = {b.name: b.content_type for b in gcs_emulator.client().list_blobs(bucket)}
    assert blobs == {"sweep/report/report.html": "text/html", "sweep/trials/trial-00000.json": "application/json"}


def test_gcs_listing_is_scoped_to_the_prefix_folder_and_skips_folder_placeholders(gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    raw = gcs_emulator.client().bucket(bucket)
    for name in ("sweep/trials/trial-00000.json", "sweep-old/trials/trial-00000.json", "sweep/images/cat/", "other.txt"):
        raw.blob(name).upload_from_string(b"x")
    assert gcs_storage(bucket).list() == ["trials/trial-00000.json"]
    assert gcs_storage(bucket, prefix="").list() == [
        "other.txt",
        "sweep-old/trials/trial-00000.json",
        "sweep/trials/trial-00000.json",
    ]


@pytest.mark.parametrize("name", ["sweep/../escape.json", "sweep/trials/../../escape.json", "sweep//x.json", "sweep/./x.json"])
def test_gcs_listed_object_names_that_would_escape_the_prefix_are_refused(gcs_emulator, name):
    bucket = gcs_emulator.new_bucket()
    gcs_emulator.client().bucket(bucket).blob(name).upload_from_string(b"x")
    with pytest.raises(DataError, match="not a safe key") as err:
        gcs_storage(bucket).list()
    assert name in str(err.value)


def test_gcs_missing_bucket_fails_at_once_naming_bucket_and_credential(gcs_fault_proxy):
    for operation in ("exists", "read", "write_once", "list"):
        before = gcs_fault_proxy.total_requests
        store = gcs_storage("no-such-bucket", retry_deadline=300)
        with pytest.raises(AccessError, match="bucket no-such-bucket does not exist") as err:
            if operation == "list":
                store.list()
            elif operation == "write_once":
                store.write_once("trials/trial-00000.json", b"{}")
            else:
                getattr(store, operation)("trials/trial-00000.json")
        assert "anonymous/emulator" in str(err.value)
        assert err.value.exit_code == EXIT_PERMISSION
        assert gcs_fault_proxy.total_requests - before == 1, f"{operation} was retried"


@pytest.mark.parametrize("status", [401, 403])
def test_gcs_permission_denied_fails_at_once_naming_bucket_and_credential(gcs_fault_proxy, status):
    bucket = gcs_fault_proxy.upstream.new_bucket()
    gcs_fault_proxy.fail(status, times=None)
    store = gcs_storage(bucket, retry_deadline=300)
    with pytest.raises(AccessError) as err:
        store.write_once("trials/trial-00000.json", b"{}")
    message = str(err.value)
    assert f"gs://{bucket}/sweep" in message and "anonymous/emulator" in message
    assert err.value.exit_code == EXIT_PERMISSION
    assert gcs_fault_proxy.total_requests == 1, gcs_fault_proxy.requests


@pytest.mark.parametrize("status", [429, 503])
def test_gcs_transient_errors_on_a_create_only_write_are_retried(gcs_fault_proxy, status):
    bucket = gcs_fault_proxy.upstream.new_bucket()
    store = gcs_storage(bucket)
    gcs_fault_proxy.fail(status, times=2, method="POST")  # the upload itself, not the existence check
    assert store.write_once("trials/trial-00000.json", b"result") is True
    assert gcs_fault_proxy.injected == 2
    assert gcs_fault_proxy.requests["POST"] == 3
    assert store.read("trials/trial-00000.json") == b"result"


def test_gcs_transient_errors_past_the_retry_deadline_raise_a_retryable_error(gcs_fault_proxy):
    bucket = gcs_fault_proxy.upstream.new_bucket()
    gcs_fault_proxy.fail(503, times=None)
    store = gcs_storage(bucket, retry_deadline=1)
    with pytest.raises(TransientError, match=f"bucket {bucket}") as err:
        store.exists("trials/trial-00000.json")
    assert err.value.exit_code == EXIT_TRANSIENT
    assert "SAMPLESIZE_GCS_RETRY_DEADLINE" in str(err.value)


def _restart_on_first_connection(server) -> threading.Thread:
    """With `server` stopped, restart it once a client has tried (and failed) to reach it.

    A stand-in socket on the stopped server's port accepts the client's next attempt and
    drops it, so the restart certainly happens in the middle of the call under test.
    """
    server.stop()
    stand_in = socket.create_server(("127.0.0.1", server.port))
    stand_in.settimeout(60)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with stand_in:
                conn, _ = stand_in.accept()
                conn.close()
            server.start()
        except BaseException as exc:  # surfaced by the test after join
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_gcs_writes_are_retried_across_an_emulator_restart(gcs_restartable_emulator):
    server = gcs_restartable_emulator
    store = gcs_storage(server.new_bucket(), retry_deadline=60)
    assert store.write_once("trials/trial-00000.json", b"before")

    for key, write in (
        ("trials/trial-00001.json", lambda k: store.write_once(k, b"during")),
        ("report/summary.json", lambda k: store.write(k, b"during")),
    ):
        restarter = _restart_on_first_connection(server)
        write(key)
        restarter.join()
        assert not restarter.errors
        assert server.running
        assert store.read(key) == b"during"
    assert store.read("trials/trial-00000.json") == b"before"


def test_gcs_folder_dataset_is_read_from_the_bucket(gcs_emulator):
    from PIL import Image

    from samplesize.data import scan_folder

    bucket = gcs_emulator.new_bucket()
    raw = gcs_emulator.client().bucket(bucket)
    for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        for i in range(3):
            buf = io.BytesIO()
            Image.new("RGB", (10, 12), colour).save(buf, format="PNG")
            raw.blob(f"images/{cls}/{i}.png").upload_from_string(buf.getvalue(), content_type="image/png")
    raw.blob("images/dog/").upload_from_string(b"")  # a Cloud Console folder placeholder

    data = scan_folder(open_uri(f"gs://{bucket}/images"), 8)
    assert data.class_names == ["cat", "dog"]
    assert data.images.shape == (6, 8, 8, 3)
    assert sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert data.images[data.labels == 0][0, 0, 0].tolist() == [255, 0, 0]


def test_write_once_from_a_large_file_is_create_only_too(any_storage, tmp_path):
    # Over 8 MiB: the GCS client uploads it resumably, as it does a large prepared dataset.
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    first.write_bytes(os.urandom(9 << 20))
    second.write_bytes(b"another copy")
    assert any_storage.write_once_from_file("cache/dataset-x.npz", str(first)) is True
    assert any_storage.write_once_from_file("cache/dataset-x.npz", str(second)) is False
    assert any_storage.read("cache/dataset-x.npz") == first.read_bytes()


@pytest.mark.parametrize("uri", ["gs://BUCKET/sweeps/demo", "gs://my bucket/x", "gs://ab/x", "gs://-bucket/x"])
def test_an_invalid_bucket_name_is_a_config_error_naming_it(uri):
    from samplesize.storage.gcs import parse_gs_uri

    with pytest.raises(ConfigError, match="is not a valid bucket name"):
        parse_gs_uri(uri)


def test_npz_objects_are_create_only_and_keep_the_first_arrays(any_storage):
    import numpy as np

    from samplesize.storage.npz import meta_array, read_meta, write_npz_once

    first = {"pool": np.arange(6, dtype=np.uint8).reshape(2, 3), "meta": meta_array({"format": 1})}
    assert write_npz_once(any_storage, "cache/thing.npz", first) is True
    assert write_npz_once(any_storage, "cache/thing.npz", {"pool": np.zeros(1), "meta": meta_array({})}) is False
    with any_storage.open_read("cache/thing.npz") as f, np.load(f) as z:
        assert z.files == ["pool", "meta"]  # the caller's order
        np.testing.assert_array_equal(z["pool"], first["pool"])
        assert read_meta(z["meta"]) == {"format": 1}


def test_gcs_settings_are_read_from_the_environment_only_for_gs_uris(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPLESIZE_GCS_RETRY_DEADLINE", "soon")
    assert isinstance(open_uri(str(tmp_path / "out")), LocalStorage)  # a local output ignores GCS settings
    monkeypatch.delenv("SAMPLESIZE_GCS_RETRY_DEADLINE")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    assert gcs_options_from_env() == GcsOptions(retry_deadline=300.0, emulator_host="http://127.0.0.1:9")
