import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.data import CircleData, MnistNotFound, circle_sample, load_mnist
from grader.data.circle import CENTER
from grader.data.mnist import FILES, read_idx


def test_circle_classes_lie_on_disc_and_ring():
    x, y = circle_sample(5000, seed=3)
    r = (x - torch.tensor(CENTER)).norm(dim=1)
    assert r[y == 0].min() >= 0 and r[y == 0].max() <= 2.0 + 1e-4
    assert r[y == 1].min() >= 3.0 - 1e-4 and r[y == 1].max() <= 5.0 + 1e-4
    assert 0.45 < y.float().mean() < 0.55


def test_circle_is_deterministic_and_standardized_with_training_stats():
    a, b = CircleData.make(100, 500, seed=7), CircleData.make(100, 500, seed=7)
    assert torch.equal(a.x_train_raw, b.x_train_raw) and torch.equal(a.y_val, b.y_val)
    assert torch.allclose(a.x_train.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(a.x_train.std(0), torch.ones(2), atol=1e-5)
    assert not torch.equal(a.x_train_raw, CircleData.make(100, 500, seed=8).x_train_raw)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def fake_mnist(folder: Path, n: int = 60) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for key, stem in FILES.items():
        shape = (n, 28, 28) if "images" in key else (n,)
        write_idx(folder / f"{stem}.gz", rng.integers(0, 255 if "images" in key else 10, shape))


def test_idx_roundtrip_and_errors(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_real_mnist_in_data_dir_wins_over_fashion(tmp_path):
    fake_mnist(tmp_path / "mnist")
    d = load_mnist(tmp_path, n_train=40, n_val=20)
    assert d.name == "mnist" and d.source == str(tmp_path / "mnist")
    assert d.x_train.shape == (40, 784) and d.x_val.shape == (20, 784)
    assert math.isclose(float(d.x_train.mean()), 0.0, abs_tol=1e-4)


def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("grader.data.mnist.FASHION_MNIST_DEFAULT", tmp_path / "nothing")
    with pytest.raises(MnistNotFound, match="dataset-fashion-mnist") as e:
        load_mnist(tmp_path, 10, 10)
    assert str(tmp_path / "mnist") in str(e.value)


def test_too_few_images_is_a_clear_error(tmp_path):
    fake_mnist(tmp_path / "mnist", n=30)
    with pytest.raises(ValueError, match="30 training images"):
        load_mnist(tmp_path, 25, 10)


def test_fashion_mnist_default_is_used_offline():
    d = load_mnist(None, 100, 50)
    assert d.name == "fashion-mnist" and d.y_train.max() <= 9
