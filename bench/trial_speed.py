"""Trial speed: the original recipe's trial protocol against this project's, in one run.

    python bench/trial_speed.py [--image-size 96] [--splits 0.1,0.25] [--repetitions 1] [--epochs 2] [--json PATH]

Both sides run the same trials (same pool, seed, subsample, epochs) through
`samplesize.trial.run_trial`, each trial in its own process so that its peak
RSS is its own:

- recipe: `training.feature_cache: off`, the whole network every epoch, as the
  Keras recipe does (with-replacement sampling, as the recipe draws);
- ours: `training.feature_cache: auto`, the head and the layers above the
  fine-tuning boundary trained from the sweep's cached activations.

The one-off cache cost (the frozen part over the pool and the test set) is
measured on its own, excluded from the per-trial ratio and included in the
sweep ratio. Early stopping cannot cut a run short (patience > epochs), so
both sides run the same epochs and their test accuracies must match.

`--weights calibrated` (the default) builds the backbone with random weights
(no download) and sets its BatchNormalization statistics from the pool,
stored as a weights file: with plain `none` a deep random MobileNetV2 maps
every image to ~0 and every trial to chance, which would make the accuracy
comparison empty. `none`, `imagenet` or a weights file path also work. The
speed does not depend on the weights. The script runs unchanged on a GPU
(mixed precision is then on for both sides).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "job"))


def _sets(args, weights: str, output: str, feature_cache: str) -> list[str]:
    sets = [
        f"dataset.source={args.dataset}",
        f"dataset.image_size={args.image_size}",
        f"model.backbone={args.backbone}",
        f"model.weights={weights}",
        "model.dropout=0.3",
        f"splits=[{args.splits}]",
        "backtest_splits=[]",
        f"repetitions={args.repetitions}",
        f"seed={args.seed}",
        f"sampling={args.sampling}",
        f"training.head_epochs={args.epochs}",
        f"training.fine_tune_epochs={args.epochs if args.fine_tune_from else 0}",
        f"training.patience={args.epochs + 1}",  # never stops early: both sides run the same epochs
        "training.batch_size=64",
        "training.validation_fraction=0.1",
        f"training.feature_cache='{feature_cache}'",
        f"output={output}",
    ]
    if args.fine_tune_from:
        sets.append(f"model.fine_tune_from={args.fine_tune_from}")
    return sets


# ---------------------------------------------------------------- workers (one process each)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def worker(kind: str, sets: list[str], index: int, weights_path: str | None) -> dict:
    from samplesize.commands import open_uri
    from samplesize.config import load_config

    cfg = load_config(None, sets)
    storage = open_uri(cfg.output_uri)
    if kind == "trial":
        from samplesize.trial import run_trial

        outcome = run_trial(cfg, index, storage, open_uri=open_uri)
        r = outcome.result
        return {"seconds": r["timings"]["total_s"], "train_s": r["timings"]["train_s"],
                "evaluate_s": r["timings"]["evaluate_s"], "accuracy": r["metrics"]["accuracy"],
                "balanced_accuracy": r["metrics"]["balanced_accuracy"], "auc": r["metrics"]["auc"],
                "feature_cache": r["feature_cache"], "accelerator": r["accelerator"], "sample_size": r["sample_size"],
                "split": r["split"],
                "epochs": r["epochs"], "peak_rss_mb": _peak_rss_mb()}

    from samplesize.data import open_source, prepare_dataset
    from calibrated_weights import calibrate_batchnorm
    from samplesize.training.models import build_classifier
    from samplesize.plan import trial_spec
    from samplesize.training.runtime import configure_runtime

    spec = trial_spec(cfg, 0)
    configure_runtime(cfg.training, spec.seed)
    data = prepare_dataset(cfg, storage, open_source(cfg.dataset, open_uri))
    if kind == "calibrate":
        clf = build_classifier(cfg.model, cfg.dataset.image_size, len(data.class_names), backbone_seed=cfg.seed,
                               open_uri=open_uri)
        calibrate_batchnorm(clf, data.pool_images[:256])
        clf.base.save_weights(weights_path)
        return {"weights": weights_path}
    if kind == "cache":  # the one-off cost: the frozen part over pool and test set, stored
        from samplesize.training.phases import trial_inputs

        clf = build_classifier(cfg.model, cfg.dataset.image_size, len(data.class_names),
                               backbone_seed=cfg.seed, head_seed=spec.seed, open_uri=open_uri)
        started = time.perf_counter()
        note = trial_inputs(cfg, storage, data, clf).feature_cache
        return {"seconds": round(time.perf_counter() - started, 3), "note": note, "peak_rss_mb": _peak_rss_mb()}
    raise ValueError(kind)


def _spawn(kind: str, sets: list[str], index: int = 0, weights_path: str | None = None) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT / "job")}
    cmd = [sys.executable, __file__, "--worker", kind, "--index", str(index), "--worker-sets", json.dumps(sets)]
    if weights_path:
        cmd += ["--weights-path", weights_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the comparison


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--weights", default="calibrated", help="calibrated (default), none, imagenet, or a weights file")
    p.add_argument("--dataset", default="builtin:digits", help="builtin:digits (upscaled) or folder:<path>")
    p.add_argument("--fine-tune-from", default="block_10", help="block to fine-tune from; '' for the head phase only")
    p.add_argument("--splits", default="0.1,0.25", help="comma-separated fractions of the pool")
    p.add_argument("--repetitions", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2, help="epochs per phase (fixed: no early stop)")
    p.add_argument("--sampling", default="with_replacement", choices=("with_replacement", "stratified"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--keep", help="keep outputs in this folder (default: a temp folder, removed)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-sets", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--weights-path", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.worker_sets), args.index, args.weights_path)))
        return 0

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="trial-speed-"))
    try:
        return _compare(args, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _compare(args, root: Path) -> int:
    from samplesize.config import load_config

    recipe_out, ours_out = str(root / "recipe"), str(root / "ours")
    weights = args.weights
    if weights == "calibrated":
        weights = str(root / f"{args.backbone}-{args.image_size}-calibrated.weights.h5")
        _spawn("calibrate", _sets(args, "none", recipe_out, "off"), weights_path=weights)
    recipe_sets = _sets(args, weights, recipe_out, "off")
    ours_sets = _sets(args, weights, ours_out, "auto")
    # Both sides load the same prepared dataset; preparing it is a separate, shared step (`samplesize prepare`).
    from samplesize.commands import open_uri
    from samplesize.data import open_source, prepare_dataset

    cfg = load_config(None, recipe_sets)
    data = prepare_dataset(cfg, open_uri(recipe_out), open_source(cfg.dataset, open_uri))
    (root / "ours" / "cache").mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "recipe" / data.key, root / "ours" / data.key)
    n = cfg.trial_count
    print(f"{args.backbone} {args.image_size}px weights={args.weights}, {args.dataset}: pool {data.pool_size}, "
          f"test {len(data.test_labels)}; {n} trials (splits {args.splits} x {args.repetitions}), "
          f"{args.epochs} epochs per phase, fine-tune from {args.fine_tune_from or '-'}", flush=True)

    cache = _spawn("cache", ours_sets)
    print(f"one-off feature cache: {cache['seconds']:.1f} s ({cache['note']})", flush=True)
    recipe, ours = [], []
    for i in range(n):
        recipe.append(_spawn("trial", recipe_sets, i))
        ours.append(_spawn("trial", ours_sets, i))
        r, o = recipe[-1], ours[-1]
        print(f"trial {i} (sample size {r['sample_size']}): recipe {r['seconds']:.1f} s, acc {r['accuracy']:.4f}, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB | ours {o['seconds']:.1f} s, acc {o['accuracy']:.4f}, "
              f"peak RSS {o['peak_rss_mb']:.0f} MB | {r['seconds'] / o['seconds']:.2f}x", flush=True)

    recipe_s = sum(r["seconds"] for r in recipe)
    ours_s = sum(o["seconds"] for o in ours)
    acc_diff = max(abs(r["accuracy"] - o["accuracy"]) for r, o in zip(recipe, ours))
    auc_diff = max(abs((r["auc"] or 0) - (o["auc"] or 0)) for r, o in zip(recipe, ours))
    figures = {
        "backbone": args.backbone, "image_size": args.image_size, "weights": args.weights, "dataset": args.dataset,
        "pool_size": data.pool_size, "test_size": int(len(data.test_labels)), "trials": n, "epochs": args.epochs,
        "fine_tune_from": args.fine_tune_from, "accelerator": recipe[0]["accelerator"],
        "recipe_trial_s": [r["seconds"] for r in recipe], "ours_trial_s": [o["seconds"] for o in ours],
        "cache_s": cache["seconds"],
        "trial_speedup": round(recipe_s / ours_s, 2),
        "by_split": _mean_seconds_by_split(recipe, ours),
        "sweep_s": {"recipe": round(recipe_s, 1), "ours": round(ours_s + cache["seconds"], 1)},
        "sweep_speedup": round(recipe_s / (ours_s + cache["seconds"]), 2),
        "peak_rss_mb": {"recipe": round(max(r["peak_rss_mb"] for r in recipe)),
                        "ours": round(max(o["peak_rss_mb"] for o in ours)), "cache": round(cache["peak_rss_mb"])},
        "accuracies": {"recipe": [r["accuracy"] for r in recipe], "ours": [o["accuracy"] for o in ours]},
        "max_accuracy_diff": acc_diff, "max_auc_diff": round(auc_diff, 6),
        "accuracy_match": acc_diff <= 1e-9,
        "feature_cache": ours[0]["feature_cache"],
    }
    for split, (r_mean, o_mean) in figures["by_split"].items():
        print(f"split {split}: recipe {r_mean:.1f} s, ours {o_mean:.1f} s per trial (mean) -> {r_mean / o_mean:.2f}x")
    print(f"per trial (cache excluded): recipe {recipe_s:.1f} s, ours {ours_s:.1f} s -> {figures['trial_speedup']}x")
    print(f"sweep of {n} trials (cache included): recipe {recipe_s:.1f} s, ours {ours_s + cache['seconds']:.1f} s "
          f"-> {figures['sweep_speedup']}x")
    print(f"peak RSS per trial: recipe {figures['peak_rss_mb']['recipe']} MB, ours {figures['peak_rss_mb']['ours']} MB, "
          f"cache build {figures['peak_rss_mb']['cache']} MB")
    print(f"accuracies match: {figures['accuracy_match']} (max |diff| accuracy {acc_diff:.2g}, AUC {auc_diff:.2g})")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0 if figures["accuracy_match"] else 1


def _mean_seconds_by_split(recipe: list[dict], ours: list[dict]) -> dict[float, list[float]]:
    """{split: [recipe mean s, ours mean s]} over the repetitions, largest split first."""
    by_split: dict[float, list[tuple[float, float]]] = {}
    for r, o in zip(recipe, ours):
        by_split.setdefault(r["split"], []).append((r["seconds"], o["seconds"]))
    return {split: [round(sum(p[0] for p in pairs) / len(pairs), 2), round(sum(p[1] for p in pairs) / len(pairs), 2)]
            for split, pairs in sorted(by_split.items(), reverse=True)}


if __name__ == "__main__":
    sys.exit(main())
