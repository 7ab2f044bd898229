"""What each training phase runs on: the frozen part's cached outputs, or the pixels through the whole network.

The decision is a `PhasePlan`: one `PhaseSource` per phase, cached or on
pixels with the reason. `training.feature_cache: auto` uses the cache only
when it is exact (a frozen base, BatchNormalization in inference mode, a
fixed pool); otherwise the trial runs the whole network and its result's
`feature_cache` says why. The fine-tuning phase can run from cached
activations only when a single tensor enters the block it starts from.

`trial_inputs` turns the plan into the `train.PhaseInputs` that training
reads, building or reading the cache (`feature_cache`) when a phase needs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..config import SweepConfig
from .feature_cache import load_or_build
from ..storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseSource:
    """What one phase trains on: cached activations of the frozen part, or pixels (with the reason)."""

    cached: bool
    reason: str = ""  # why the phase runs on pixels ("off: ..." when the config refuses); empty when cached


CACHED = PhaseSource(cached=True)


@dataclass(frozen=True)
class PhasePlan:
    """The decision for one trial: the head phase, and the fine-tuning phase (None: no fine-tuning)."""

    head: PhaseSource
    fine_tune: PhaseSource | None
    boundary: Any = None  # the Keras tensor whose cached activations the fine-tuning phase starts from

    def note(self, boundary_layer: str | None = None) -> str:
        """The result's `feature_cache`: "used: ..." or "off: <reason>"."""
        if not self.head.cached:
            return self.head.reason
        note = "used: head phase from cached pooled features"
        if self.fine_tune is not None and self.fine_tune.cached:
            note += f"; fine-tuning from cached {boundary_layer} activations"
        elif self.fine_tune is not None:
            note += f"; fine-tuning runs the whole network: {self.fine_tune.reason}"
        return note


def plan_phases(cfg: SweepConfig, clf) -> PhasePlan:
    """Decide what each phase of a trial with classifier `clf` runs on."""
    from .models import fine_tune_start

    fine_tuning = fine_tunes(clf, cfg)
    refusal = config_refusal(cfg)
    if refusal is not None:
        pixels = PhaseSource(cached=False, reason=refusal)
        return PhasePlan(pixels, pixels if fine_tuning else None)
    if not fine_tuning:
        return PhasePlan(CACHED, None)
    boundary, why = fine_tune_boundary(clf.base, fine_tune_start(clf.base, cfg.model.fine_tune_from))
    if boundary is None:
        return PhasePlan(CACHED, PhaseSource(cached=False, reason=why))
    return PhasePlan(CACHED, CACHED, boundary)


def fine_tunes(clf, cfg: SweepConfig) -> bool:
    """Whether the trial has a fine-tuning phase."""
    return clf.two_phase and bool(cfg.model.fine_tune_from) and cfg.training.fine_tune_epochs > 0


def config_refusal(cfg: SweepConfig) -> str | None:
    """Why the configuration makes cached features inexact or meaningless; None when it allows them."""
    if cfg.training.feature_cache == "off":
        return "off: training.feature_cache=off"
    if not _has_frozen_backbone(cfg):
        return f"off: {cfg.model.backbone} has no frozen backbone"
    if cfg.training.augment == "online":
        return "off: augment=online makes cached features inexact"
    return None


def _has_frozen_backbone(cfg: SweepConfig) -> bool:
    from ..backbones import APPLICATIONS

    return cfg.model.backbone in APPLICATIONS


# ---------------------------------------------------------------- the boundary


def fine_tune_boundary(base, start: int):
    """The single tensor entering `base.layers[start:]` from the layers before, or (None, reason).

    Only a single crossing tensor lets the layers above be run from cached
    activations; a skip connection over the boundary would need several.
    """
    before = {id(layer) for layer in base.layers[:start]}
    after = {id(layer) for layer in base.layers[start:]}
    crossing = {}
    for depth_nodes in base._nodes_by_depth.values():  # only the nodes of this graph
        for node in depth_nodes:
            if id(node.operation) not in after:
                continue
            for tensor in node.arguments.keras_tensors:
                producer = tensor._keras_history.operation
                if id(producer) in before:
                    crossing[id(tensor)] = tensor
    for tensor in base.outputs:
        if id(tensor._keras_history.operation) in before:
            crossing[id(tensor)] = tensor
    if len(crossing) != 1:
        names = sorted(t._keras_history.operation.name for t in crossing.values())
        return None, f"{len(crossing)} tensors cross the fine-tuning boundary ({', '.join(names) or 'none'}), not one"
    return next(iter(crossing.values())), ""


def upper_model(base, boundary_tensor):
    """The base from `boundary_tensor` to its output, sharing the base's layer objects (and weights)."""
    import keras

    return keras.Model(boundary_tensor, base.output, name=f"{base.name}_above_{boundary_tensor._keras_history.operation.name}")


# ---------------------------------------------------------------- models over cached inputs


def head_model(clf, pooled_shape):
    """Pooled features -> probabilities through the classifier's own head layers (after pooling)."""
    import keras

    features = keras.Input(shape=pooled_shape, name="pooled_features")
    y = features
    for layer in clf.head[1:]:
        y = layer(y)
    return keras.Model(features, y, name="head_from_pooled_features")


def fine_tune_model(clf, boundary_tensor):
    """Boundary activations -> probabilities: the layers above the boundary, then the whole head."""
    import keras

    upper = upper_model(clf.base, boundary_tensor)
    activations = keras.Input(shape=boundary_tensor.shape[1:], name="boundary_activations")
    # training=False: BatchNormalization stays in inference mode, as in the whole network.
    y = upper(activations, training=False)
    for layer in clf.head:
        y = layer(y)
    return keras.Model(activations, y, name="fine_tune_from_boundary")


# ---------------------------------------------------------------- what a trial trains on


class TrialInputs(NamedTuple):
    """What each phase of one trial trains on, and how the feature cache served it."""

    head: Any  # train.PhaseInputs
    fine_tune: Any  # train.PhaseInputs, or None without fine-tuning
    feature_cache: str  # the result's `feature_cache`: "used: ..." or "off: <reason>"


def trial_inputs(cfg: SweepConfig, storage: Storage, data, clf) -> TrialInputs:
    """What each phase of one trial trains on, using the cache when it is exact.

    `cfg` is the trial's config (a variant's, in a sweep with variants).
    """
    from .train import PhaseInputs, whole_network

    plan = plan_phases(cfg, clf)
    if not plan.head.cached:
        log.info("feature cache %s; training the whole network", plan.note())
        whole = whole_network(clf, data)
        return TrialInputs(whole, whole if plan.fine_tune is not None else None, plan.note())
    cache = load_or_build(cfg, storage, data, clf, plan.boundary)
    head = PhaseInputs(head_model(clf, cache.pool_pooled.shape[1:]), cache.pool_pooled, cache.test_pooled,
                       "pooled features")
    fine = None
    if plan.fine_tune is not None and plan.fine_tune.cached:
        fine = PhaseInputs(fine_tune_model(clf, plan.boundary), cache.pool_boundary, cache.test_boundary,
                           f"{cache.boundary_layer} activations")
    elif plan.fine_tune is not None:
        fine = whole_network(clf, data)
    note = plan.note(cache.boundary_layer)
    log.info("feature cache %s (%s)", note, cache.key)
    return TrialInputs(head, fine, note)
