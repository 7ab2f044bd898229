"""Useful random backbone weights without a download, for benchmarks and tests.

`bench/trial_speed.py` calibrates a `weights: none` backbone once and stores
the weights file it then benchmarks with; `tests/test_features.py` calibrates
its small MobileNetV2 the same way (pytest puts `bench/` on the path, see
`pythonpath` in pyproject.toml). Nothing in the package needs it.
"""

from __future__ import annotations


def calibrate_batchnorm(clf, images) -> None:
    """Set every BatchNormalization's moving statistics in the base from `images` (uint8 pixels).

    A randomly initialised backbone (`weights: none`) passes almost nothing
    through its 50-odd layers: activations shrink to ~1e-12 and every image
    gets the same features. Calibrating its BatchNormalization on a batch of
    real images gives useful random features, so benchmarks and tests can
    train something meaningful without downloading weights. It makes one
    pass through the base, layer by layer, in graph order.
    """
    import numpy as np
    from keras import layers, ops

    base = clf.base
    values = {id(base.inputs[0]): clf.preprocess(np.asarray(images, "float32"))}
    for depth in sorted(base._nodes_by_depth, reverse=True):
        for node in base._nodes_by_depth[depth]:
            if node.is_input:
                continue
            args, kwargs = node.arguments.fill_in(values)
            layer = node.operation
            if isinstance(layer, layers.BatchNormalization):
                axes = [a for a in range(len(args[0].shape)) if a != len(args[0].shape) - 1]
                layer.moving_mean.assign(ops.mean(args[0], axis=axes))
                layer.moving_variance.assign(ops.var(args[0], axis=axes))
            outputs = layer(*args, **kwargs)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            for tensor, value in zip(node.outputs, outputs):
                values[id(tensor)] = value
