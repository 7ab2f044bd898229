"""Shared fixtures: tiny image folders and a fast sweep config."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# Fixtures from helper modules: the GCS emulator's, and the `controlplane` tests' (a real kube-apiserver
# and Job controller, and a test pod runner).
pytest_plugins = ["gcs_emulator", "controlplane_fixtures"]
# fake_sweep's asserts explain their failures as a test's would.
pytest.register_assert_rewrite("fake_sweep")

# A sweep small enough to train in seconds on two CPU cores.
TINY_SWEEP = [
    "splits=[0.3, 0.6]",
    "backtest_splits=[]",
    "repetitions=2",
    "training.head_epochs=2",
    "dataset.image_size=12",
]


def tiny_sweep_sets(*extra: str) -> list[str]:
    """CLI arguments `--set ITEM` for each item of TINY_SWEEP, then of `extra`."""
    return [arg for item in [*TINY_SWEEP, *extra] for arg in ("--set", item)]


def image_bytes(rng: np.random.Generator, size: int = 20, fmt: str = "PNG", tint: int = 0) -> bytes:
    pixels = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
    pixels[..., tint % 3] += 150  # each class has its own colour, so a model can learn it
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def write_image_folder(root: Path, classes=("cats", "dogs", "birds"), per_class: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            fmt = "JPEG" if i % 2 else "PNG"
            (root / name / f"img {i}.{fmt.lower()}").write_bytes(image_bytes(rng, fmt=fmt, tint=c))
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Three classes of tiny images, plus the junk real folders hold."""
    root = write_image_folder(tmp_path / "images")
    (root / "cats" / "empty.jpg").write_bytes(b"")
    (root / "dogs" / "Thumbs.db").write_bytes(b"\x00\x01not an image")
    jpeg = image_bytes(np.random.default_rng(1), fmt="JPEG")
    (root / "birds" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    return root


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the samplesize CLI in a fresh process, as a user or a pod would."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "samplesize", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=900)
