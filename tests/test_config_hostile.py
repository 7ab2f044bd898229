"""Bad input, round 3: configs and URIs that a careless or hostile user writes (issue 24).

Each test is named after its case and was seen failing before its fix.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from conftest import ROOT
from samplesize.commands import gcs_options_from_env
from samplesize.config import load_config
from samplesize.errors import ConfigError
from samplesize.storage import open_storage

ALIAS_BOMB = "repetitions:\n  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  - &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)


def test_yaml_of_nested_aliases_is_refused_within_a_memory_bound_with_a_short_message(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    code = ("import sys; from samplesize.config import load_config\n"
            "try:\n    load_config(sys.argv[1])\nexcept Exception as exc:\n    print(type(exc).__name__, str(exc))\n")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))

    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                          preexec_fn=limit, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "job")})
    assert proc.stdout.startswith("ConfigError") and "alias" in proc.stdout, proc.stdout[:500] + proc.stderr[-500:]
    assert len(proc.stdout) < 1000


def test_yaml_of_nested_aliases_through_set_is_refused():
    value = f"[&a [{', '.join(['x'] * 500)}], [{', '.join(['*a'] * 500)}]]"  # 250,000 values from 4 kB
    with pytest.raises(ConfigError, match="alias") as info:
        load_config(None, ["repetitions=" + value])
    assert len(str(info.value)) < 1000


def test_number_hint_never_loops_and_1e_minus_5_is_accepted_for_float_keys():
    cfg = load_config(None, ["training.fine_tune_learning_rate=1e-5", "training.learning_rate=3E-4"])
    assert cfg.training.fine_tune_learning_rate == 1e-5 and cfg.training.learning_rate == 3e-4
    assert load_config(None, [f"training.fine_tune_learning_rate={1e-5!r}"]).training.fine_tune_learning_rate == 1e-5
    with pytest.raises(ConfigError, match=r"training.batch_size.*write 1000\b") as info:
        load_config(None, ["training.batch_size=1e3"])
    hint = str(info.value).rsplit("write ", 1)[1].split()[0]
    assert load_config(None, [f"training.batch_size={hint}"]).training.batch_size == 1000  # the hint parses


def test_yaml_11_octal_and_sexagesimal_forms_stay_text_in_string_keys_and_are_refused_in_number_keys():
    cfg = load_config(None, ["name=010"])
    assert cfg.name == "010" and cfg.output_uri == "runs/010"
    with pytest.raises(ConfigError, match=r"seed must be a number, got '1:20'"):
        load_config(None, ["seed=1:20"])
    with pytest.raises(ConfigError, match=r"repetitions must be a number, got '010'"):
        load_config(None, ["repetitions=010"])
    assert load_config(None, ["repetitions=10", "seed=0"]).repetitions == 10


@pytest.mark.parametrize("item", ["training=[]", "training=false", "dataset=0"])
def test_section_that_is_not_a_mapping_is_refused_not_replaced_by_the_defaults(item):
    with pytest.raises(ConfigError, match=rf"{item.split('=')[0]} must be a mapping"):
        load_config(None, [item])


def test_empty_sweep_yaml_is_refused_instead_of_running_the_demo(tmp_path):
    path = tmp_path / "sweep.yaml"
    for text in ("", "# nothing yet\n"):
        path.write_text(text)
        with pytest.raises(ConfigError, match="empty.*demo"):
            load_config(path)


def test_directory_given_as_config_is_named_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize("raw", ["inf", "1e999", "Infinity", "1e9"])
def test_gcs_retry_deadline_of_inf_or_1e999_is_refused_not_retried_forever(raw):
    with pytest.raises(ConfigError, match="SAMPLESIZE_GCS_RETRY_DEADLINE"):
        gcs_options_from_env({"SAMPLESIZE_GCS_RETRY_DEADLINE": raw})
    assert gcs_options_from_env({"SAMPLESIZE_GCS_RETRY_DEADLINE": "600"}).retry_deadline == 600


@pytest.mark.parametrize("uri", ["gs:/bucket/out", "GS://bucket/out", "s3://bucket/out", "gcs://bucket/out",
                                 "https://example.com/out"])
def test_unknown_or_mistyped_uri_schemes_are_refused_never_a_local_folder(tmp_path, uri, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="gs://"):
        open_storage(uri)
    with pytest.raises(ConfigError, match="output"):
        load_config(None, [f"output={uri}"])
    assert list(tmp_path.iterdir()) == []
