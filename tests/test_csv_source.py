"""`csv:` sources: a labels CSV of image paths, read with its row problems skipped and named by row and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import image_bytes, run_cli, tiny_sweep_sets
from samplesize.commands import open_uri
from samplesize.config import DatasetConfig, load_config
from samplesize.data import load_source, open_source, prepared_key, source_fingerprint
from samplesize.data.prepared import check_source_exists
from samplesize.errors import ConfigError, DataError


def write_images(root: Path, names_and_tints: dict[str, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for name, tint in names_and_tints.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(image_bytes(rng, tint=tint))


def csv_dataset(tmp_path: Path, text: str, **columns) -> DatasetConfig:
    (tmp_path / "labels.csv").write_text(text, encoding="utf-8")
    return DatasetConfig(source=f"csv:{tmp_path / 'labels.csv'}", image_size=12, **columns)


def load(ds: DatasetConfig):
    return load_source(ds, open_source(ds, open_uri))


@pytest.fixture
def scans(tmp_path) -> Path:
    """Six small PNGs under `scans/`, two colours."""
    write_images(tmp_path, {f"scans/{i}.png": i % 2 for i in range(6)})
    return tmp_path


# ---------------------------------------------------------------- good CSVs


def test_a_good_csv_gives_labels_sorted_class_names_and_groups(scans):
    ds = csv_dataset(scans, "path,label,patient\n"
                            "scans/0.png,normal,p1\n"
                            f"{scans / 'scans/1.png'},pneumonia,p1\n"  # absolute, inside the CSV's folder
                            "./scans/2.png,normal,p2\n"
                            "scans/sub/../3.png,pneumonia,p2\n",
                     group_column="patient")
    data = load(ds)
    assert data.class_names == ["normal", "pneumonia"]
    assert data.labels.tolist() == [0, 1, 0, 1]
    assert data.groups.tolist() == ["p1", "p1", "p2", "p2"]
    assert data.images.shape == (4, 12, 12, 3) and data.images.dtype == np.uint8
    assert data.skipped.total == 0


def test_without_a_group_column_no_groups_are_carried(scans):
    data = load(csv_dataset(scans, "path,label\nscans/0.png,b\nscans/1.png,a\n"))
    assert data.class_names == ["a", "b"] and data.labels.tolist() == [1, 0]
    assert data.groups is None


def test_custom_column_names_spaces_and_an_excel_bom_are_read(scans):
    text = "\ufefffile , diagnosis,extra\n scans/0.png , cat ,x\n\nscans/1.png,dog,y\n"
    data = load(csv_dataset(scans, text, path_column="file", label_column="diagnosis"))
    assert data.class_names == ["cat", "dog"] and data.labels.tolist() == [0, 1]


def test_a_missing_column_is_an_error_naming_it_and_the_columns_found(scans):
    ds = csv_dataset(scans, "file,label\nscans/0.png,a\n")
    with pytest.raises(DataError) as err:
        load(ds)
    message = str(err.value)
    assert "has no column path (dataset.path_column)" in message and "the columns are: file, label" in message


def test_a_missing_group_column_is_an_error_too(scans):
    with pytest.raises(DataError, match="no column patient .dataset.group_column."):
        load(csv_dataset(scans, "path,label\nscans/0.png,a\n", group_column="patient"))


def test_an_empty_csv_and_a_header_only_csv_are_errors(scans):
    with pytest.raises(DataError, match="is empty; it needs a header row"):
        load(csv_dataset(scans, ""))
    with pytest.raises(DataError, match="a header row and no data rows"):
        load(csv_dataset(scans, "path,label\n"))


def test_a_csv_that_is_not_utf8_names_the_line(scans):
    (scans / "labels.csv").write_bytes(b"path,label\nscans/0.png,caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8 text .byte 0xe9 on line 2"):
        load(DatasetConfig(source=f"csv:{scans / 'labels.csv'}", image_size=12))


# ---------------------------------------------------------------- row problems


def test_each_row_problem_is_skipped_counted_and_named_by_row_and_line(scans):
    (scans / "junk.png").write_bytes(b"not an image")
    text = ("path,label\n"
            "scans/0.png,a\n"           # row 1, line 2: good
            "scans/1.png,b\n"           # row 2, line 3: good
            "scans/missing.png,a\n"     # row 3, line 4
            ",a\n"                      # row 4, line 5
            "scans/2.png,\n"            # row 5, line 6
            "../outside.png,b\n"        # row 6, line 7
            "scans/0.png,a\n"           # row 7, line 8: duplicate of line 2
            "junk.png,b\n")             # row 8, line 9: does not decode
    data = load(csv_dataset(scans, text))
    assert data.labels.tolist() == [0, 1]
    assert data.skipped.counts == {"file not found": 1, "empty path": 1, "empty label": 1,
                                   "outside the allowed root, the CSV's folder": 1, "duplicate path": 1,
                                   "not a readable image": 1}
    shown = data.skipped.examples
    assert "row 3 (line 4): scans/missing.png (file not found)" in shown
    assert "row 4 (line 5) (empty path)" in shown
    assert "row 5 (line 6): scans/2.png (empty label)" in shown
    assert "row 6 (line 7): ../outside.png (outside the allowed root, the CSV's folder)" in shown
    assert "row 7 (line 8, same path as line 2): scans/0.png (duplicate path)" in shown
    assert data.skipped.total == 6  # the decoding failure is the sixth: examples keep the first five


def test_a_decoding_failure_is_named_with_its_row(scans):
    (scans / "junk.png").write_bytes(b"not an image")
    data = load(csv_dataset(scans, "path,label\nscans/0.png,a\nscans/1.png,b\njunk.png,b\n"))
    assert data.skipped.examples == ["row 3 (line 4): junk.png (not a readable image)"]


def test_a_duplicate_path_with_another_label_is_an_error_naming_both_lines(scans):
    ds = csv_dataset(scans, "path,label\nscans/0.png,a\nscans/1.png,b\n./scans/0.png,b\n")
    with pytest.raises(DataError, match=r"lines 2 and 4 name the same file with different labels \(a and b\)"):
        load(ds)


def test_a_duplicate_path_with_another_group_is_an_error(scans):
    ds = csv_dataset(scans, "path,label,patient\nscans/0.png,a,p1\nscans/1.png,b,p1\nscans/0.png,a,p2\n",
                     group_column="patient")
    with pytest.raises(DataError, match="lines 2 and 4 name the same file with different groups"):
        load(ds)


def test_an_empty_group_is_skipped_when_a_group_column_is_set(scans):
    ds = csv_dataset(scans, "path,label,patient\nscans/0.png,a,p1\nscans/1.png,b,p2\nscans/2.png,a,\n",
                     group_column="patient")
    data = load(ds)
    assert data.groups.tolist() == ["p1", "p2"]
    assert data.skipped.examples == ["row 3 (line 4): scans/2.png (empty group)"]


def test_absolute_paths_outside_the_csv_folder_are_skipped(tmp_path):
    write_images(tmp_path / "data", {"a.png": 0, "b.png": 1})
    write_images(tmp_path / "elsewhere", {"c.png": 0})
    text = (f"path,label\na.png,x\nb.png,y\n{tmp_path / 'elsewhere' / 'c.png'},x\n/etc/hostname,x\n"
            "gs://bucket/c.png,x\nC:\\scans\\c.png,x\n")
    data = load(csv_dataset(tmp_path / "data", text))
    assert data.labels.tolist() == [0, 1]
    assert data.skipped.counts == {"outside the allowed root, the CSV's folder": 3,
                                   "a backslash in the path (write '/' between folders)": 1}
    assert any(e.startswith("row 3 (line 4): /") for e in data.skipped.examples)


def test_a_link_leaving_the_csv_folder_is_skipped(tmp_path):
    write_images(tmp_path / "data", {"a.png": 0, "b.png": 1})
    write_images(tmp_path, {"secret.png": 0})
    (tmp_path / "data" / "link.png").symlink_to(tmp_path / "secret.png")
    data = load(csv_dataset(tmp_path / "data", "path,label\na.png,x\nb.png,y\nlink.png,x\n"))
    assert data.labels.tolist() == [0, 1]
    assert data.skipped.examples == ["row 3 (line 4): link.png (a link leaving the dataset folder)"]


def test_a_row_with_the_wrong_number_of_fields_is_skipped(scans):
    data = load(csv_dataset(scans, "path,label\nscans/0.png,a\nscans/1.png,b\nscans/2,1.png,a\n"))
    assert data.skipped.examples == ["row 3 (line 4): scans/2 (3 fields where the header has 2)"]


def test_over_long_fields_are_skipped_and_too_many_labels_refused(scans, monkeypatch):
    long_label = "x" * 300
    data = load(csv_dataset(scans, f"path,label\nscans/0.png,a\nscans/1.png,b\nscans/2.png,{long_label}\n"))
    assert data.skipped.counts == {"label longer than 255 characters": 1}
    assert data.class_names == ["a", "b"]
    import samplesize.data.csv_source as csv_source

    monkeypatch.setattr(csv_source, "MAX_CLASSES", 2)
    with pytest.raises(DataError, match="3 distinct labels, more than the 2 classes"):
        load(csv_dataset(scans, "path,label\nscans/0.png,a\nscans/1.png,b\nscans/2.png,c\n"))


def test_a_csv_over_its_bounds_is_refused(scans, monkeypatch):
    import samplesize.data.csv_source as csv_source

    monkeypatch.setattr(csv_source, "MAX_CSV_ROWS", 2)
    with pytest.raises(DataError, match="more than 2 rows"):
        load(csv_dataset(scans, "path,label\n" + "".join(f"scans/{i}.png,a\n" for i in range(4))))
    monkeypatch.setattr(csv_source, "MAX_CSV_BYTES", 10)
    with pytest.raises(DataError, match="the CSV is over 10 bytes"):
        load(csv_dataset(scans, "path,label\nscans/0.png,a\n"))


def test_a_label_whose_files_all_fail_is_refused_by_name(scans):
    ds = csv_dataset(scans, "path,label\nscans/0.png,a\nscans/1.png,b\nscans/missing.png,c\n")
    with pytest.raises(DataError, match="label.s. c in csv:.* name no usable image .*file not found"):
        load(ds)


def test_two_spellings_of_one_label_are_refused(scans):
    ds = csv_dataset(scans, "path,label\nscans/0.png,caf\u00e9\nscans/1.png,cafe\u0301\n")
    with pytest.raises(DataError, match="labels .* read as the same name"):
        load(ds)


def test_a_missing_csv_is_a_clear_error(tmp_path):
    ds = DatasetConfig(source=f"csv:{tmp_path / 'nope.csv'}")
    with pytest.raises(DataError, match="the CSV file does not exist"):
        check_source_exists(ds, open_source(ds, open_uri))
    with pytest.raises(DataError, match="the CSV file does not exist"):
        load(ds)


# ---------------------------------------------------------------- config and the prepared key


def test_csv_keys_are_validated_and_apply_only_to_csv_sources(tmp_path):
    cfg = load_config(None, [f"dataset.source=csv:{tmp_path}/labels.csv", "dataset.label_column=dx",
                             "dataset.group_column=patient"])
    assert (cfg.dataset.kind, cfg.dataset.label_column, cfg.dataset.group_column) == ("csv", "dx", "patient")
    with pytest.raises(ConfigError, match="dataset.group_column: applies only to a csv: source"):
        load_config(None, ["dataset.group_column=patient"])
    with pytest.raises(ConfigError, match="dataset.label_column: 'path' is also dataset.path_column"):
        load_config(None, [f"dataset.source=csv:{tmp_path}/labels.csv", "dataset.label_column=path"])
    with pytest.raises(ConfigError, match="dataset.path_column: '' is not a column name"):
        load_config(None, [f"dataset.source=csv:{tmp_path}/labels.csv", "dataset.path_column=''"])


def test_unset_csv_keys_leave_the_sweep_dict_and_trial_hash_as_before():
    cfg = load_config(None, [])
    assert set(cfg.to_dict()["dataset"]) == {"source", "test_fraction", "image_size", "data_dir", "download"}
    assert cfg.trial_hash() == "ad998dc1addceacc"  # the demo's hash before the csv keys existed
    assert load_config(None, ["dataset.path_column=path", "dataset.group_column=null"]).trial_hash() == "ad998dc1addceacc"
    assert load_config(None, ["dataset.source=folder:/x"]).trial_hash() == "bd34c0905747ea06"
    custom = load_config(None, ["dataset.source=csv:x.csv", "dataset.group_column=patient"])
    assert custom.to_dict()["dataset"]["group_column"] == "patient"
    assert "path_column" not in custom.to_dict()["dataset"]


def test_editing_the_csv_changes_the_prepared_key(scans):
    ds = csv_dataset(scans, "path,label\nscans/0.png,a\nscans/1.png,b\n")
    cfg = load_config(None, [f"dataset.source={ds.source}"])
    source = open_source(cfg.dataset, open_uri)
    first = prepared_key(cfg, source)
    assert first == prepared_key(cfg, source)
    (scans / "labels.csv").write_text("path,label\nscans/0.png,b\nscans/1.png,a\n")  # labels swapped
    swapped = prepared_key(cfg, source)
    write_images(scans, {"scans/0.png": 1}, seed=9)  # a listed file replaced
    replaced = prepared_key(cfg, source)
    write_images(scans, {"unlisted.png": 0})  # a file the CSV does not name: no new copy
    assert prepared_key(cfg, source) == replaced
    assert len({first, swapped, replaced}) == 3


def test_the_column_names_enter_the_prepared_key(scans):
    (scans / "labels.csv").write_text("path,label,label2\nscans/0.png,a,b\nscans/1.png,b,a\n")
    one = load_config(None, [f"dataset.source=csv:{scans}/labels.csv"])
    two = load_config(None, [f"dataset.source=csv:{scans}/labels.csv", "dataset.label_column=label2"])
    assert prepared_key(one, open_source(one.dataset, open_uri)) != prepared_key(two, open_source(two.dataset, open_uri))


# ---------------------------------------------------------------- end to end


def test_prepare_reads_a_csv_source_and_names_the_skipped_rows(tmp_path):
    write_images(tmp_path / "export", {f"img/{c}{i}.png": t for t, c in enumerate("ab") for i in range(6)})
    rows = "".join(f"img/{c}{i}.png,{c},p{i}\n" for c in "ab" for i in range(6))
    (tmp_path / "export" / "labels.csv").write_text("path,label,patient\n" + rows + "img/gone.png,a,p9\n")
    out = tmp_path / "out"
    proc = run_cli("prepare", "--set", f"dataset.source=csv:{tmp_path / 'export' / 'labels.csv'}",
                   "--set", "dataset.group_column=patient", "--set", f"output={out}",
                   "--set", "dataset.image_size=12")
    assert proc.returncode == 0, proc.stderr
    assert "row 13 (line 14): img/gone.png (file not found)" in proc.stderr + proc.stdout
    assert len(list((out / "cache").glob("dataset-*.npz"))) == 1


def test_a_missing_column_exits_65_from_the_cli(tmp_path):
    write_images(tmp_path, {"a.png": 0})
    (tmp_path / "labels.csv").write_text("file,label\na.png,x\n")
    proc = run_cli("prepare", "--set", f"dataset.source=csv:{tmp_path / 'labels.csv'}",
                   "--set", f"output={tmp_path / 'out'}")
    assert proc.returncode == 65, proc.stderr
    assert "no column path" in proc.stderr


def test_a_csv_on_gcs_reads_relative_and_gs_paths_inside_its_prefix(gcs_emulator):
    bucket = gcs_emulator.new_bucket()
    store = open_uri(f"gs://{bucket}/export")
    rng = np.random.default_rng(3)
    for i in range(4):
        store.write(f"img/{i}.png", image_bytes(rng, tint=i % 2))
    open_uri(f"gs://{bucket}").write("other/x.png", image_bytes(rng))
    store.write("labels.csv", (f"path,label\nimg/0.png,a\ngs://{bucket}/export/img/1.png,b\nimg/2.png,a\n"
                               f"img/3.png,b\ngs://{bucket}/other/x.png,a\ngs://another/img/0.png,a\n").encode())
    ds = DatasetConfig(source=f"csv:gs://{bucket}/export/labels.csv", image_size=12)
    source = open_source(ds, open_uri)
    assert source.uri == f"gs://{bucket}/export"
    check_source_exists(ds, source)
    data = load_source(ds, source)
    assert data.class_names == ["a", "b"] and data.labels.tolist() == [0, 1, 0, 1]
    assert data.skipped.counts == {"outside the allowed root, the CSV's folder": 2}
    first = source_fingerprint(ds, source)
    store.write("labels.csv", f"path,label\nimg/0.png,b\nimg/1.png,a\n".encode())
    assert source_fingerprint(ds, source) != first
    missing = DatasetConfig(source=f"csv:gs://{bucket}/export/nope.csv")
    with pytest.raises(DataError, match="the CSV file does not exist"):
        check_source_exists(missing, open_source(missing, open_uri))


@pytest.mark.slow
def test_a_csv_source_sweep_plans_and_runs_a_trial(tmp_path):
    write_images(tmp_path / "export", {f"img/{c}{i}.png": t for t, c in enumerate("abc") for i in range(8)})
    rows = "".join(f"img/{c}{i}.png,{c},p{i // 2}\n" for c in "abc" for i in range(8))
    (tmp_path / "export" / "labels.csv").write_text("path,label,patient\n" + rows)
    sets = tiny_sweep_sets(f"output={tmp_path / 'out'}", f"dataset.source=csv:{tmp_path / 'export' / 'labels.csv'}",
                           "dataset.group_column=patient")
    assert run_cli("prepare", *sets).returncode == 0
    plan = run_cli("plan", "--json", *sets)
    assert plan.returncode == 0, plan.stderr
    assert [r["index"] for r in json.loads(plan.stdout)] == [0, 1, 2, 3]
    proc = run_cli("trial", "--index", "0", *sets)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out" / "trials" / "trial-00000.json").read_text())
    assert result["class_names"] == ["a", "b", "c"]
