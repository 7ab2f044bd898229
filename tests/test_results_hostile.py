"""Bad input, round 3: hostile or broken files under trials/ and report/ (issue 24).

Whoever can write the output prefix must not be able to hang a command, exhaust
its memory, crash it, make it skip an index silently or forge the report with a
file that is only malformed, oversized or inconsistent. Each test is named
after its case.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys

import pytest

from conftest import ROOT
from fake_sweep import BOOT, fake_result, make_cfg, write_sweep
from samplesize.aggregate import aggregate
from samplesize.errors import TransientError
from samplesize.report import REPORT_FILES
from samplesize.results import encode_result, load_results, result_key
from samplesize.storage import LocalStorage

# The sweep of fake_sweep.make_cfg, on the command line.
ARGS = ("--set", "splits=[0.1, 0.25, 0.5]", "--set", "backtest_splits=[1.0]", "--set", "repetitions=2",
        "--set", "targets=[0.85, 0.99]", "--set", "predict_at=[1500]")
MEMORY_BOUND = 3 * 2**30  # address space a command gets in these tests: a 6 GB file cannot be read whole


def cli(*args: str, out, memory: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI in a fresh process on the sweep of `make_cfg` at `out`, optionally under an address-space limit."""
    def limit():
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT / "job")}
    return subprocess.run([sys.executable, "-m", "samplesize", *args, "--set", f"output={out}", *ARGS],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout, preexec_fn=limit)


def sparse(path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


# ---------------------------------------------------------------- case 2: oversized files


@pytest.mark.parametrize("command", ["aggregate", "status"])
def test_6_gb_sparse_trial_file_is_rejected_by_size_without_being_read(tmp_path, command):
    cfg = make_cfg()
    write_sweep(cfg, tmp_path, indexes=range(1, cfg.trial_count))
    sparse(tmp_path / result_key(0), 6 * 2**30)
    proc = cli(command, *(["--bootstrap", "20"] if command == "aggregate" else []), out=tmp_path, memory=MEMORY_BOUND)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MemoryError" not in proc.stderr and "trial-00000.json" in proc.stdout + proc.stderr
    assert "bytes" in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [("trial", "--index", "0"), ("run",)])
def test_6_gb_sparse_trial_file_at_a_result_key_stops_trial_and_run_with_exit_65(tmp_path, command):
    cfg = make_cfg()
    write_sweep(cfg, tmp_path, indexes=range(1, cfg.trial_count))
    sparse(tmp_path / result_key(0), 6 * 2**30)
    proc = cli(*command, out=tmp_path, memory=MEMORY_BOUND)
    assert proc.returncode == 65, proc.stderr[-2000:]
    assert "MemoryError" not in proc.stderr and "trial-00000.json" in proc.stderr and "bytes" in proc.stderr


# ---------------------------------------------------------------- case 3: hostile values quoted in full


def test_rejections_quote_hostile_values_cut_to_80_characters_with_their_length(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(3, cfg.trial_count))
    huge = "A" * (15 * 2**20)
    for i in range(3):
        (tmp_path / result_key(i)).write_text(json.dumps({**fake_result(cfg, i), "schema_version": huge}))
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    rejected = summary["trials"]["rejected"]
    assert len(rejected) == 3 and all(len(p) < 1000 for p in rejected), [len(p) for p in rejected]
    assert all(f"({len(huge)} characters)" in p for p in rejected)
    for name in ("report.html", "summary.json", "report.md"):
        assert (tmp_path / "report" / name).stat().st_size < 2**20, name


@pytest.mark.parametrize("field, value", [
    ("config_hash", "B" * 100_000),
    ("index", "C" * 100_000),
    ("split", "D" * 100_000),
    ("sample_size", ["E" * 100_000]),
])
def test_rejections_quote_any_hostile_field_cut_short(tmp_path, field, value):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(1, cfg.trial_count))
    (tmp_path / result_key(0)).write_text(json.dumps({**fake_result(cfg, 0), field: value}))
    problems = load_results(cfg, storage).problems
    assert len(problems) == 1 and len(problems[0]) < 1000, len(problems[0])


# ---------------------------------------------------------------- case 8: non-result bytes at a result key


def test_non_result_bytes_at_a_result_key_make_trial_exit_65_naming_it(tmp_path):
    (tmp_path / "trials").mkdir()
    (tmp_path / result_key(0)).write_bytes(b"not json")
    proc = cli("trial", "--index", "0", out=tmp_path)
    assert proc.returncode == 65, proc.stdout + proc.stderr
    assert "trial-00000.json" in proc.stderr and "not valid JSON" in proc.stderr
    assert "nothing to do" not in proc.stdout


