"""The result a trial builds is the result the aggregator reads back."""

import json
from types import SimpleNamespace

import numpy as np

from samplesize.config import load_config
from samplesize.plan import trial_spec
from samplesize.results import build_result, encode_result, load_results, trial_identity, write_result
from samplesize.sampling import sample_size
from samplesize.storage import LocalStorage


def test_a_built_result_is_read_back_as_usable(tmp_path):
    cfg = load_config(overrides=[f"output={tmp_path}"])
    spec = trial_spec(cfg, 3)
    names = [str(c) for c in range(10)]
    data = SimpleNamespace(pool_size=1000, test_labels=np.zeros(250), key="cache/dataset-x.npz", class_names=names)
    size = sample_size(spec.split, spec.seed, data.pool_size, len(names), cfg.sampling)
    train = size - size // 5
    result = build_result(
        trial_identity(cfg, spec), data, sample_size=size, train_size=train, validation_size=size - train,
        metrics={"accuracy": 0.92, "balanced_accuracy": 0.92, "macro_f1": 0.92, "auc": 0.95,
                 "per_class_recall": {n: 0.92 for n in names}},  # what the matrix gives: 23 of 25 per class
        confusion=[[23 if i == j else 2 if j == (i + 1) % 10 else 0 for j in range(10)] for i in range(10)],
        epochs={"head": 3, "fine_tune": 0},
        clock=(0.0, 1.0, 3.5, 4.0), feature_cache="off: test", accelerator="CPU",
        runtime={"tensorflow_version": "2.x", "gpu_model": None},
    )
    assert result.timings == {"load_s": 1.0, "train_s": 2.5, "evaluate_s": 0.5, "total_s": 4.0}
    assert result.pool_size == 1000 and result.test_size == 250 and result.dataset_key == data.key
    storage = LocalStorage(tmp_path)
    assert write_result(storage, result)
    loaded = load_results(cfg, storage)
    assert loaded.problems == []
    assert loaded.results[3] == json.loads(encode_result(result.to_json()))
