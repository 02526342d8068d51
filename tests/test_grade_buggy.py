"""Each buggy submission loses points only in the check its bug breaks, with a message naming the fault."""

import pytest
from conftest import REFERENCE, SUBMISSIONS, graded_fast

# file -> (broken check, failed items, words the student must read)
BUGS = {
    "overconfident_output.py": ("loss_at_init", {"circle_recommended"}, "overconfident"),
    "sigma_small_stuck.py": ("sigma_sweep", {"small"}, "never left the chance level"),
    "he_variance_as_std.py": ("activation_stats", {"kaiming"}, "variance used as the std"),
    "lecun_instead_of_he.py": ("activation_stats", {"kaiming"}, "LeCun"),
    "he_fan_out.py": ("activation_stats", {"kaiming"}, "fan_out instead of fan_in"),
    "dropout_in_eval.py": ("dropout", {"eval_mode", "regularization"}, "eval mode"),
    "dropout_not_rescaled.py": ("dropout", {"input_rate", "hidden_rate"}, "1 - p"),
    "no_input_dropout.py": ("dropout", {"input_rate"}, "the lab asks for 20%"),
    "zero_init.py": ("init_sanity", {"circle"}, "received no gradient"),
    "fold_without_eps.py": ("fold_batchnorm", {"same_outputs"}, "differ from the original"),
    "fold_returns_model.py": ("fold_batchnorm", {"no_batchnorm", "same_outputs"}, "BatchNorm1d"),
}


@pytest.mark.parametrize("filename", sorted(BUGS))
def test_bug_loses_exactly_its_check(filename, reference_fast):
    check_id, failed_items, words = BUGS[filename]
    result = graded_fast(SUBMISSIONS / "buggy" / filename)
    broken = result.check(check_id)
    assert broken.status == "failed"
    assert {i.id for i in broken.items if not i.passed and i.max_points > 0} == failed_items
    assert words in broken.message
    assert broken.hint
    lost = sum(i.max_points for i in broken.items if i.id in failed_items)
    assert result.score == reference_fast.score - lost
    for check in result.checks:
        if check.id != check_id:
            assert check.score == check.max_score, (check.id, check.message)


def test_missing_function_fails_only_its_own_checks(reference_fast):
    result = graded_fast(SUBMISSIONS / "buggy" / "missing_deep_model.py")
    deep = result.check("activation_stats")
    assert deep.score == 0 and deep.status == "failed" and "deep_model" in deep.message
    sanity = result.check("init_sanity")
    assert [i.id for i in sanity.items if not i.passed] == ["deep"]
    for check in result.checks:
        if check.id not in ("activation_stats", "init_sanity"):
            assert check.score == check.max_score, check.id


def test_missing_or_malformed_sigmas_fail_only_the_sweep(tmp_path, reference_fast):
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
