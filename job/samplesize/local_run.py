"""Run a whole sweep on one machine: every trial in its own process, then aggregate.

One process per trial keeps memory flat from trial to trial (TensorFlow does
not give memory back) and mirrors one pod per index on Kubernetes. Children
report epochs as JSON lines on stdout; this module turns them into progress.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from .config import SweepConfig
from .plan import TrialSpec
from .results import result_key
from .storage import Storage

PROGRESS_PREFIX = "samplesize-progress "


@dataclass
class SweepProgress:
    """Trials done and running, and an ETA weighted by sample size (cost grows with it)."""

    work: dict[int, int]  # index -> sample size
    started: float = field(default_factory=time.monotonic)
    done: set = field(default_factory=set)
    failed: set = field(default_factory=set)
    epoch: dict = field(default_factory=dict)  # index -> latest progress event

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        finished = self.done | self.failed
        done_work = sum(self.work[i] for i in finished)
        left_work = sum(w for i, w in self.work.items() if i not in finished)
        eta = f"ETA {_duration(elapsed / done_work * left_work)}" if done_work else "ETA after the first trial"
        running = ", ".join(
            f"#{i} {e['phase']} epoch {e['epoch']}/{e['epochs']}" for i, e in sorted(self.epoch.items()) if i not in finished
        )
        failed = f", {len(self.failed)} failed" if self.failed else ""  # failed trials are not done: no result
        return (f"[{len(self.done)}/{len(self.work)} trials done{failed}, {len(self.work) - len(finished)} left] "
                f"elapsed {_duration(elapsed)}, {eta}" + (f" | {running}" if running else ""))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def run_sweep(cfg: SweepConfig, storage: Storage, trials: list[tuple[TrialSpec, int]], workers: int,
              out=sys.stderr) -> list[int]:
    """Run every trial without a result; return the indexes that failed."""
    todo = [(spec, size) for spec, size in trials if not storage.exists(result_key(spec.index))]
    skipped = len(trials) - len(todo)
    if skipped:
        print(f"{skipped} trial(s) already have results; running the other {len(todo)}", file=out)
    progress = SweepProgress(work={spec.index: max(size, 1) for spec, size in todo})
    lock = threading.Lock()
    tty = out.isatty() if hasattr(out, "isatty") else False

    def report(final: bool = False) -> None:
        text = progress.line()
        if tty and not final:
            print("\r" + text[:200].ljust(200), end="", file=out, flush=True)
        else:
            print(("\r" if tty else "") + text, file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="samplesize-") as tmp:
        config_path = os.path.join(tmp, "sweep.yaml")
        with open(config_path, "w", encoding="utf-8") as f:
            f.write(cfg.to_yaml())
        queue = list(todo)
        children: list[subprocess.Popen] = []

        def worker() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    spec, _ = queue.pop(0)
                ok, tail = _run_child(config_path, spec.index, progress, lock, report, children)
                with lock:
                    (progress.done if ok else progress.failed).add(spec.index)
                    if not ok:
                        print(f"\ntrial {spec.index} (split {spec.split}, repetition {spec.repetition}) failed:\n{tail}",
                              file=out, flush=True)
                    report(final=not tty)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(workers, len(todo))))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:
            with lock:
                queue.clear()
            _stop_children(children)  # SIGTERM or Ctrl-C: no trial keeps training after the sweep stops
            raise
    if todo:
        report(final=True)
    return sorted(progress.failed)


def _stop_children(children: list[subprocess.Popen]) -> None:
    for proc in children:
        if proc.poll() is None:
            proc.terminate()  # the child's SIGTERM handler exits 75, writing nothing
    for proc in children:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_child(config_path: str, index: int, progress: SweepProgress, lock, report,
               children: list | None = None) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "samplesize", "trial", "--config", config_path, "--index", str(index), "--progress", "json"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if children is not None:
        children.append(proc)
    tail: list[str] = []
    for line in proc.stdout:
        if line.startswith(PROGRESS_PREFIX):
            with lock:
                progress.epoch[index] = json.loads(line[len(PROGRESS_PREFIX):])
                report()
        else:
            tail = (tail + [line.rstrip()])[-15:]
    return proc.wait() == 0, "\n".join(tail)
