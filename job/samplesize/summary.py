"""The summary's types: what `report/summary.json` holds, as dataclasses.

`Summary` is one pipeline's answer (a sweep without variants, or one variant of a sweep);
`VariantsSummary` holds one `Summary` per variant and their comparison. Each type's
`to_json()` writes today's summary.json fields, and `from_json()` reads them back, so that
the report renders from the file alone (`samplesize report`). `read_summary(doc)` picks the type.

The curves' own records (`curve.families`, `curve.details`, `comparison`) stay plain dicts, defined
in `curves` once; "What to do next" is `collection_summary`'s. A leaf, so that `report/` may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .collection_summary import NextSteps
from .json_records import record_fields, take, to_size, unset
from .jsonsafe import json_safe

SUMMARY_SCHEMA_VERSION = 1


@dataclass
class Trials:
    expected: int
    usable: int
    missing: list[int]
    failed: list[int]
    rejected: list[str]
    job_state: str | None


@dataclass
class SizeStats:
    """The scores of one split's trials."""
    split: float
    sample_size: float
    n: int
    expected: int
    mean: float
    std: float | None  # null for a single trial: one trial has no spread to speak of
    min: float
    max: float
    backtest: bool
    indexes: list[int]
    images: float | None = None  # with groups: the mean images drawn (sample_size counts groups)

    def to_json(self) -> dict:
        return record_fields(self, unset(self, ("images",)))


@dataclass
class Point:
    """One usable trial."""
    index: int
    split: float
    repetition: int | None
    sample_size: float
    score: float
    backtest: bool
    variant: str | None = None  # only in a sweep with variants
    images: int | None = None  # with groups: the images drawn (sample_size counts groups)

    def to_json(self) -> dict:
        return record_fields(self, unset(self, ("variant", "images")))


@dataclass
class Prediction:
    sample_size: float
    label: str
    pool_multiple: int | None  # the size is this many times the pool; None for other sizes
    predicted: float
    interval: list[float]
    times_past_data: float | None = None  # not written for a class's predictions
    far: bool = False
    images: float | None = None  # with groups: about how many images the groups hold

    def to_json(self, *, distance: bool = True) -> dict:
        return record_fields(self, unset(self, ("images",)) | (set() if distance else {"times_past_data"}))


@dataclass
class TargetAnswer:
    """The size a target needs. Without a curve only the first four fields are written."""
    target: float
    reachable: bool | None
    sample_size: float | None
    interval: list[float] | None
    times_past_data: float | None = None
    far: bool | None = None
    reached_in_data: bool | None = None
    ceiling: float | None = None
    p_reachable: float | None = None  # the chance the target is reachable at all
    reach_horizon: float | None = None  # an `inf` interval end means beyond this size
    below_smallest_sample: bool = False  # the size was raised to the smallest sample a trial draws
    images: float | None = None  # with groups: about how many images `sample_size` groups hold
    images_interval: list[float] | None = None  # with groups: the same for the interval's ends

    BRIEF = ("target", "reachable", "sample_size", "interval")

    def to_json(self, *, brief: bool = False) -> dict:
        record = record_fields(self, {"below_smallest_sample"} | unset(self, ("images", "images_interval")))
        if brief or self.p_reachable is None:
            record = {k: record[k] for k in self.BRIEF}
        if self.below_smallest_sample and not brief:
            record["below_smallest_sample"] = True
        return record

    @classmethod
    def from_json(cls, doc: dict) -> TargetAnswer:
        interval, images_interval = doc.get("interval"), doc.get("images_interval")
        return take(cls, doc, sample_size=to_size(doc.get("sample_size")),
                     interval=None if interval is None else [to_size(v) for v in interval],
                     images_interval=None if images_interval is None else [to_size(v) for v in images_interval])


