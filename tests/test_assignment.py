import pytest

from grader.assignment import DEFAULT_ASSIGNMENT, AssignmentError, load_assignment


def test_default_lab_loads_with_points_for_every_scored_check():
    a = load_assignment()
    assert a.id == "init-reg"
    assert {k: a.max_points(k) for k in a.points} == {
        "loss_at_init": 10,
        "sigma_sweep": 15,
        "activation_stats": 20,
        "dropout": 25,
        "init_sanity": 10,
        "fold_batchnorm": 15,
        "architecture": 10,
    }


def test_fast_budgets_are_smaller():
    a = load_assignment()
    f = a.fast_budgets()
    assert len(f.circle.sigma_grid) < len(a.circle.sigma_grid) and f.mnist.epochs < a.mnist.epochs


def test_invalid_assignment_names_the_field(tmp_path):
    bad = tmp_path / "a.toml"
    bad.write_text(DEFAULT_ASSIGNMENT.read_text().replace("steps = 1000", 'steps = "many"'))
    with pytest.raises(AssignmentError, match=r"circle.steps"):
        load_assignment(bad)


def test_missing_and_malformed_assignment_files(tmp_path):
    with pytest.raises(AssignmentError, match="does not exist"):
        load_assignment(tmp_path / "nope.toml")
    (tmp_path / "x.toml").write_text("id = [")
    with pytest.raises(AssignmentError, match="not valid TOML"):
        load_assignment(tmp_path / "x.toml")
