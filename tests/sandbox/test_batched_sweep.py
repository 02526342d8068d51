"""Part 1's runs trained as one batched computation give the very losses of the lab's one-model-at-a-time
loop, and a model that cannot be batched falls back to the loop with the reason."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from grader.data import CircleData
from grader.session import log_schedule
from grader.tasks import lab
from grader.tasks.local import captured_models

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference_solution.py"


def reference() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("reference_solution", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sweep(module: types.ModuleType, batched: bool, steps: int = 150) -> tuple[dict, dict, CircleData]:
    data = CircleData.make(100, 500, 0)
    grid, _ = data.grid(8)
    inputs = {"x_train": data.x_train, "y_train": data.y_train, "x_val": data.x_val, "x_train_raw": data.x_train_raw,
              "x_val_raw": data.x_val_raw, "grid": data.standardize(grid), "grid_raw": grid}  # fmt: skip
    runs = [{"sigma": s, "glorot": False, "seed": seed, "raw": False, "grid": seed == 0}
            for s in (0.01, 1.0, 10.0) for seed in (0, 1)]  # fmt: skip
    runs += [{"sigma": 1.0, "glorot": True, "seed": 0, "raw": False, "grid": True},
             {"sigma": 1.0, "glorot": False, "seed": 0, "raw": True, "grid": True},
             # the data-scaling sweep and a larger learning rate: a scale and an lr of their own per run
             {"sigma": 1.0, "glorot": False, "seed": 1, "raw": False, "grid": True, "scale": 0.1},
             {"sigma": 1.0, "glorot": False, "seed": 1, "raw": False, "grid": False, "lr": 1.0}]  # fmt: skip
    built = {}
    for run in runs:  # each model built as the sandbox's build task builds it: seeded, then captured
        run["key"] = f"circle.{run['sigma']}.s{run['seed']}"
        torch.manual_seed(run["seed"])
        built[run["key"]] = (module.circle_model(run["sigma"]), 2)
    models, model_params, model_inputs = captured_models(built)
    params = {"runs": runs, "steps": steps, "lr": 0.1, "log_steps": log_schedule(steps),
              "val_steps": list(range(0, steps + 1, 50)), "batched": batched, **model_params}  # fmt: skip
    meta, out = lab.circle_runs(models, params, {**inputs, **model_inputs})
    return meta, out, data


@pytest.fixture(autouse=True)
def _job_folder(tmp_path, monkeypatch):
    """Lab tasks write their progress file into the working folder, as they do in a sandbox job folder."""
    monkeypatch.chdir(tmp_path)


def test_batched_runs_give_the_loops_losses():
    module = reference()
    meta_b, batched, data = sweep(module, True)
    meta_l, loop, _ = sweep(module, False)
    assert meta_b == {"batched": True} and meta_l["batched"] is False
    assert batched.keys() == loop.keys()
    for key in batched:
        assert batched[key].shape == loop[key].shape, key
        # the same float32 arithmetic in another order (batched products): rounding differs, nothing else
        scale = float(loop[key].abs().nan_to_num().max().clamp(min=1))
        torch.testing.assert_close(batched[key], loop[key], rtol=1e-4, atol=1e-5 * scale, equal_nan=True, msg=key)
    for i in range(10):  # the losses, as the checks compute them, to float32 tolerance
        for part, y in (("train", data.y_train), ("val", data.y_val)):
            ours = torch.stack([F.cross_entropy(z, y) for z in batched[f"run{i}.{part}"]])
            lab = torch.stack([F.cross_entropy(z, y) for z in loop[f"run{i}.{part}"]])
            torch.testing.assert_close(ours, lab, rtol=1e-4, atol=1e-7, msg=f"run{i}.{part} losses")
    final = [F.cross_entropy(batched[f"run{i}.train"][-1], data.y_train).item() for i in range(10)]
    assert min(final) < 0.3  # well below ln 2: the comparison is not between two untrained runs
    # the scale and the learning rate act: the same model (sigma 1, seed 1) trains differently with each
    plain = batched["run3.train"]
    for i in (8, 9):
        assert not torch.allclose(batched[f"run{i}.train"][1:], plain[1:]), f"run{i} trained like the plain run"
    torch.testing.assert_close(batched["run8.train"][0], loop["run8.train"][0])


def test_a_model_with_dropout_falls_back_to_the_loop_with_the_reason():
    module = types.ModuleType("student")

    def circle_model(sigma):
        return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))

    module.circle_model = circle_model
    meta, out, _ = sweep(module, True, steps=5)
    assert meta == {"batched": False, "reason": "the model uses dropout or other random operations"}
    assert out["run0.train"].shape == (6, 100, 2)