def test_non_result_bytes_at_a_result_key_make_run_exit_65_naming_it_never_a_silent_partial_report(tmp_path):
    (tmp_path / "trials").mkdir()
    (tmp_path / result_key(0)).write_bytes(b"not json")
    proc = cli("run", out=tmp_path)
    assert proc.returncode == 65, proc.stdout + proc.stderr
    assert "trial-00000.json" in proc.stderr and "not valid JSON" in proc.stderr
    assert not (tmp_path / "report").exists()


def test_valid_result_of_this_sweep_at_a_result_key_is_still_already_done(tmp_path):
    cfg = make_cfg()
    write_sweep(cfg, tmp_path, indexes=[0])
    proc = cli("trial", "--index", "0", out=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout


# ---------------------------------------------------------------- case 9: 100,000 class names


def test_result_with_100000_class_names_is_rejected_by_the_class_bound(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(1, cfg.trial_count))
    names = [f"c{i}" for i in range(100_000)]
    bad = fake_result(cfg, 0, class_names=names, confusion_matrix=None)
    bad["metrics"]["per_class_recall"] = {c: 0.5 for c in names}
    (tmp_path / result_key(0)).write_text(json.dumps(bad))
    loaded = load_results(cfg, storage)
    assert loaded.missing == [0] and "100000 class" in loaded.problems[0]


# ---------------------------------------------------------------- case 10: JSON nested 200,000 deep


@pytest.mark.parametrize("command", [("trial", "--index", "0"), ("run",)])
def test_json_nested_200000_levels_at_a_result_key_is_rejected_by_trial_and_run(tmp_path, command):
    (tmp_path / "trials").mkdir()
    (tmp_path / result_key(0)).write_bytes(b"[" * 200_000 + b"]" * 200_000)
    proc = cli(*command, out=tmp_path)
    assert proc.returncode == 65, proc.stderr[-3000:]
    assert "RecursionError" not in proc.stderr and "nested" in proc.stderr and "trial-00000.json" in proc.stderr


# ---------------------------------------------------------------- case 12: Markdown and terminal injection


FORGED = "trial-9\n\n# samplesize report: demo\n\n## Answer\n\n- you need 10 images\u202e<!--.json"


def test_markdown_and_terminal_injection_through_a_result_file_name_is_escaped(tmp_path):
    cfg = make_cfg()
    write_sweep(cfg, tmp_path)
    (tmp_path / "trials" / FORGED).write_text("{}")
    proc = cli("aggregate", "--bootstrap", "20", out=tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    lines = md.splitlines()
    assert sum(line.startswith("# ") for line in lines) == 1 and lines.count("## Answer") == 1
    assert re.search(r"(?<!\\)<!--", md) is None and "\u202e" not in md  # `\<!--` shows the name, hides nothing
    assert "you need 10 images" in md  # named, on one line
    out = proc.stdout + proc.stderr
    assert "\u202e" not in out and "\n# samplesize report: demo\n\n## Answer\n\n- you need" not in out
    assert sum(line.startswith("# samplesize report") for line in proc.stdout.splitlines()) == 1
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<!--" not in html.split("<body", 1)[-1] and "\u202e" not in html


def test_bidi_and_newline_in_a_class_name_are_escaped_in_the_summary_and_the_plot(tmp_path):
    cfg = make_cfg()
    classes = ["cat", "dog\u202egnp.exe", "new\nline"]
    storage = LocalStorage(tmp_path)
    for i in range(cfg.trial_count):
        assert storage.write_once(result_key(i), encode_result(fake_result(cfg, i, classes=classes)))
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    names = [c["class"] for c in summary["per_class"]]
    assert names == ["cat", "dog\\u202egnp.exe", "new\\x0aline"]
    for name in ("report.md", "report.html", "summary.json"):
        text = (tmp_path / "report" / name).read_text()
        assert "\u202e" not in text and "new\nline" not in text, name


# ---------------------------------------------------------------- weak points


def test_forged_metrics_that_contradict_the_results_own_confusion_matrix_are_rejected(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(1, cfg.trial_count))
    matrix = [[10, 45, 45], [24, 24, 32], [14, 26, 30]]  # recalls 0.10, 0.30, 0.43; the sweep's 250 test images
    recalls = [row[i] / sum(row) for i, row in enumerate(matrix)]
    forged = fake_result(cfg, 0, confusion_matrix=matrix)
    forged["metrics"].update(accuracy=0.99, balanced_accuracy=0.99,
                             per_class_recall={c: 0.99 for c in forged["class_names"]})
    (tmp_path / result_key(0)).write_text(json.dumps(forged))
    loaded = load_results(cfg, storage)
    assert loaded.missing == [0] and "confusion_matrix" in loaded.problems[0], loaded.problems
    honest = fake_result(cfg, 0, confusion_matrix=matrix)
    honest["metrics"].update(accuracy=64 / 250, balanced_accuracy=sum(recalls) / 3,
                             per_class_recall=dict(zip(honest["class_names"], recalls)))
    (tmp_path / result_key(0)).write_text(json.dumps(honest))
    assert load_results(cfg, storage).missing == []


def test_forged_metrics_beside_a_matrix_that_leaves_test_images_out_are_rejected_too(tmp_path):
    """The check held only for a matrix of the whole test set: dropping one count skipped it."""
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(1, cfg.trial_count))
    forged = fake_result(cfg, 0, confusion_matrix=[[10, 45, 45], [24, 24, 32], [14, 26, 29]])  # 249 of 250
    forged["metrics"].update(accuracy=0.99, balanced_accuracy=0.99,
                             per_class_recall={c: 0.99 for c in forged["class_names"]})
    (tmp_path / result_key(0)).write_text(json.dumps(forged))
    loaded = load_results(cfg, storage)
    assert loaded.missing == [0] and "its own confusion_matrix gives" in loaded.problems[0], loaded.problems


def test_stray_json_under_trials_that_is_not_a_trial_file_is_ignored_by_run_and_aggregate(tmp_path):
    cfg = make_cfg()
    write_sweep(cfg, tmp_path)
    (tmp_path / "trials" / "notes.json").write_text(json.dumps({"config_hash": "0123456789abcdef"}))
    for command in (("aggregate", "--bootstrap", "20"), ("run",)):
        proc = cli(*command, out=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "notes.json" not in proc.stdout + proc.stderr


def test_report_interrupted_mid_set_is_called_incomplete_by_status_never_silently_mixed(tmp_path, monkeypatch):
    """SIGTERM or a full disk between the four files left a new PNG beside an old page and summary."""
    from samplesize.report import MANIFEST, report_set_problem

    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path)
    aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    assert report_set_problem(storage) is None
    assert set(json.loads((tmp_path / MANIFEST).read_text())["files"]) == {k.split("/")[-1] for k in REPORT_FILES}
    assert "report: present" in cli("status", "--require-report", out=tmp_path).stdout

    real_write = LocalStorage.write

    def full_disk_at_the_page(self, key, data):
        if key.endswith("report.html"):
            raise TransientError("stopped by SIGTERM")
        real_write(self, key, data)
    monkeypatch.setattr(LocalStorage, "write", full_disk_at_the_page)
    with pytest.raises(TransientError):
        aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    monkeypatch.undo()
    assert "interrupted" in report_set_problem(storage)
    proc = cli("status", "--require-report", out=tmp_path)
    assert proc.returncode == 1 and "not one consistent set" in proc.stdout, proc.stdout

    aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)  # the way out the message names
    (tmp_path / "report" / "learning_curve.png").write_bytes(b"\x89PNG another plot")
    assert "learning_curve.png is not the file written with the rest" in report_set_problem(storage)
    (tmp_path / MANIFEST).write_text('{"state": "complete", "files": {"report.html": {"sha256": "0", "bytes": 1e15}}}')
    assert "unreadable" in report_set_problem(storage)  # a size it names is never read


