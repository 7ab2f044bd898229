"""`trial.logFormat: json` (SAMPLESIZE_LOG_FORMAT=json) makes every log line one JSON object for Cloud Logging."""

import json
import os
import subprocess
import sys

SCRIPT = ("import logging, samplesize.cli as cli; cli._quiet_libraries(False); "
          "logging.getLogger('samplesize.test').warning('lock %s is stale', 'cache/x.lock')")


def _stderr(fmt: str) -> str:
    env = {**os.environ, "SAMPLESIZE_LOG_FORMAT": fmt}
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True).stderr


def test_json_log_format_writes_one_json_object_a_line_with_its_severity():
    line = json.loads(_stderr("json").strip())
    assert line == {"severity": "WARNING", "logger": "samplesize.test", "message": "lock cache/x.lock is stale"}


def test_text_log_format_stays_the_plain_line():
    assert _stderr("text").strip() == "WARNING samplesize.test: lock cache/x.lock is stale"