@dataclass
class Backtest:
    """How a fit without the backtest splits predicted one of them."""
    split: float
    sample_size: float
    n: int
    measured_mean: float
    measured_std: float | None
    predicted: float | None = None
    interval: list[float] | None = None
    inside: bool | None = None
    times_past_data: float | None = None
    within_test_resolution: bool = False  # outside the interval, but by less than half a test-score step

    def to_json(self) -> dict:
        return record_fields(self, () if self.within_test_resolution else ("within_test_resolution",))


@dataclass
class Contradiction:  # a backtest outside its interval or above the fitted ceiling
    split: float
    sample_size: float
    measured_mean: float
    predicted: float
    interval: list[float]
    ceiling: float
    above_ceiling: bool
    side: str  # "above", "below" or "inside" the interval


@dataclass
class Validation:
    fitted_on: str
    answer_max_size: float
    validation_max_size: float
    backtests: int
    inside: int
    contradictions: list[Contradiction]

    def to_json(self) -> dict:
        return {**record_fields(self), "contradictions": [record_fields(c) for c in self.contradictions]}

    @classmethod
    def from_json(cls, doc: dict) -> Validation:
        return take(cls, doc, contradictions=[take(Contradiction, c) for c in doc["contradictions"]])


@dataclass
class CurveGrid:  # a fitted curve sampled for the plot: `mean` (and its band `low`..`high`) at each of `sizes`
    sizes: list[float]
    mean: list[float]
    low: list[float] | None = None
    high: list[float] | None = None
    families: dict[str, list[float]] | None = None  # the families plotted besides the chosen curve

    def to_json(self) -> dict:
        return {k: v for k, v in record_fields(self).items() if v is not None}


@dataclass
class Curve:
    """The metric's fitted curve: `families` and `details` are the fit's own record (`CurveFit.to_dict`)."""
    family: str
    ceiling: float
    max_fitted_size: float
    far_factor: float  # predictions beyond this many times max_fitted_size are far extrapolations
    families: list[dict]
    details: dict
    grid: CurveGrid | None = None

    def to_json(self) -> dict:
        record = record_fields(self, ("grid",))
        if self.grid is not None:
            record["grid"] = self.grid.to_json()
        return record

    @classmethod
    def from_json(cls, doc: dict) -> Curve:
        grid = doc.get("grid")
        return take(cls, doc, ceiling=to_size(doc["ceiling"]), grid=take(CurveGrid, grid) if grid else None)


@dataclass
class ClassMeasured:
    split: float
    sample_size: float
    n: int
    mean: float
    std: float | None


@dataclass
class ClassCurve:
    """One class's recall: measured per split and, when fitted, its curve's answers."""
    name: str
    measured: list[ClassMeasured]
    recall_at_largest: float | None
    family: str | None = None
    ceiling: float | None = None
    predictions: list[Prediction] | None = None
    targets: list[TargetAnswer] | None = None
    grid: CurveGrid | None = None  # only for the classes the plot shows

    def to_json(self) -> dict:
        record = {
            "class": self.name,
            "measured": [record_fields(m) for m in self.measured],
            "recall_at_largest": self.recall_at_largest,
            "family": self.family,
            "ceiling": self.ceiling,
            "predictions": None if self.predictions is None else [p.to_json(distance=False) for p in self.predictions],
            "targets": None if self.targets is None else [t.to_json(brief=True) for t in self.targets],
        }
        if self.grid is not None:
            record["grid"] = self.grid.to_json()
        return record

    @classmethod
    def from_json(cls, doc: dict) -> ClassCurve:
        predictions, targets, grid = doc.get("predictions"), doc.get("targets"), doc.get("grid")
        return cls(
            name=doc["class"], measured=[take(ClassMeasured, m) for m in doc["measured"]],
            recall_at_largest=doc.get("recall_at_largest"), family=doc.get("family"),
            ceiling=to_size(doc.get("ceiling")),
            predictions=None if predictions is None else [take(Prediction, p) for p in predictions],
            targets=None if targets is None else [TargetAnswer.from_json(t) for t in targets],
            grid=take(CurveGrid, grid) if grid else None)


