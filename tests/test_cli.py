from reports.cli import main


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope.py"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a file" in capsys.readouterr().out


def test_bad_assignment_is_a_clear_error(tmp_path, capsys):
    sub = tmp_path / "s.py"
    sub.write_text("x = 1\n")
    bad = tmp_path / "a.toml"
    bad.write_text("id = 3\n")
    assert main(["grade", str(sub), "--out", str(tmp_path / "o"), "--assignment", str(bad)]) == 2
    assert "is invalid" in capsys.readouterr().out


def test_cuda_without_gpu_is_a_clear_error(tmp_path, capsys):
    sub = tmp_path / "s.py"
    sub.write_text("x = 1\n")
    assert main(["grade", str(sub), "--out", str(tmp_path / "o"), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().out
