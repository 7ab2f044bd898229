"""The `samplesize` command line: plan, prepare, trial, run, aggregate, report, status.

Every command reads the sweep config once (`--config`, `--set`), opens the
output storage, and calls one function of the package (`commands`). Errors meant
for the user print one line and exit with the code documented in `errors`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import warnings

from . import __version__
from .commands import COMMANDS, open_output
from .config import load_config
from .errors import ConfigError, SamplesizeError, TransientError
from .text import terminal_safe


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="PATH", help="sweep.yaml (default: the built-in demo sweep)")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, dotted, YAML value (repeatable): --set training.head_epochs=5")
    common.add_argument("--verbose", "-v", action="store_true", help="log details, TensorFlow's included")

    p = argparse.ArgumentParser(prog="samplesize", description="How many labelled images does your classifier need?")
    p.add_argument("--version", action="version", version=f"samplesize {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    plan = sub.add_parser("plan", parents=[common], help="print the trial table (index, split, repetition, sample size, seed)")
    plan.add_argument("--json", action="store_true", help="print a JSON list instead of a table")

    sub.add_parser("prepare", parents=[common], help="decode, resize and split the dataset once, into <output>/cache/")

    trial = sub.add_parser("trial", parents=[common], help="run one trial (index from --index or JOB_COMPLETION_INDEX)")
    trial.add_argument("--index", help="trial index (default: $JOB_COMPLETION_INDEX)")
    trial.add_argument("--progress", choices=("text", "json", "none"), default="text", help="how to report epochs")

    run = sub.add_parser("run", parents=[common], help="run every trial on this machine, then aggregate")
    run.add_argument("--workers", type=int, default=1, help="trials to run in parallel, one process each (default 1)")

    agg = sub.add_parser("aggregate", parents=[common], help="fit the learning curve and write the report")
    agg.add_argument("--wait-for-job", metavar="NAME", help="first wait for this Kubernetes Job (the trials) to finish")
    agg.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "default"), help="namespace of that Job")
    agg.add_argument("--bootstrap", type=int, default=None,
                     help=f"bootstrap resamples for intervals, {MIN_BOOTSTRAP} to {MAX_BOOTSTRAP} (default: curves.DEFAULT_BOOTSTRAP, 1000)")

    report = sub.add_parser("report", parents=[common],
                            help="render the report again from a summary.json, without refitting or reading trials")
    report.add_argument("--summary", metavar="PATH", help="the summary.json to render (default: <output>/report/summary.json)")
    report.add_argument("--output", metavar="URI",
                        help="where report/ is written (default: the output whose report/ holds the summary)")

    status = sub.add_parser("status", parents=[common], help="show finished and missing trials, and whether the report exists")
    status.add_argument("--require-report", action="store_true", help="exit 1 unless report/summary.json exists")
    return p


def main(argv: list[str] | None = None) -> int:
    with _escaped_terminal():
        args = _parser().parse_args(argv)
        _quiet_libraries(args.verbose)
        try:
            if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
                _SIGTERM_SEEN.clear()
                signal.signal(signal.SIGTERM, _on_sigterm)
            _check_arguments(args)
            cfg = load_config(args.config, args.overrides)
            storage = open_output(cfg)
            return COMMANDS[args.command](args, cfg, storage)
        except SamplesizeError as exc:
            print(f"samplesize {args.command}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            return 130
        except Exception:
            if not _SIGTERM_SEEN.is_set():
                raise
            # SIGTERM's TransientError was caught and replaced on its way up by a library that wraps whatever
            # it meets (inspect.getfullargspec, reached while Keras builds a model, raises "unsupported
            # callable"): the stop is still SIGTERM's, and a supervisor must see the transient code to retry
            exc = TransientError(STOPPED_BY_SIGTERM)
            print(f"samplesize {args.command}: error: {exc}", file=sys.stderr)
            return exc.exit_code


MAX_WORKERS = 1024


MIN_BOOTSTRAP = 20  # fewer resamples give intervals too noisy to state
MAX_BOOTSTRAP = 100_000


def _check_arguments(args) -> None:
    """Counts on the command line, refused before any work like a bad config value (exit 64)."""
    workers = getattr(args, "workers", None)
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: must be at least 1 and at most {MAX_WORKERS}")
    boot = getattr(args, "bootstrap", None)
    if boot is not None and not MIN_BOOTSTRAP <= boot <= MAX_BOOTSTRAP:
        # "0: no intervals" printed intervals all the same (the families' spread alone, narrower than what the
        # calibration was measured on): every interval and chance rests on the resamples, so none is offered
        raise ConfigError(f"--bootstrap {boot}: must be at least {MIN_BOOTSTRAP} and at most {MAX_BOOTSTRAP}; the "
                          "report's intervals and chances rest on the resamples (the default, 1000, takes seconds)")


STOPPED_BY_SIGTERM = (
    "stopped by SIGTERM (node preemption, a deleted pod or Ctrl-C from a supervisor); finished results are kept "
    "and an unfinished trial leaves nothing behind, so running the same command again resumes"
)
_SIGTERM_SEEN = threading.Event()


def _on_sigterm(signum, frame) -> None:
    """Preemption or a deleted pod: stop with a message and the transient code; `finally` blocks clean up."""
    _SIGTERM_SEEN.set()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise TransientError(STOPPED_BY_SIGTERM)


class _EscapingStream:
    """A text stream that escapes control characters (see text.terminal_safe) before they reach the terminal.

    File, class and result names come from anyone who can write to a folder
    or bucket; an ESC in one must be shown, not obeyed.
    """

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(terminal_safe(text))

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _escaped_terminal():
    """Everything this command prints (messages, logging, the report) goes out escaped."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _EscapingStream(sys.stdout), _EscapingStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


LOG_FORMAT_ENV = "SAMPLESIZE_LOG_FORMAT"  # the chart's trial.logFormat: text, or json for Cloud Logging


class _JsonLines(logging.Formatter):
    """One JSON object a line, the shape Cloud Logging reads into `jsonPayload` (its `severity` field)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"severity": record.levelname, "logger": record.name, "message": record.getMessage()})


def _quiet_libraries(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if os.environ.get(LOG_FORMAT_ENV, "text") == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(_JsonLines())
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        warnings.filterwarnings("ignore", module="keras")
