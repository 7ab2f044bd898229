"""The original recipe's image augmentation, applied once (static) or per batch (online)."""

from __future__ import annotations

import numpy as np


def augmentation_layers(seed: int):
    """RandomFlip, RandomRotation, RandomZoom and RandomContrast, as in the Keras recipe."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomFlip(mode="horizontal", seed=seed),
            layers.RandomRotation(factor=0.1, seed=seed + 1),
            layers.RandomZoom(height_factor=(-0.1, 0.0), seed=seed + 2),
            layers.RandomContrast(factor=0.1, seed=seed + 3),
        ],
        name="augmentation",
    )


def augment_once(images: np.ndarray, seed: int, batch_size: int = 256) -> np.ndarray:
    """Augment every image once, seeded, in batches so float32 copies stay small."""
    aug = augmentation_layers(seed)
    out = np.empty_like(images)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype("float32")
        out[start : start + batch_size] = np.clip(np.rint(np.asarray(aug(batch, training=True))), 0, 255).astype(np.uint8)
    return out
