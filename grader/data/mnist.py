"""MNIST-format data sets read from the four standard IDX files; no download ever happens at grading time.

The data folder is searched for real MNIST first; where it has none, Fashion-MNIST (same format, installed by
Debian's `dataset-fashion-mnist` package) is the offline default. Every result names the set it used.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_DEFAULT = Path("/usr/share/datasets/fashion-mnist")
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
}


class MnistNotFound(FileNotFoundError):
    """No folder with the four IDX files was found."""


@dataclass(frozen=True)
class MnistData:
    """Standardized, flattened training and validation images (float32) with their labels (int64)."""

    name: str  # "mnist" or "fashion-mnist"
    source: str  # folder the files were read from
    x_train: torch.Tensor  # (n_train, 784)
    y_train: torch.Tensor  # (n_train,)
    x_val: torch.Tensor  # (n_val, 784)
    y_val: torch.Tensor  # (n_val,)


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into an array, checking its header against its size."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _idx_folder(folder: Path) -> dict[str, Path] | None:
    found = {key: _find(folder, stem) for key, stem in FILES.items()}
    return None if any(p is None for p in found.values()) else found  # type: ignore[return-value]


def locate(data_dir: Path | None) -> tuple[str, Path, dict[str, Path]]:
    """Pick the data set: `DATA_DIR/mnist` (or DATA_DIR itself), then `DATA_DIR/fashion-mnist`, then Debian's."""
    candidates: list[tuple[str, Path]] = []
    if data_dir is not None:
        candidates += [
            ("mnist", data_dir / "mnist"),
            ("mnist", data_dir),
            ("fashion-mnist", data_dir / "fashion-mnist"),
        ]
    candidates.append(("fashion-mnist", FASHION_MNIST_DEFAULT))
    for name, folder in candidates:
        files = _idx_folder(folder)
        if files is not None:
            return name, folder, files
    looked = ", ".join(str(f) for _, f in candidates)
    raise MnistNotFound(
        f"No MNIST-format IDX files found (looked in {looked}). Put the four files "
        f"({', '.join(v + '.gz' for v in FILES.values())}) in the data folder's 'mnist' subfolder, "
        "or install Fashion-MNIST with `apt-get install dataset-fashion-mnist`."
    )


def load_mnist(data_dir: Path | None, n_train: int, n_val: int) -> MnistData:
    """The first `n_train` training images for training and the next `n_val` for validation, standardized
    with the training subset's mean and std (the test files are never touched, as the lab asks)."""
    name, folder, files = locate(data_dir)
    images = read_idx(files["train_images"])
    labels = read_idx(files["train_labels"])
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
    if n_train + n_val > images.shape[0]:
        raise ValueError(f"{folder} has {images.shape[0]} training images; {n_train} + {n_val} were asked for")
    x = torch.from_numpy(images[: n_train + n_val].reshape(n_train + n_val, -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(labels[: n_train + n_val].astype(np.int64))
    mean, std = x[:n_train].mean(), x[:n_train].std()
    x = (x - mean) / std
    return MnistData(name, str(folder), x[:n_train], y[:n_train], x[n_train:], y[n_train:])
