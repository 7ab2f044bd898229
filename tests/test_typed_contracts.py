"""Stage contracts are typed values built once: a variant's trial config, a trial's result."""

import json

import pytest

from fake_sweep import fake_result, make_cfg
from samplesize.config import SweepConfig, build_config
from samplesize.errors import ConfigError
from samplesize.results import TrialResult, encode_result, load_results, write_result
from samplesize.storage import LocalStorage

TWO = [{"name": "a", "model": {"dropout": 0.1}}, {"name": "b", "dataset": {"image_size": 32}}]


def test_a_variants_trial_config_is_built_at_load_and_never_rebuilt(monkeypatch):
    cfg = build_config({"variants": TWO})

    def refuse(self):
        raise AssertionError("a trial config was rebuilt from to_dict after load")

    monkeypatch.setattr(SweepConfig, "to_dict", refuse)
    a, b = cfg.trial_config("a"), cfg.trial_config("b")
    assert a is cfg.trial_config("a") and (a.model.dropout, b.dataset.image_size) == (0.1, 32)
    assert a.variants == () and cfg.trial_config(None) is cfg
    assert cfg.variant_names == ["a", "b"] and build_config({}).variant_names == [None]
    assert [v.describe() for v in cfg.variants] == ["model.dropout=0.1", "dataset.image_size=32"]
    with pytest.raises(ConfigError, match="'c' is not in this sweep's variants"):
        cfg.trial_config("c")


def test_a_loaded_result_is_typed_and_writes_back_the_same_json(tmp_path):
    cfg = make_cfg()
    storage = LocalStorage(tmp_path)
    stored = {**fake_result(cfg, 2), "dataset_key": "cache/dataset-x.npz", "tensorflow_version": "2.x",
              "gpu_model": None}
    assert write_result(storage, stored)
    loaded = load_results(cfg, storage)
    trial = loaded.trials[2]
    assert isinstance(trial, TrialResult) and loaded.results[2] == stored
    assert (trial.index, trial.sample_size, trial.variant) == (2, stored["sample_size"], None)
    assert encode_result(trial.to_json()) == encode_result(stored)
    assert json.loads(encode_result(TrialResult.from_json(stored, cfg).to_json())) == stored