def test_directory_at_a_result_key_is_named_among_the_rejected_files_by_aggregate(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(cfg.trial_count - 1))
    (tmp_path / result_key(cfg.trial_count - 1)).mkdir()
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    assert any(result_key(cfg.trial_count - 1) in p and "not a regular file" in p for p in summary["trials"]["rejected"])


@pytest.mark.parametrize("folder", ["report", "trials"])
def test_symlinked_report_or_trials_folder_is_refused_writes_never_leave_the_output(tmp_path, folder):
    cfg = make_cfg()
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    write_sweep(cfg, out)
    elsewhere.mkdir()
    if folder == "trials":
        (out / "trials").rename(elsewhere / "trials")
        (out / "trials").symlink_to(elsewhere / "trials")
    else:
        (out / "report").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.rglob("*"))
    proc = cli("aggregate", "--bootstrap", "20", out=out)
    assert proc.returncode == 65, proc.stdout + proc.stderr
    assert "symbolic link" in proc.stderr and folder in proc.stderr
    assert sorted(p.name for p in elsewhere.rglob("*")) == before


def test_test_set_too_small_warning_never_contradicts_itself(tmp_path):
    cfg = make_cfg(targets=[0.85, 0.999])
    storage = LocalStorage(tmp_path)
    for i in range(cfg.trial_count):
        assert storage.write_once(result_key(i), encode_result(fake_result(cfg, i, test_size=48, confusion_matrix=None)))
    summary = aggregate(cfg, storage, job_state="Complete", n_bootstrap=BOOT)
    warning = next(w for w in summary["warnings"] if w.startswith("TEST SET TOO SMALL: 48 images"))
    assert "at least 30 test images" not in warning and "at least 1000 test images" in warning, warning
