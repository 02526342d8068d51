"""The reference solution gets full marks, in fast mode and with the real budgets, and the CLI writes both
result files."""

import json
import math

import pytest
from bugs import REFERENCE
from conftest import MAX_POINTS

from grader import SCHEMA_VERSION, GradeResult, grade, load_assignment
from reports.cli import main


def test_reference_full_marks_fast(reference_fast):
    r = reference_fast
    assert r.fast_mode and r.score == r.max_score == MAX_POINTS, [
        (c.id, c.message) for c in r.checks if c.score < c.max_score
    ]
    assert {c.id for c in r.checks} == {
        "loss_at_init",
        "sigma_sweep",
        "activation_stats",
        "dropout",
        "init_sanity",
        "fold_batchnorm",
        "tanh_init",
        "architecture",
        "training_diagnostics",
    }
    # each check says why it exists, and the measured checks give their expected-and-measured table
    assert all(c.about for c in r.checks)
    assert {c.id for c in r.checks if c.facts} >= {"loss_at_init", "sigma_sweep", "activation_stats", "dropout",
                                                    "init_sanity", "fold_batchnorm", "tanh_init"}  # fmt: skip
    assert r.isolation.method == "bubblewrap" and r.isolation.network_isolated
    # each sandboxed child: the build, the two MNIST trainings, and the small tasks two bundles share
    names = {"build", "sweep", "recommended", "deep", "mnist_dropout", "mnist_plain", "sanity", "fold", "tanh"}
    assert {part for run in r.runs for part in run.name.split("+")} == names
    assert {run.task for run in r.runs if "+" in run.name} == {"bundle"} and len(r.runs) == 5
    assert all(run.ok and run.seconds > 0 for run in r.runs)
    if r.isolation.cgroup:  # the kernel counted each child's CPU time, and every child stayed within its budget
        limits = load_assignment().limits
        budget = {run.name: sum(limits.cpu_budget(part) for part in run.name.split("+")) for run in r.runs}
        assert all(0 < run.cpu_seconds < budget[run.name] for run in r.runs), r.runs
    assert [d.name for d in r.datasets] == ["circle", "fashion-mnist"]


def test_reference_metrics_are_the_lab_facts(reference_fast):
    init = reference_fast.check("loss_at_init").metrics
    assert math.isclose(init["expected"], math.log(2))
    assert abs(init["circle_recommended"]["median"] - math.log(2)) < 0.05
    assert init["mnist_plain"]["expected"] == math.log(10)
    deep = reference_fast.check("activation_stats").metrics
    growth = {k: deep[k]["rms"][10] / deep[k]["rms"][9] for k in ("normal", "xavier", "kaiming")}
    assert 4 < growth["normal"] < 12 and 0.4 < growth["xavier"] < 1.0 and 0.6 < growth["kaiming"] < 1.6
    drop = reference_fast.check("dropout").metrics
    assert [round(r["rate"], 1) for r in drop["measured_rates"]] == [0.2, 0.5, 0.5]
    assert drop["with_dropout"]["gap"] < drop["without_dropout"]["gap"]
    assert drop["mc"]["k"] == list(range(1, 21)) and len(drop["mc"]["error"]) == 20
    fold = reference_fast.check("fold_batchnorm").metrics
    assert fold["max_relative_error"] < 1e-6


@pytest.mark.slow  # a grading of its own (10-15 s)
def test_cli_writes_result_and_gradescope_files(tmp_path, capsys):
    assert main(["grade", str(REFERENCE), "--out", str(tmp_path), "--fast", "--quiet"]) == 0
    result = GradeResult.model_validate_json((tmp_path / "result.json").read_text())
    assert result.schema_version == SCHEMA_VERSION and result.score == result.max_score
    gradescope = json.loads((tmp_path / "results.json").read_text())
    assert gradescope["score"] == result.score
    assert {t["name"] for t in gradescope["tests"]} == {c.title for c in result.checks}
    assert all({"name", "score", "max_score", "status", "output"} <= set(t) for t in gradescope["tests"])
    assert "FAST MODE" in gradescope["output"]
    out = capsys.readouterr().out
    assert f"{MAX_POINTS:g} / {MAX_POINTS:g}" in out and "FAST MODE" in out
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF-")


@pytest.mark.slow  # the real budgets
def test_reference_full_marks_with_real_budgets(tmp_path):
    """The real grade (minutes): every regime of the sweep, 20 MNIST epochs, 100 MC passes."""
    assert main(["grade", str(REFERENCE), "--out", str(tmp_path), "--quiet"]) == 0
    result = GradeResult.model_validate_json((tmp_path / "result.json").read_text())
    assert not result.fast_mode
    assert result.score == result.max_score == MAX_POINTS, [
        (c.id, c.message) for c in result.checks if c.score < c.max_score
    ]
    grid = result.check("sigma_sweep").metrics["grid"]
    regimes = [g["regime"] for g in grid]
    assert regimes[0] == "stuck" and "small" in regimes and "good" in regimes and "big" in regimes
    mc = result.check("dropout").metrics["mc"]
    assert mc["k"][:20] == list(range(1, 21)) and mc["k"][-1] == 100 and len(mc["error"]) == len(mc["k"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_reference_full_marks_on_other_seeds(seed):
    """The grade does not hang on the luck of one seed: other data, inits, masks and batches (seed 0 is above)."""
    a = load_assignment().model_copy(update={"seed": seed})
    r = grade(REFERENCE, a, fast=True)
    assert r.seed == seed and r.score == r.max_score == MAX_POINTS, [
        (c.id, c.message) for c in r.checks if c.score < c.max_score
    ]
