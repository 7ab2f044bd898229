"""The dataset summary `samplesize prepare` prints and stores in `cache/dataset-<hash>.json` (issue 20, item 5):
images (and groups) per class in the pool and the test set, source sizes and modes, skipped files, duplicates."""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter

import numpy as np
import pytest
from conftest import image_bytes, run_cli, write_image_folder
from PIL import Image
from samplesize.config import load_config
from samplesize.data import LabelledImages, SkippedFiles, prepare_dataset, stored_summary
from samplesize.data.dataset_summary import MAX_LISTED_CLASSES, MAX_LISTED_VALUES, summarize_dataset
from samplesize.data.duplicates import DuplicateImages
from samplesize.data.verify import MAX_FACTS_BYTES, PoolFacts, parse_facts, read_facts
from samplesize.errors import DataError
from samplesize.storage import LocalStorage

SIZE = 12


def _grey_png(rng, width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _mixed_folder(tmp_path):
    """Classes a (6 RGB 20x20 images) and b (4 RGB 20x20, 3 grey 30x16), and one junk file in a."""
    root = write_image_folder(tmp_path / "images", classes=("a", "b"), per_class=6)
    for jpeg in ("img 3.jpeg", "img 5.jpeg"):
        (root / "b" / jpeg).unlink()
    rng = np.random.default_rng(3)
    for i in range(3):
        (root / "b" / f"grey {i}.png").write_bytes(_grey_png(rng, 30, 16))
    (root / "a" / "notes.jpg").write_bytes(b"not an image at all")
    return root


def _sets(tmp_path, root, *extra: str) -> list[str]:
    items = [f"dataset.source=folder:{root}", f"output={tmp_path / 'out'}", f"dataset.image_size={SIZE}", *extra]
    return [arg for item in items for arg in ("--set", item)]


def _facts_path(tmp_path):
    (path,) = (tmp_path / "out" / "cache").glob("dataset-*.json")
    return path


def test_prepare_prints_and_stores_classes_sizes_modes_and_skipped_files(tmp_path):
    root = _mixed_folder(tmp_path)
    proc = run_cli("prepare", *_sets(tmp_path, root))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(_facts_path(tmp_path).read_text())["summary"]
    classes = {c["name"]: c for c in summary["classes"]}
    assert {n: c["pool_images"] + c["test_images"] for n, c in classes.items()} == {"a": 6, "b": 7}
    assert summary["total"]["pool_images"] + summary["total"]["test_images"] == 13
    assert summary["sizes"]["counts"] == {"20x20": 10, "30x16": 3}
    assert summary["modes"]["counts"] == {"RGB": 10, "L": 3}
    assert summary["skipped"]["counts"] == {"not a readable image": 1}
    assert summary["skipped"]["examples"] == ["a/notes.jpg (not a readable image)"]
    out = proc.stdout
    a_row = next(line for line in out.splitlines() if line.startswith("a "))
    assert a_row.split()[1:] == [str(classes["a"]["pool_images"]), str(classes["a"]["test_images"])]
    assert "class  pool images  test images" in out and "pool groups" not in out
    assert "20x20 (10), 30x16 (3)" in out and "RGB (10), L (3)" in out
    assert "skipped files: 1 (1 not a readable image)" in out and "a/notes.jpg" in out
    assert "duplicate images kept: none" in out

    again = run_cli("prepare", *_sets(tmp_path, root))  # the copy is cached: the summary is read back
    assert again.returncode == 0, again.stderr
    assert again.stdout == out


def test_prepare_with_variants_summarises_each_prepared_copy_once(tmp_path):
    root = _mixed_folder(tmp_path)
    config = tmp_path / "sweep.yaml"
    config.write_text(f"output: {tmp_path / 'out'}\ndataset: {{source: 'folder:{root}', image_size: {SIZE}}}\n"
                      "variants:\n  - {name: small, dataset: {image_size: %d}}\n  - {name: same, model: {dropout: 0.1}}\n"
                      "  - {name: also, dataset: {image_size: %d}}\n" % (8, 8))
    proc = run_cli("prepare", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("variant ")] == [
        "variant small", "variant same", "variant also"]
    assert next(line for line in lines if line.startswith("variant also")).endswith("as above")
    assert sum(line.startswith("skipped files: 1 (1 not a readable image)") for line in lines) == 2  # two copies


def test_a_grouped_csv_counts_groups_per_class_in_the_pool_and_the_test_set(tmp_path):
    # 12 patients of 2 images each; patient p's images are of class "abc"[p % 3].
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    rows = []
    for p in range(12):
        for i in range(2):
            (tmp_path / "img" / f"p{p}_{i}.png").write_bytes(image_bytes(rng, tint=p % 3))
            rows.append(f"img/p{p}_{i}.png,{'abc'[p % 3]},p{p}\n")
    (tmp_path / "labels.csv").write_text("path,label,patient\n" + "".join(rows))
    cfg = load_config(overrides=[f"dataset.source=csv:{tmp_path / 'labels.csv'}", f"dataset.image_size={SIZE}",
                                 "dataset.group_column=patient"])
    data = prepare_dataset(cfg, LocalStorage(tmp_path / "out"), LocalStorage(tmp_path))
    summary = data.summary
    for c, (name, counts) in enumerate(summary.classes):
        assert name == data.class_names[c]
        assert counts.pool_images == int((data.pool_labels == c).sum())
        assert counts.pool_groups == len(set(data.pool_groups[data.pool_labels == c].tolist()))
        assert counts.test_groups == len(set(data.test_groups[data.test_labels == c].tolist()))
        assert counts.pool_groups + counts.test_groups == 4  # each class has 4 patients, each in one set
    assert summary.total.pool_groups + summary.total.test_groups == 12
    lines = summary.lines()
    assert lines[0].split() == ["class", "pool", "images", "test", "images", "pool", "groups", "test", "groups"]
    assert lines[4].split()[0] == "total" and lines[4].split()[3:] == [str(summary.total.pool_groups),
                                                                      str(summary.total.test_groups)]


def test_dropped_and_kept_duplicates_are_reported(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=("a", "b", "c"), per_class=6)
    for i in range(4):
        shutil.copy(root / "a" / "img 0.png", root / "a" / f"copy {i}.png")
    cfg = load_config(overrides=[f"dataset.source=folder:{root}", f"dataset.image_size={SIZE}",
                                 "dataset.duplicates=drop"])
    dropped = prepare_dataset(cfg, LocalStorage(tmp_path / "out"), LocalStorage(root)).summary
    assert dropped.dropped_duplicates == 4 and dropped.skipped.counts == {"duplicate image": 4}
    assert dropped.duplicates.total == 0
    text = "\n".join(dropped.lines())
    assert "4 copies dropped (dataset.duplicates: drop)" in text and "4 duplicate image" in text

    kept = prepare_dataset(load_config(overrides=[f"dataset.source=folder:{root}", f"dataset.image_size={SIZE}",
                                                  "dataset.duplicates=allow"]),
                           LocalStorage(tmp_path / "out"), LocalStorage(root)).summary
    assert kept.dropped_duplicates == 0 and kept.duplicates.total == 4
    assert "duplicate images kept: 4 duplicate images" in "\n".join(kept.lines())


def test_a_copy_prepared_without_a_summary_still_plans_and_prepare_says_so(tmp_path):
    root = _mixed_folder(tmp_path)
    assert run_cli("prepare", *_sets(tmp_path, root)).returncode == 0
    path = _facts_path(tmp_path)
    facts = json.loads(path.read_text())
    del facts["summary"]
    path.write_text(json.dumps(facts))  # as an older version wrote them

    plan = run_cli("plan", "--json", *_sets(tmp_path, root, "splits=[0.3, 0.6]", "backtest_splits=[]"))
    assert plan.returncode == 0, plan.stderr
    assert {t["sample_size"] for t in json.loads(plan.stdout)} == {3, 6}  # 0.3 and 0.6 of the pool of 10
    proc = run_cli("prepare", *_sets(tmp_path, root))
    assert proc.returncode == 0, proc.stderr
    assert "dataset summary: not recorded (prepared by an older version)" in proc.stdout
    assert "skipped 1 files (1 not a readable image)" in proc.stdout  # what the copy's meta holds


def _facts_with(summary) -> bytes:
    digests = {name: f"{i:064x}" for i, name in enumerate(("pool_images", "pool_labels", "test_images",
                                                           "test_labels", "meta"))}
    from samplesize.data.verify import copy_digest

    facts = {"pool_size": 10, "class_count": 2, "digest": copy_digest(digests), "digests": digests}
    return json.dumps({**facts, "summary": summary}).encode()


def _summary_json() -> dict:
    data = LabelledImages(np.zeros((4, 1, 1, 3), np.uint8), np.array([0, 0, 1, 1], np.int32), ["a", "b"],
                          formats=[(20, 20, "RGB")] * 4)
    return summarize_dataset(data, np.array([0, 2]), np.array([1, 3]), DuplicateImages()).to_json()


@pytest.mark.parametrize("path, value, named", [
    (("classes", 0, "pool_images"), 10**30, "summary.classes[0].pool_images"),
    (("classes", 0, "name"), "x" * 5000, "summary.classes[0].name"),
    (("classes",), [], "summary.classes"),
    (("sizes", "counts"), {f"{i}x{i}": 1 for i in range(500)}, "summary.sizes.counts"),
    (("modes", "others"), None, "summary.modes"),
    (("skipped", "examples"), [7], "summary.skipped.examples"),
    (("duplicates", "counts"), {"pool": -1}, "summary.duplicates"),
    (("total", "test_images"), True, "summary.total.test_images"),
])
def test_a_malformed_summary_is_an_error_naming_its_part(path, value, named):
    summary = _summary_json()
    target = summary
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(DataError) as err:
        parse_facts(_facts_with(summary), "cache/dataset-x.json")
    message = str(err.value)
    assert named in message and "delete it and the .npz beside it" in message, message


def test_a_hostile_name_in_a_stored_summary_is_shown_escaped():
    summary = _summary_json()
    summary["classes"][0]["name"] = "\x1b[2Jfake\nprepared line"
    summary["modes"]["counts"] = {"\x1b]0;title\x07": 4}
    text = "\n".join(parse_facts(_facts_with(summary), "cache/dataset-x.json").summary.lines())
    assert "\x1b" not in text and "\x07" not in text and "\\x1b[2Jfake" in text
    assert not any(line.startswith("prepared line") for line in text.splitlines())


def test_the_summary_stays_small_for_many_classes_sizes_and_reasons():
    n, n_classes = 100_000, 60
    labels = np.arange(n, dtype=np.int32) % n_classes
    names = [f"{c:02d}" + "\U0001f600" * 200 for c in range(n_classes)]  # long, four bytes a character
    skipped, long = SkippedFiles(), "\u00e9" * 300
    for i in range(40):
        skipped.add(f"x/{long}{i}.png", f"reason {i} {long}")
    data = LabelledImages(np.zeros((n, 1, 1, 3), np.uint8), labels, names, skipped,
                          formats=[(i, i + 1, f"mode {i % 30}") for i in range(n)])
    rows = np.arange(n)
    summary = summarize_dataset(data, rows[rows % 5 != 0], rows[rows % 5 == 0], DuplicateImages())
    facts = PoolFacts(80_000, n_classes, summary=summary).to_json()
    assert len(facts) < MAX_FACTS_BYTES
    assert len(summary.classes) == MAX_LISTED_CLASSES and summary.other_classes[0] == n_classes - MAX_LISTED_CLASSES
    assert summary.other_classes[1].pool_images + summary.other_classes[1].test_images \
        == int((labels >= MAX_LISTED_CLASSES).sum())
    assert len(summary.sizes.counts) == MAX_LISTED_VALUES
    assert (summary.sizes.other_values, summary.sizes.other_images) == (n - MAX_LISTED_VALUES, n - MAX_LISTED_VALUES)
    assert sum(summary.modes.counts.values()) + summary.modes.other_images == n
    assert sum(summary.skipped.counts.values()) + summary.skipped.other_images == 40
    assert any(line.startswith("(10 more classes)") for line in summary.lines())


def test_the_builtin_digits_summary_names_their_8x8_grey_source():
    from samplesize.data import load_source

    cfg = load_config(overrides=["dataset.image_size=8"])
    data = load_source(cfg.dataset)
    summary = summarize_dataset(data, np.arange(0, len(data.labels), 2), np.arange(1, len(data.labels), 2),
                                DuplicateImages())
    assert summary.sizes.counts == {"8x8": len(data.labels)} and summary.modes.counts == {"L": len(data.labels)}
    assert Counter(data.labels.tolist())[0] == summary.classes[0][1].pool_images + summary.classes[0][1].test_images


def test_stored_summary_reads_the_copy_a_result_names_and_never_fails_the_aggregation(tmp_path):
    root = _mixed_folder(tmp_path)
    storage = LocalStorage(tmp_path / "out")
    data = prepare_dataset(load_config(overrides=[f"dataset.source=folder:{root}", f"dataset.image_size={SIZE}"]),
                           storage, LocalStorage(root))
    assert stored_summary(storage, data.key, data.digest) == data.summary
    assert stored_summary(storage, data.key, "0" * 64) is None  # another copy under the same key
    assert stored_summary(storage, "cache/dataset-0123456789abcdef.npz", data.digest) is None  # no facts
    assert stored_summary(storage, "../../etc/passwd", data.digest) is None  # a key no prepared copy has
    facts = tmp_path / "out" / data.key.replace(".npz", ".json")
    assert read_facts(storage, f"{data.key.removesuffix('.npz')}.json").summary == data.summary
    facts.write_text("not json")  # unreadable: no summary to show, and the aggregation goes on
    assert stored_summary(storage, data.key, data.digest) is None
