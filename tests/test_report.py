"""The report files: present, self-contained, escaped, and honest about partial sweeps."""

from __future__ import annotations

import json

import pytest

from fake_sweep import BOOT, CLASSES, TWO_VARIANTS, fake_result, make_cfg, write_sweep
from samplesize.aggregate import aggregate
from samplesize.report.html import render_html
from samplesize.report.markdown import render_markdown
from samplesize.report.words import headline, listed_warnings
from samplesize.report.write import FILES
from samplesize.results import write_result
from samplesize.storage import LocalStorage

SCRIPT = "<script>alert(1)</script>"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete sweep aggregated once, in a folder whose name has spaces, unicode and '<'."""
    root = tmp_path_factory.mktemp("reports") / "my sweep ü 結果 <b>"
    cfg = make_cfg(targets=[0.85, 0.999])
    summary = aggregate(cfg, write_sweep(cfg, root), job_state="complete", n_bootstrap=BOOT)
    return root, summary


def read(root, name: str) -> str:
    return (root / "report" / name).read_text(encoding="utf-8")


def test_report_writes_four_files_under_report_and_their_manifest(finished):
    root, _ = finished
    assert sorted(p.name for p in (root / "report").iterdir()) == sorted([*FILES, "manifest.json"])
    assert (root / "report" / "learning_curve.png").read_bytes().startswith(PNG_MAGIC)


def test_output_path_with_spaces_and_unicode_works_and_is_escaped_in_html(finished):
    root, summary = finished
    assert summary["run"]["output"] == str(root)
    page = read(root, "report.html")
    assert "my sweep ü 結果 &lt;b&gt;" in page
    assert "結果 <b>" not in page


def test_html_escapes_class_names_from_results(finished):
    root, _ = finished
    page = read(root, "report.html")
    assert SCRIPT in CLASSES
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_is_self_contained_with_both_plots_embedded(finished):
    root, _ = finished
    page = read(root, "report.html")
    assert page.count('src="data:image/png;base64,') == 2  # learning curve and per-class recall
    assert "http://" not in page and "https://" not in page


def test_html_holds_every_section_the_user_needs(finished):
    root, summary = finished
    page = read(root, "report.html")
    for heading in ("Answer", "Predictions", "Curve families", "Measured scores per size", "Backtest",
                    "Per-class recall", "Confusion matrix at the largest size", "Trials and warnings", "Run facts"):
        assert f"<h2>{heading}</h2>" in page
    for f in summary["curve"]["families"]:
        assert f"<td class=\"l\">{f['name']}</td>" in page
    assert "4x pool" in page and "2x pool" in page
    assert "PARTIAL" not in page


def test_markdown_gives_the_answer_in_plain_text(finished):
    root, summary = finished
    text = read(root, "report.md")
    assert text.startswith("# samplesize report: demo\n")
    assert "## Answer" in text and "PARTIAL" not in text
    for t in summary["targets"]:
        assert headline(summary, t) in text
    assert "<" not in text.replace(SCRIPT, "")  # no markup beyond what the data holds


def test_summary_json_matches_the_returned_summary(finished):
    root, summary = finished
    assert json.loads(read(root, "summary.json")) == summary


def test_partial_sweep_is_labelled_partial_in_html_markdown_and_json(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=range(2, cfg.trial_count))

    aggregate(cfg, storage, failed_indexes=[1], job_state="failed", n_bootstrap=BOOT)

    page = read(tmp_path, "report.html")
    assert '<div class="banner partial">PARTIAL SWEEP: 6 of 8 trials are usable' in page
    assert "(PARTIAL)</title>" in page
    text = read(tmp_path, "report.md")
    assert text.splitlines()[0].endswith("(PARTIAL SWEEP)")
    assert "> **PARTIAL SWEEP: 6 of 8 trials are usable" in text
    summary = json.loads(read(tmp_path, "summary.json"))
    assert summary["complete"] is False and summary["status"] == "partial"


def test_no_curve_report_shows_the_warning_prominently(tmp_path):
    cfg = make_cfg()
    storage = write_sweep(cfg, tmp_path, indexes=[0, 1])  # both are repetitions of the backtest split

    summary = aggregate(cfg, storage, n_bootstrap=BOOT)

    assert summary["curve"] is None
    assert '<div class="banner nocurve">NO CURVE: no split outside backtest_splits' in read(tmp_path, "report.html")
    assert "> **NO CURVE:" in read(tmp_path, "report.md")


def test_class_names_with_dollar_signs_do_not_break_the_plots(tmp_path):
    cfg = make_cfg()
    classes = ["$x$", "a$b", "50% off_{1}"]
    storage = LocalStorage(tmp_path)
    for i in range(cfg.trial_count):
        write_result(storage, fake_result(cfg, i, classes=classes))

    aggregate(cfg, storage, n_bootstrap=BOOT)

    assert "$x$" in read(tmp_path, "report.html")


# ---------------------------------------------------------------- wording, from hand-made summaries


def summary_with(target: dict, curve=True) -> dict:
    return {"metric": "balanced_accuracy", "curve": {"family": "blend"} if curve else None, "targets": [target]}


def test_unreachable_target_is_called_unreachable():
    target = {"target": 0.95, "reachable": False, "sample_size": None, "interval": [5000.0, "inf"],
              "times_past_data": None, "far": False, "ceiling": 0.912, "reached_in_data": False}

    text = headline(summary_with(target), target)

    assert text.startswith("95% balanced accuracy is unreachable with this model and pipeline")
    assert "ceiling is 0.912" in text and "optimistic end of the 80% interval reaches it, at about 5,000" in text


def test_far_target_is_flagged_as_a_far_extrapolation():
    target = {"target": 0.9, "reachable": True, "sample_size": 12001.0, "interval": [8000.0, "inf"],
              "times_past_data": 6.0, "far": True, "ceiling": 0.97, "reached_in_data": False}

    text = headline(summary_with(target), target)

    assert "about 12,001 labelled images (80% interval 8,000 to unbounded), 6.0x" in text
    assert "far extrapolation" in text


def test_render_functions_escape_every_string_from_the_summary(finished):
    _, summary = finished
    evil = json.loads(json.dumps(summary))
    evil["run"].update(sweep=SCRIPT, dataset=f"folder:/data/{SCRIPT}", weights=SCRIPT, model=SCRIPT)
    evil["warnings"] = [f"file {SCRIPT} rejected"]
    evil["trials"]["job_state"] = SCRIPT

    page = render_html(evil, b"png", None)

    assert "<script" not in page
    assert render_markdown(evil)  # Markdown is plain text: nothing to escape, but it must render


def test_headline_gives_the_size_interval_and_the_chance_that_the_target_is_reachable():
    target = {"target": 0.95, "reachable": True, "sample_size": 12000.0, "interval": [6500.0, "inf"],
              "times_past_data": 6.0, "far": True, "ceiling": 0.97, "reached_in_data": False,
              "p_reachable": 0.7, "reach_horizon": 50000.0}

    text = headline(summary_with(target), target)

    assert text.startswith("95% balanced accuracy: about 12,000 labelled images (80% interval 6,500 to more "
                           "than 50,000; 70% chance that it is reachable with this pipeline), 6.0x")


def test_unreachable_is_said_only_with_its_probability():
    target = {"target": 0.95, "reachable": False, "sample_size": None, "interval": [5000.0, "inf"],
              "times_past_data": None, "far": False, "ceiling": 0.942, "reached_in_data": False,
              "p_reachable": 0.004, "reach_horizon": 64000.0}

    text = headline(summary_with(target), target)

    assert text.startswith("95% balanced accuracy: probably unreachable with this pipeline (less than 1% chance "
                           "that it is reachable within 64,000 images); the fitted ceiling is 0.942.")
    assert "optimistic end of the 80% interval reaches it, at about 5,000" in text


def test_a_target_above_the_point_ceiling_but_likely_reachable_is_never_called_unreachable():
    target = {"target": 0.98, "reachable": False, "sample_size": None, "interval": [1614.0, "inf"],
              "times_past_data": None, "far": False, "ceiling": 0.978, "reached_in_data": False,
              "p_reachable": 0.86, "reach_horizon": 92032.0}

    text = headline(summary_with(target), target)

    assert "unreachable" not in text
    assert text.startswith("98% balanced accuracy: above the fitted ceiling, yet more likely reachable than not "
                           "(86% chance that it is reachable within 92,032 images)")


def test_report_reads_the_interval_level_and_far_factor_from_the_summary():
    target = {"target": 0.9, "reachable": True, "sample_size": 12001.0, "interval": [8000.0, 20000.0],
              "times_past_data": 6.0, "far": True, "ceiling": 0.97, "reached_in_data": False}
    summary = {"metric": "accuracy", "level": 0.9, "curve": {"family": "blend", "far_factor": 5.0},
               "targets": [target]}

    text = headline(summary, target)

    assert "(90% interval 8,000 to 20,000)" in text and "more than 5x past the data" in text


def test_banners_are_not_listed_again_among_the_warnings(finished):
    _, summary = finished
    banner = "PARTIAL SWEEP: any text at all"
    partial = {**summary, "warnings": [banner, "another warning"], "run": {**summary["run"], "partial_warning": banner}}

    assert listed_warnings(partial) == ["another warning"]


def test_per_class_table_predicts_at_the_largest_multiple_of_the_pool(finished):
    root, summary = finished
    largest = max((p for p in summary["predictions"] if p["pool_multiple"]), key=lambda p: p["pool_multiple"])
    assert f"Predicted at {largest['label']} ({int(largest['sample_size']):,}" in read(root, "report.html")


@pytest.mark.parametrize("overrides", [{}, {"variants": TWO_VARIANTS}], ids=["plain", "variants"])
def test_report_command_renders_the_same_four_files_from_summary_json_alone(overrides, tmp_path, monkeypatch):
    from samplesize.cli import main
    from samplesize.report import REPORT_FILES

    cfg = make_cfg(**overrides)
    aggregate(cfg, write_sweep(cfg, tmp_path / "sweep"), n_bootstrap=BOOT)
    copied = tmp_path / "elsewhere" / "summary.json"
    copied.parent.mkdir()
    copied.write_bytes((tmp_path / "sweep" / "report" / "summary.json").read_bytes())
    # Nothing may refit a curve or read a trial: the summary alone renders the report.
    for name in ("samplesize.curves.fit.fit_learning_curve", "samplesize.summarize.fit_learning_curve",
                 "samplesize.class_curves.fit_learning_curve", "samplesize.results.load_results",
                 "samplesize.aggregate.load_results"):
        monkeypatch.setattr(name, None)
    assert main(["report", "--summary", str(copied), "--output", str(tmp_path / "fresh")]) == 0
    for key in REPORT_FILES:
        assert (tmp_path / "fresh" / key).read_bytes() == (tmp_path / "sweep" / key).read_bytes(), key
    # By default the report is rendered again in place, next to the summary it reads.
    assert main(["report", "--summary", str(tmp_path / "sweep" / "report" / "summary.json")]) == 0
    for key in REPORT_FILES:
        assert (tmp_path / "sweep" / key).read_bytes() == (tmp_path / "fresh" / key).read_bytes(), key


def test_report_command_refuses_a_file_that_is_not_a_summary(tmp_path, capsys):
    from samplesize.cli import main

    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "summary.json").write_text('{"summary_schema_version": 99}')
    assert main(["report", "--summary", str(tmp_path / "report" / "summary.json")]) == 65
    assert "not a summary this samplesize can render" in capsys.readouterr().err
    assert main(["report", "--summary", str(tmp_path / "nowhere" / "summary.json"), "--output", str(tmp_path)]) == 64
