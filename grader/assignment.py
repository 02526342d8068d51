"""An assignment: budgets, thresholds and points read from a TOML file (the default lab ships in the package)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

DEFAULT_ASSIGNMENT = Path(__file__).parent / "assignments" / "init-reg.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(_Strict):
    wall_seconds: float
    cpu_seconds: float
    memory_mb: int


class Regimes(_Strict):
    good_accuracy: float
    escape_fraction: float
    slow_start_steps: int
    overconfident_factor: float


class CircleConfig(_Strict):
    n_train: int
    n_val: int
    lr: float
    steps: int
    seeds: list[int]
    sigma_grid: list[float]
    grid_resolution: int
    regimes: Regimes


class DeepConfig(_Strict):
    n_samples: int
    seed: int
    layer_tolerance: float
    growth_tolerance: float


class MnistConfig(_Strict):
    data_dir: str
    n_train: int
    n_val: int
    lr: float
    batch_size: int
    epochs: int
    mc_passes: int
    mc_subset: int
    curve_subset: int | None = None  # images of each set for the per-epoch curves (None: all of them)
    probe_size: int
    input_rate: float
    hidden_rate: float
    rate_tolerance: float


class BatchNormConfig(_Strict):
    tolerance: float


class SanityConfig(_Strict):
    steps: int
    lr: float


class InitLossConfig(_Strict):
    tolerance: float


class FastConfig(_Strict):
    circle_seeds: list[int]
    sigma_grid: list[float]
    mnist_epochs: int
    mnist_n_train: int
    mnist_n_val: int
    mc_passes: int
    mc_subset: int
    curve_subset: int | None = None


class Assignment(_Strict):
    id: str
    title: str
    seed: int
    limits: LimitsConfig
    circle: CircleConfig
    deep: DeepConfig
    mnist: MnistConfig
    batchnorm: BatchNormConfig
    sanity: SanityConfig
    init_loss: InitLossConfig
    points: dict[str, dict[str, float]]
    fast: FastConfig

    def max_points(self, check_id: str) -> float:
        return float(sum(self.points.get(check_id, {}).values()))

    def fast_budgets(self) -> Assignment:
        """A copy with the [fast] budgets: for development, never for a real grade."""
        f = self.fast
        circle = self.circle.model_copy(update={"seeds": f.circle_seeds, "sigma_grid": f.sigma_grid})
        mnist = self.mnist.model_copy(
            update={
                "epochs": f.mnist_epochs,
                "n_train": f.mnist_n_train,
                "n_val": f.mnist_n_val,
                "mc_passes": f.mc_passes,
                "mc_subset": f.mc_subset,
                "curve_subset": f.curve_subset if f.curve_subset is not None else self.mnist.curve_subset,
            }
        )
        return self.model_copy(update={"circle": circle, "mnist": mnist})


class AssignmentError(ValueError):
    """The assignment file cannot be used; the message says which file and what is wrong."""


def load_assignment(path: Path | None = None) -> Assignment:
    """Read and validate an assignment file (the default lab when `path` is None)."""
    path = path or DEFAULT_ASSIGNMENT
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise AssignmentError(f"Assignment file {path} does not exist.") from e
    except tomllib.TOMLDecodeError as e:
        raise AssignmentError(f"Assignment file {path} is not valid TOML: {e}") from e
    try:
        return Assignment.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise AssignmentError(f"Assignment file {path} is invalid: {problems}") from e