@dataclass
class ConfusionAtLargest:  # summed counts over the repetitions of the largest split
    split: float
    sample_size: float
    trials: int
    class_names: list[str]
    matrix: list[list[int]]


@dataclass
class RunFacts:
    """What ran, where and when, and the texts of the report's two banners."""
    sweep: str
    dataset: str
    image_size: int
    pool_size: int | None
    test_size: int | None
    classes: int
    sampling: str
    model: str
    weights: str
    fine_tune_from: Any
    splits: list[float]
    backtest_splits: list[float]
    repetitions: int
    metric: str
    total_trial_seconds: float
    accelerators: list[str]
    package_versions: list[str]
    config_hash: str
    output: str
    aggregated_by: str
    generated_at: str
    no_curve: str | None = None  # why no curve was fitted: the NO CURVE banner, also the first warning
    partial_warning: str | None = None  # the PARTIAL SWEEP warning, as it stands in `warnings`
    variant: str | None = None  # a variant's own summary names its variant
    variants: list[str] | None = None  # a sweep with variants lists them
    # With dataset.group_column sample sizes count groups: their name ("patients"), the pool's groups, and the
    # pool's images per group, which converts sizes to images.
    size_unit: str | None = None
    pool_groups: int | None = None
    images_per_group: float | None = None
    dataset_summary: dict | None = None  # the copy's `data.DatasetSummary` JSON, when it has something to list

    def to_json(self, *, no_curve: bool = True) -> dict:
        omit = unset(self, ("variant", "variants", "size_unit", "pool_groups", "images_per_group", "dataset_summary"))
        return record_fields(self, omit | (set() if no_curve else {"no_curve"}))


@dataclass
class Head:
    """The fields every summary opens with."""
    complete: bool
    partial_reasons: list[str]
    metric: str
    level: float
    trials: Trials

    def to_json(self) -> dict:
        return {
            "summary_schema_version": SUMMARY_SCHEMA_VERSION,
            "complete": self.complete,
            "status": "complete" if self.complete else "partial",
            "partial_reasons": self.partial_reasons,
            "metric": self.metric,
            "level": self.level,
            "trials": record_fields(self.trials),
        }

    @classmethod
    def from_json(cls, doc: dict) -> Head:
        return take(cls, doc, trials=take(Trials, doc["trials"]))


@dataclass
class Summary:
    """One pipeline's summary: per-size statistics, the fitted curve and the answer per target."""
    head: Head
    per_size: list[SizeStats]
    curve: Curve | None
    predictions: list[Prediction] | None
    targets: list[TargetAnswer]
    backtest: list[Backtest]
    validation: Validation | None
    per_class: list[ClassCurve]
    confusion_matrix: ConfusionAtLargest | None
    run: RunFacts
    points: list[Point]
    warnings: list[str] = field(default_factory=list)
    next_steps: NextSteps | None = None  # None without a curve

    def to_json(self) -> dict[str, Any]:
        """The summary as summary.json holds it.

        Returns:
            A JSON-safe dict (NaN as null, inf as "inf"), in summary.json's field order.
        """
        return json_safe({
            **self.head.to_json(),
            "per_size": [row.to_json() for row in self.per_size],
            "chosen_family": self.curve.family if self.curve else None,
            "curve": self.curve.to_json() if self.curve else None,
            "predictions": None if self.predictions is None else [p.to_json() for p in self.predictions],
            "targets": [t.to_json() for t in self.targets],
            "next_steps": self.next_steps.to_json() if self.next_steps else None,
            "backtest": [b.to_json() for b in self.backtest],
            "validation": self.validation.to_json() if self.validation else None,
            "per_class": [c.to_json() for c in self.per_class],
            "confusion_matrix": record_fields(self.confusion_matrix) if self.confusion_matrix else None,
            "run": self.run.to_json(),
            "points": [p.to_json() for p in self.points],
            "warnings": list(self.warnings),
        })

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Summary:
        """Read a summary back from summary.json's content, so that its report can be rendered again.

        Args:
            doc: the parsed summary.json of a sweep without variants (or one variant's `summary`).

        Returns:
            The `Summary`; its `to_json()` gives `doc` back.

        Raises:
            KeyError, TypeError, ValueError: `doc` is not a summary of this schema.
        """
        _check_schema(doc)
        predictions, curve = doc["predictions"], doc["curve"]
        return cls(
            head=Head.from_json(doc),
            per_size=[take(SizeStats, row) for row in doc["per_size"]],
            curve=Curve.from_json(curve) if curve else None,
            predictions=None if predictions is None else [take(Prediction, p) for p in predictions],
            targets=[TargetAnswer.from_json(t) for t in doc["targets"]],
            backtest=[take(Backtest, b) for b in doc["backtest"]],
            validation=Validation.from_json(doc["validation"]) if doc["validation"] else None,
            per_class=[ClassCurve.from_json(c) for c in doc["per_class"]],
            confusion_matrix=take(ConfusionAtLargest, doc["confusion_matrix"]) if doc["confusion_matrix"] else None,
            run=take(RunFacts, doc["run"]),
            points=[take(Point, p) for p in doc["points"]], warnings=list(doc["warnings"]),
            next_steps=NextSteps.from_json(doc["next_steps"]) if doc.get("next_steps") else None)


