"""Each buggy submission loses points only in the check its bug breaks, with a message naming the fault.

Every test here grades a file (20 to 40 s each on 2 CPUs): slow tests, out of the fast lane."""

import pytest
from bugs import BUGS, REFERENCE
from conftest import MAX_POINTS, graded_fast, pdf_text

from reports.render import render_pdf

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", sorted(BUGS))
def test_bug_loses_exactly_its_check(name, reference_fast, tmp_path):
    bug = BUGS[name]
    result = graded_fast(bug.write(tmp_path / f"{name}.py"))
    broken = result.check(bug.check)
    assert broken.status == "failed"
    assert {i.id for i in broken.items if not i.passed and i.max_points > 0} == bug.failed_items
    assert bug.words in broken.message
    assert broken.hint
    lost = sum(i.max_points - i.points for i in broken.items if i.id in bug.failed_items)  # partial credit kept
    for other, items in bug.also.items():
        spoiled = result.check(other)
        assert {i.id for i in spoiled.items if not i.passed and i.max_points > 0} == items, spoiled.message
        lost += sum(i.max_points - i.points for i in spoiled.items if i.id in items)
    assert result.score == reference_fast.score - lost
    for check in result.checks:
        if check.id != bug.check and check.id not in bug.also:
            assert check.score == check.max_score, (check.id, check.message)
    text, _ = pdf_text(render_pdf(result, tmp_path / "report.pdf"))
    assert f"{result.score:g} / {MAX_POINTS:g} points" in text and "What to change" in text


def test_missing_function_fails_only_its_own_checks(tmp_path):
    source = REFERENCE.read_text()
    start, end = source.index("def deep_model("), source.index("def mnist_model(")
    path = tmp_path / "missing_deep_model.py"
    path.write_text(source[:start] + source[end:])
    result = graded_fast(path)
    deep = result.check("activation_stats")
    assert deep.score == 0 and deep.status == "failed" and "deep_model" in deep.message
    sanity = result.check("init_sanity")
    assert [i.id for i in sanity.items if not i.passed] == ["deep"]
    architecture = result.check("architecture")
    assert [i.id for i in architecture.items if not i.passed] == [
        "deep"
    ] and "deep_model is missing" in architecture.message
    for check in result.checks:
        if check.id not in ("activation_stats", "init_sanity", "architecture"):
            assert check.score == check.max_score, check.id


def test_missing_or_malformed_sigmas_fail_only_the_sweep(tmp_path):
    source = REFERENCE.read_text()
    assert 'SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}' in source
    path = tmp_path / "sigmas_as_list.py"
    path.write_text(source.replace('SIGMAS = {"small": 0.1, "good": 1.0, "big": 5.0}', "SIGMAS = [0.1, 1.0, 5.0]"))
    result = graded_fast(path)
    sweep = result.check("sigma_sweep")
    assert sweep.score == 0 and "SIGMAS must be a dict" in sweep.message
    assert sweep.metrics["grid"], "the sweep itself still runs and is reported"
    for check in result.checks:
        if check.id != "sigma_sweep":
            assert check.score == check.max_score, check.id


def test_one_init_that_raises_loses_only_that_init(tmp_path):
    source = REFERENCE.read_text()
    old = '        elif init == "xavier":\n            std = math.sqrt(2.0 / (fan_in + fan_out))\n'
    assert source.count(old) == 1
    path = tmp_path / "no_xavier.py"
    path.write_text(
        source.replace(old, '        elif init == "xavier":\n            raise NotImplementedError("later")\n')
    )
    result = graded_fast(path)
    lost = {c.id: {i.id for i in c.items if not i.passed and i.max_points > 0} for c in result.checks}
    assert lost == {
        "loss_at_init": set(), "sigma_sweep": set(), "activation_stats": {"xavier"}, "dropout": set(),
        "init_sanity": set(), "fold_batchnorm": set(), "architecture": {"deep"}, "training_diagnostics": set(),
        "tanh_init": set(),
    }  # fmt: skip
    assert "deep_model('xavier') could not be built" in result.check("activation_stats").message
    # init_sanity reports the deep nets without scoring them (the architecture check scores their inits)
    deep = next(i for i in result.check("init_sanity").items if i.id == "deep")
    assert deep.max_points == 0 and "NotImplementedError" in deep.detail
