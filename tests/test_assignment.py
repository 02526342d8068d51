from pathlib import Path

import pytest

from grader.assignment import DEFAULT_ASSIGNMENT, AssignmentError, load_assignment


def test_default_lab_gives_its_three_parts_30_30_40_and_makemore_a_section_of_its_own():
    a = load_assignment()
    assert a.id == "init-reg"
    sections = {s.id: s.points for s in a.sections}
    assert [s.id for s in a.sections] == ["part1", "part2", "part3", "makemore"]
    lab = sections["part1"] + sections["part2"] + sections["part3"]
    assert (sections["part1"] / lab, sections["part2"] / lab, sections["part3"] / lab) == (0.3, 0.3, 0.4)
    # every scored item counts in exactly one section, and the sections add up to the whole
    assert sum(sections.values()) == sum(a.max_points(k) for k in a.points)
    assert a.section_of("architecture", "deep") == "part2" and a.section_of("sigma_sweep", "big") == "part1"
    assert a.section_of("loss_at_init", "output_small") == "makemore"


def _with_sections(tmp_path, edit) -> Path:
    path = tmp_path / "a.toml"
    path.write_text(edit(DEFAULT_ASSIGNMENT.read_text()))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("points = 30\nmembers = [\"loss", "points = 31\nmembers = [\"loss"),
         r"section 'part1' is worth 31 points but its members add up to 30"),
        (lambda t: t.replace('"sigma_sweep", "architecture.circle"', '"architecture.circle"').replace(
            "points = 30\nmembers = [\"loss", "points = 12\nmembers = [\"loss"),
         r"scored items in no section: sigma_sweep.small"),
        (lambda t: t.replace('"dropout", "architecture.mnist"', '"dropout", "architecture.mnist", "sigma_sweep"'),
         r"sigma_sweep.small is in two sections: 'part1' and 'part3'"),
        (lambda t: t.replace('"architecture.deep"]', '"architecture.depth"]'),
         r"'architecture.depth' is neither a check nor an item"),
    ],
    ids=["wrong_total", "item_in_no_section", "item_in_two_sections", "unknown_member"],
)  # fmt: skip
def test_sections_that_do_not_add_up_are_refused_with_the_reason(tmp_path, edit, message):
    path = _with_sections(tmp_path, edit)
    assert path.read_text() != DEFAULT_ASSIGNMENT.read_text(), "the edit did not apply"
    with pytest.raises(AssignmentError, match=message):
        load_assignment(path)


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
