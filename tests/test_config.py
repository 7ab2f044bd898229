"""Config loading and validation: every bad value names its key and what is allowed."""

import pytest

from samplesize.config import SweepConfig, build_config, load_config, parse_yaml
from samplesize.errors import ConfigError


def test_no_config_is_the_builtin_demo():
    cfg = load_config()
    assert cfg.dataset.source == "builtin:digits"
    assert cfg.model.backbone == "small_cnn"
    assert cfg.output_uri == "runs/demo"
    assert cfg.trial_count == len(cfg.all_splits) * cfg.repetitions


def test_set_overrides_use_dotted_keys_and_yaml_values():
    cfg = load_config(overrides=["training.head_epochs=3", "splits=[0.2, 0.4]", "model.dropout=0.5", "name=x"])
    assert cfg.training.head_epochs == 3
    assert cfg.splits == (0.2, 0.4)
    assert cfg.model.dropout == 0.5
    assert cfg.output_uri == "runs/x"


def test_yaml_file_is_loaded(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: flowers\nrepetitions: 5\ndataset:\n  source: folder:/data/x\n  image_size: 224\n")
    cfg = load_config(path)
    assert (cfg.name, cfg.repetitions, cfg.dataset.source, cfg.dataset.image_size) == ("flowers", 5, "folder:/data/x", 224)


@pytest.mark.parametrize(
    "override, words",
    [
        ("splits=[0, 0.5]", ["splits", "(0, 1]"]),
        ("splits=[0.5, 1.5]", ["splits", "1.5"]),
        ("splits=[0.5, 0.5]", ["splits", "more than once"]),
        ("splits=[]", ["splits", "empty"]),
        ("repetitions=0", ["repetitions", "at least 1"]),
        ("model.backbone=vgg99", ["model.backbone", "vgg99", "mobilenet_v2"]),
        ("metric=precision", ["metric", "precision", "balanced_accuracy"]),
        ("sampling=bootstrap", ["sampling", "stratified", "with_replacement"]),
        ("targets=[1.2]", ["targets", "1.2"]),
        ("targets=[0]", ["targets", "(0, 1)"]),
        ("dataset.test_fraction=1.0", ["dataset.test_fraction", "(0, 1)"]),
        ("repetitons=3", ["repetitons", "did you mean repetitions"]),
        ("training.augmnt=none", ["training.augmnt", "training.augment"]),
        ("training.augment=sometimes", ["training.augment", "online"]),
        ("dataset.source=s3:bucket", ["dataset.source", "builtin, folder, tfds"]),
        ("repetitions=two", ["repetitions", "number"]),
        ("backtest_splits=[0.5]", ["backtest_splits", "also in splits"]),
        ("model.fine_tune_from=block_10", ["model.fine_tune_from", "small_cnn"]),
        ("training.batch_size=0", ["training.batch_size"]),
        ("name=../escape", ["name"]),
    ],
)
def test_invalid_value_fails_naming_the_key(override, words):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    for word in words:
        assert word in str(err.value)


def test_yaml_that_is_not_a_mapping_is_refused(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("- 0.1\n- 0.2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_yaml_python_tag_is_refused_not_executed(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()


def test_missing_config_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_set_without_equals_sign_explains_the_form():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(overrides=["repetitions"])


def test_trial_hash_ignores_report_only_keys_but_not_training_keys():
    base = build_config({})
    assert base.trial_hash() == build_config({"targets": [0.5], "predict_at": [10], "output": "/x", "name": "other"}).trial_hash()
    assert base.trial_hash() != build_config({"training": {"head_epochs": 3}}).trial_hash()
    assert base.trial_hash() != build_config({"seed": 1}).trial_hash()


def test_config_round_trips_through_yaml():
    cfg = load_config(overrides=["splits=[0.2, 0.4]", "model.fine_tune_from=null"])
    again = build_config(parse_yaml(cfg.to_yaml()))
    assert again == cfg and isinstance(again, SweepConfig)


def test_unquoted_off_and_on_mean_the_switch_values_not_booleans():
    cfg = load_config(overrides=["training.feature_cache=off", "training.mixed_precision=on"])
    assert (cfg.training.feature_cache, cfg.training.mixed_precision) == ("off", "on")


# ---------------------------------------------------------------- bad input, round 2


def test_seed_beyond_2_to_the_32_is_a_config_error_at_load():
    with pytest.raises(ConfigError, match=r"seed: 4294967296 .*4294967295"):
        load_config(overrides=["seed=4294967296"])
    assert load_config(overrides=["seed=4294967295"]).seed == 4294967295


@pytest.mark.parametrize(
    "override, key",
    [
        ("repetitions=100000000", "repetitions"),
        ("splits=[" + ", ".join(str((i + 1) / 1000) for i in range(500)) + "]", "splits"),
        ("predict_at=[" + "9" * 400 + "]", "predict_at"),
        ("training.head_epochs=10000000", "training.head_epochs"),
        ("training.batch_size=10000000", "training.batch_size"),
    ],
)
def test_huge_counts_are_refused_at_load_naming_the_key_and_the_limit(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    assert key in str(err.value) and "at most" in str(err.value)


def test_chart_schema_bounds_agree_with_the_config_limits():
    import json
    from pathlib import Path

    from samplesize.config import LIMITS

    schema = json.loads((Path(__file__).resolve().parents[1] / "charts/samplesize/values.schema.json").read_text())
    sweep = schema["properties"]["sweep"]["properties"]
    for dotted, (low, high) in LIMITS.items():
        node = sweep
        for part in dotted.split("."):
            node = node[part] if part in node else node["properties"][part]
        if node.get("type") == "array":
            assert node.get("maxItems") == high, dotted
        else:
            assert (node.get("minimum"), node.get("maximum")) == (low, high), dotted


def test_yaml_exponent_without_a_point_hints_to_write_a_decimal(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("training:\n  batch_size: 1e3\n")
    with pytest.raises(ConfigError, match=r"training.batch_size.*'1e3'.*write 1000"):
        load_config(path)
    path.write_text("training:\n  learning_rate: 1e-1\n")  # a float key reads it as the number it means
    assert load_config(path).training.learning_rate == 0.1


def test_key_given_twice_in_sweep_yaml_is_an_error_naming_key_and_lines(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("repetitions: 3\nseed: 1\nrepetitions: 5\n")
    with pytest.raises(ConfigError, match=r"repetitions.*twice.*lines 1 and 3"):
        load_config(path)
    path.write_text("training:\n  batch_size: 8\n  batch_size: 16\n")
    with pytest.raises(ConfigError, match="batch_size.*twice"):
        load_config(path)


def test_splits_closer_than_the_seed_rounding_are_refused():
    with pytest.raises(ConfigError, match=r"0\.25.*0\.2500001.*same seeds"):
        load_config(overrides=["splits=[0.25, 0.2500001]"])
    with pytest.raises(ConfigError, match="same seeds"):
        load_config(overrides=["splits=[0.5]", "backtest_splits=[1.0, 0.9999999]"])


def test_latin1_sweep_yaml_exits_64_with_a_message(tmp_path):
    from conftest import run_cli

    path = tmp_path / "sweep.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    proc = run_cli("plan", "--config", str(path))
    assert proc.returncode == 64, proc.stderr
    assert "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr


def test_over_long_output_path_exits_64_with_a_message(tmp_path):
    from conftest import run_cli

    proc = run_cli("status", "--set", f"output={tmp_path}/{'x' * 300}/run")
    assert proc.returncode == 64, proc.stderr
    assert "output" in proc.stderr and "255" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("status", "--set", f"output=gs://bucket/{'y' * 1100}")
    assert proc.returncode == 64 and "1024" in proc.stderr


# Trial hashes name finished results: a change that moves them strands every stored sweep.
# The values were computed by the code before the subpackage restructure.
PINNED_TRIAL_HASHES = [
    ({}, None, "ad998dc1addceacc"),
    ({"variants": [{"name": "a", "model": {"dropout": 0.1}}, {"name": "b", "dataset": {"image_size": 32}}]}, None,
     "25cc1c867c1c579f"),
    ({"variants": [{"name": "a", "model": {"dropout": 0.1}}, {"name": "b", "dataset": {"image_size": 32}}]}, "b",
     "e18680be185f6389"),
    ({"dataset": {"source": "folder:/data/x", "image_size": 96}, "sampling": "with_replacement",
      "model": {"backbone": "mobilenet_v2", "weights": "imagenet"}}, None, "d50e8eaceba7ba2d"),
]


@pytest.mark.parametrize("raw, variant, expected", PINNED_TRIAL_HASHES)
def test_trial_hashes_are_pinned(raw, variant, expected):
    assert build_config(raw).trial_config(variant).trial_hash() == expected
