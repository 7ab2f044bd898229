"""The summary's "What to do next" block (`answers.next_steps`): what more labels buy, and a plan per target.

A leaf (beside `json_records`), like `summary`, which holds it as `Summary.next_steps`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .json_records import take, to_size


@dataclass
class GainRow:
    """What `more` labels buy over today's pool: the predicted gain, with its paired interval."""
    more: float
    total: float
    label: str  # "+25%" of the pool, or "predict_at"
    gain: float
    interval: list[float]
    score: float  # the predicted score at `total`


@dataclass
class TargetPlan:
    """One target's next step: its assurance size beside the point size, and this round's collection plan."""
    target: float
    sample_size: float | None  # the point size (`TargetAnswer.sample_size`)
    p_reachable: float | None  # `TargetAnswer.p_reachable`
    assurance_size: float  # inf: no size within the horizon reaches `assurance`
    assurance_probability: float
    stop: bool
    reason: str | None  # "reached" or "not worth it" when `stop`
    recommended_total: float
    recommended_more: float
    p_this_round: float
    p_within_rounds: float
    expected_total: float

    @classmethod
    def from_json(cls, doc: dict) -> TargetPlan:
        return take(cls, doc, assurance_size=to_size(doc["assurance_size"]))


@dataclass
class NextSteps:
    """What to do next: what more labels buy from `current_size` (the pool), and a plan per target.

    `settings` holds the collection keys the plan ran with (`label_cost`, `miss_cost`, `rounds`,
    `max_step`, `assurance`) and `defaults` names those that took their default."""
    current_size: float
    score_now: float
    gain_per_1000: float
    gains: list[GainRow]
    plans: list[TargetPlan]
    settings: dict[str, Any]
    defaults: list[str]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> NextSteps:
        return take(cls, doc, gains=[take(GainRow, g) for g in doc["gains"]],
                    plans=[TargetPlan.from_json(p) for p in doc["plans"]])
