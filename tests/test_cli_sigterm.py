"""SIGTERM stops any command with the transient code (75), even when a library on the way up catches the
handler's TransientError and raises its own error instead (as inspect.getfullargspec does inside Keras)."""

from __future__ import annotations

import os
import signal

import pytest

import samplesize.cli as cli
from samplesize.errors import EXIT_TRANSIENT


@pytest.fixture
def main(monkeypatch):
    saved = signal.getsignal(signal.SIGTERM)
    yield cli.main
    signal.signal(signal.SIGTERM, saved)


def _wrapping_library():
    """Like inspect.getfullargspec: any error inside becomes a TypeError."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises TransientError here
        signal.pause()
    except Exception as ex:
        raise TypeError("unsupported callable") from ex


def test_sigterm_wrapped_by_a_library_still_exits_transient(main, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(cli.COMMANDS, "plan", lambda args, cfg, storage: _wrapping_library())
    assert main(["plan", "--set", f"output={tmp_path}"]) == EXIT_TRANSIENT
    err = capsys.readouterr().err
    assert "stopped by SIGTERM" in err and "Traceback" not in err


def test_an_error_without_sigterm_is_not_called_transient(main, monkeypatch, tmp_path):
    def broken(args, cfg, storage):
        raise TypeError("a real bug")

    monkeypatch.setitem(cli.COMMANDS, "plan", broken)
    with pytest.raises(TypeError, match="a real bug"):
        main(["plan", "--set", f"output={tmp_path}"])
