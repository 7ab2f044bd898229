"""The local runner's progress line and the `status` command, tested directly."""

from samplesize.config import load_config
from samplesize.local_run import SweepProgress
from samplesize.aggregate import aggregate
from samplesize.results import encode_result, result_key
from samplesize.storage import open_storage

from conftest import run_cli
from fake_sweep import fake_result


def test_progress_line_before_any_trial_finishes_says_when_the_eta_comes():
    progress = SweepProgress(work={0: 400, 1: 200, 2: 100})
    line = progress.line()
    assert line.startswith("[0/3 trials done, 3 left]")
    assert "ETA after the first trial" in line


def test_progress_line_weights_the_eta_by_sample_size_and_names_running_epochs():
    progress = SweepProgress(work={0: 300, 1: 100, 2: 100}, started=0.0)
    progress.done.add(1)
    progress.failed.add(2)
    progress.epoch[0] = {"phase": "head", "epoch": 3, "epochs": 10}
    progress.epoch[1] = {"phase": "head", "epoch": 10, "epochs": 10}  # finished: not shown as running
    line = progress.line()
    assert line.startswith("[1/3 trials done, 1 failed, 1 left]")  # a failed trial is not done
    assert "| #0 head epoch 3/10" in line and "#1 " not in line
    # 200 units of work took the elapsed time; 300 remain, so the ETA is 1.5x the elapsed time.
    elapsed_s = _seconds(line.split("elapsed ")[1].split(",")[0])
    eta_s = _seconds(line.split("ETA ")[1].split(" ")[0])
    assert abs(eta_s - 1.5 * elapsed_s) <= 2


def _seconds(text: str) -> int:
    if "m" in text:
        minutes, seconds = text.rstrip("s").split("m")
        return int(minutes) * 60 + int(seconds)
    return int(text.rstrip("s"))


def test_status_lists_missing_indexes_and_fails_require_report_without_a_report(tmp_path):
    out = tmp_path / "out"
    cfg = load_config(None, [f"output={out}", "splits=[0.3, 0.6]", "backtest_splits=[]", "repetitions=2"])
    storage = open_storage(cfg.output_uri)
    storage.write_once(result_key(1), encode_result(fake_result(cfg, 1)))
    storage.write_once(result_key(3), encode_result(fake_result(cfg, 3)))
    args = ["--set", f"output={out}", "--set", "splits=[0.3, 0.6]", "--set", "backtest_splits=[]",
            "--set", "repetitions=2"]
    proc = run_cli("status", *args)
    assert proc.returncode == 0, proc.stderr
    assert "2/4 trials finished" in proc.stdout
    assert "missing indexes: 0, 2" in proc.stdout
    assert "report: not written yet" in proc.stdout
    assert run_cli("status", *args, "--require-report").returncode == 1


def test_status_with_a_report_passes_require_report(tmp_path):
    out = tmp_path / "out"
    cfg = load_config(None, [f"output={out}", "splits=[0.3, 0.6]", "backtest_splits=[]", "repetitions=1"])
    storage = open_storage(cfg.output_uri)
    for index in range(cfg.trial_count):
        storage.write_once(result_key(index), encode_result(fake_result(cfg, index)))
    aggregate(cfg, storage, n_bootstrap=20)
    proc = run_cli("status", "--set", f"output={out}", "--set", "splits=[0.3, 0.6]", "--set", "backtest_splits=[]",
                   "--set", "repetitions=1", "--require-report")
    assert proc.returncode == 0, proc.stderr
    assert "2/2 trials finished" in proc.stdout and "report: present (report/report.html" in proc.stdout