@dataclass
class VariantEntry:
    name: str
    changes: Any  # how the variant differs from the sweep's config (`config.variants.describe`)
    summary: Summary | None  # None until the variant has a usable result

    def to_json(self) -> dict:
        return {**record_fields(self), "summary": self.summary.to_json() if self.summary else None}


@dataclass
class VariantsSummary:
    """A sweep with `variants`: one `Summary` per variant and their comparison (`curves.compare_curves`,
    with `grid`: each fitted variant's curve and band on the comparison plot's grid)."""

    head: Head
    variants: list[VariantEntry]
    comparison: dict
    run: RunFacts | None
    points: list[Point]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The summary as summary.json holds it (see `Summary.to_json`)."""
        return json_safe({
            **self.head.to_json(),
            "variants": [v.to_json() for v in self.variants],
            "comparison": self.comparison,
            # Each variant's summary says whether it has a curve; the sweep's run facts do not.
            "run": self.run.to_json(no_curve=False) if self.run else {},
            "points": [p.to_json() for p in self.points],
            "warnings": list(self.warnings),
        })

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> VariantsSummary:
        """Read a variants summary back from summary.json's content (see `Summary.from_json`)."""
        _check_schema(doc)
        return cls(
            head=Head.from_json(doc),
            variants=[VariantEntry(v["name"], v["changes"], Summary.from_json(v["summary"]) if v["summary"] else None)
                      for v in doc["variants"]],
            comparison=doc["comparison"],
            run=take(RunFacts, doc["run"]) if doc["run"] else None,
            points=[take(Point, p) for p in doc["points"]], warnings=list(doc["warnings"]))


def read_summary(doc: dict[str, Any]) -> Summary | VariantsSummary:
    """The summary in summary.json's parsed content `doc`, of the type its fields say (see `Summary.from_json`)."""
    if not isinstance(doc, dict):
        raise TypeError(f"a summary is a JSON object, not {type(doc).__name__}")
    return VariantsSummary.from_json(doc) if "variants" in doc else Summary.from_json(doc)


def _check_schema(doc: dict) -> None:
    version = doc.get("summary_schema_version")
    if version != SUMMARY_SCHEMA_VERSION:
        raise ValueError(f"summary_schema_version {str(version)[:20]!r}: this samplesize reads version "
                         f"{SUMMARY_SCHEMA_VERSION}; re-run `samplesize aggregate` to rewrite the summary")
