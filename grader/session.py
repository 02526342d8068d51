"""The sandboxed runs behind the checks: each lab task runs once in its own child process, several at a time,
and every check reads the validated raw data of the runs it needs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grader.assignment import Assignment, LimitsConfig
from grader.batchnorm_teacher import inputs as teacher_inputs
from grader.batchnorm_teacher import teacher_model
from grader.built import Built
from grader.data import CircleData, MnistData, circle_sample
from grader.sandbox import Limits, SandboxFailure, SandboxReply, run_task
from grader.sandbox.cgroups import GradingCgroup


class BadReply(Exception):
    """The child's reply lacks a tensor or holds one of the wrong shape or with non-finite values."""


@dataclass
class Run:
    """A finished sandbox task: either its reply or the failure that a check reports instead."""

    name: str
    task: str
    params: dict  # what the trusted side asked for (never read back from the child)
    reply: SandboxReply
    started_s: float | None = None  # seconds after the session's first task was queued

    @property
    def failure(self) -> SandboxFailure | None:
        return self.reply.failure if not self.reply.ok else None

    def tensor(self, key: str, shape: tuple[int | None, ...] | None = None, finite: bool = True) -> torch.Tensor:
        """A validated float tensor from the reply: present, of the expected shape (None: any size)."""
        array = self.reply.tensors.get(key)
        if array is None:
            raise BadReply(f"the sandbox reply of '{self.name}' has no '{key}'")
        if shape is not None and (
            array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape, strict=True))
        ):
            raise BadReply(f"'{key}' of '{self.name}' has shape {array.shape}, expected {shape}")
        if array.dtype.kind not in "fiub":
            raise BadReply(f"'{key}' of '{self.name}' has dtype {array.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(array)).to(torch.float64)
        if finite and not torch.isfinite(t).all():
            raise BadReply(f"'{key}' of '{self.name}' contains NaN or infinite values")
        return t

    def has(self, key: str) -> bool:
        return key in self.reply.tensors

    def count(self, prefix: str, start: int = 0) -> int:
        """How many numbered tensors `prefix{start}`, `prefix{start + 1}`, ... the reply holds in a row."""
        n = 0
        while self.has(f"{prefix}{start + n}"):
            n += 1
        return n

    def meta_dict(self, key: str) -> dict:
        """A dict from the child's JSON meta, or {} when the child put anything else there."""
        value = self.reply.meta.get(key)
        return value if isinstance(value, dict) else {}


def task_limits(config: LimitsConfig, task: str, threads: int) -> Limits:
    """The sandbox limits of one task (named as in Session.start, or "build"), its budgets from its reference cost."""
    return Limits(
        wall_seconds=config.wall_budget(task, threads),
        cpu_seconds=config.cpu_budget(task, threads),
        idle_seconds=config.idle_seconds,
        memory_mb=config.memory_mb,
        processes=config.processes,
    )


INITS = ("normal", "xavier", "kaiming")


def build_plan(assignment: Assignment, mnist: bool) -> list[dict]:
    """Every model the checks need, as requests for the sandbox's build task: key, factory, arguments, seed,
    input width. The SIGMAS models name their label; the sandbox fills in the student's value."""
    c, seed = assignment.circle, assignment.seed
    plan = [
        {"key": f"circle.g{j}.s{s}", "factory": "circle_model", "args": [sigma], "seed": s, "input": 2}
        for j, sigma in enumerate(c.sigma_grid)
        for s in c.seeds
    ]
    for s in dict.fromkeys([*c.seeds, seed]):
        plan.append({"key": f"circle.none.s{s}", "factory": "circle_model", "args": [None], "seed": s, "input": 2})
    for s in c.seeds:
        plan.append({"key": f"circle.glorot.s{s}", "factory": "circle_model", "args": [1.0], "seed": s, "input": 2})
        for label in ("small", "good", "big"):
            plan.append({"key": f"circle.{label}.s{s}", "factory": "circle_model", "sigma_label": label, "seed": s,
                         "input": 2})  # fmt: skip
    plan.append({"key": f"circle.zero.s{seed}", "factory": "circle_model", "args": [0.0], "seed": seed, "input": 2})
    plan += [{"key": f"deep.{i}", "factory": "deep_model", "args": [i], "seed": seed, "input": 2} for i in INITS]
    if mnist:
        plan += [
            {"key": f"mnist.{'dropout' if d else 'plain'}", "factory": "mnist_model", "args": [d], "seed": seed,
             "input": 784}
            for d in (True, False)
        ]  # fmt: skip
    return plan


def mc_schedule(passes: int) -> list[int]:
    """Ensemble sizes K at which the MC-dropout curve is measured: every K up to 20, then 1-2-3-5-7 per decade,
    and `passes` itself (the task keeps a running sum of the passes' logits and reports the predictions there)."""
    steps = {k * 10**e for e in range(1, 7) for k in (1, 1.5, 2, 3, 5, 7)}
    return sorted({*range(1, min(passes, 20) + 1), *(int(k) for k in steps if k <= passes), passes})


def log_schedule(steps: int) -> list[int]:
    """Steps at which training logits are kept: every step for the first 20, then every 5th, and the last."""
    return sorted({*range(min(steps, 20) + 1), *range(0, steps + 1, 5), steps})


class Session:
    """Starts the lab's sandbox tasks for one submission and hands their runs to the checks."""

    def __init__(
        self,
        built: Built,
        assignment: Assignment,
        circle: CircleData,
        mnist: MnistData | None,
        *,
        names: dict[str, str],
        sigmas: dict[str, float] | None,
        device: str,
        workers: int,
        threads: int,
        hidden_paths: list[Path],
        on_progress: Callable[[str, float], None],
        group: GradingCgroup | None = None,
    ) -> None:
        self.built, self.assignment, self.circle_data, self.mnist_data = (
            built,
            assignment,
            circle,
            mnist,
        )
        self.names, self.sigmas, self.device, self.threads = names, sigmas, device, threads
        self.hidden_paths, self.on_progress, self.group = hidden_paths, on_progress, group
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox")
        self._futures: dict[str, Future[Run]] = {}
        self._memo: dict[str, object] = {}
        self._t0: float | None = None
        deep = assignment.deep
        x_deep, self.deep_y = circle_sample(deep.n_samples, deep.seed + 7)
        self.deep_x = circle.standardize(x_deep)  # (n_samples, 2), like the training inputs
        self.deep_cotangent = torch.randn(deep.n_samples, 2, generator=torch.Generator().manual_seed(deep.seed))
        self.circle_grid, self.grid_extent = circle.grid(assignment.circle.grid_resolution)
        self.teacher, self.teacher_spec = teacher_model(assignment.seed)  # the one the build task folded
        self.teacher_x = teacher_inputs(512, seed=1)

    # -- task parameters -------------------------------------------------------------------------------------
    def _circle_inputs(self) -> dict[str, torch.Tensor]:
        d = self.circle_data
        return {
            "x_train": d.x_train, "y_train": d.y_train, "x_val": d.x_val,
            "x_train_raw": d.x_train_raw, "x_val_raw": d.x_val_raw,
            "grid": d.standardize(self.circle_grid), "grid_raw": self.circle_grid,
        }  # fmt: skip

    def circle_params(self, runs: list[dict]) -> dict:
        c = self.assignment.circle
        return {
            "runs": runs, "steps": c.steps, "lr": c.lr, "log_steps": log_schedule(c.steps),
            "val_steps": sorted({*range(0, c.steps + 1, max(c.steps // 20, 1)), c.steps}),
        }  # fmt: skip

    def recommended_runs(self) -> list[dict]:
        """circle_model(None) over the seeds (scaled inputs), then on raw inputs: the student's own init."""
        seeds = self.assignment.circle.seeds
        return [
            *({"sigma": None, "glorot": False, "seed": s, "raw": False, "grid": s == seeds[0],
               "key": f"circle.none.s{s}"} for s in seeds),
            *({"sigma": None, "glorot": False, "seed": s, "raw": True, "grid": False, "key": f"circle.none.s{s}"}
              for s in seeds),
        ]  # fmt: skip

    def sweep_runs(self) -> list[dict]:
        """The sigma grid, the student's SIGMAS, Glorot, and the good sigma on raw inputs, over the seeds."""
        c = self.assignment.circle
        runs = [{"sigma": s, "label": None, "key": f"circle.g{j}"} for j, s in enumerate(c.sigma_grid)]
        if self.sigmas:
            runs += [{"sigma": v, "label": k, "key": f"circle.{k}"} for k, v in self.sigmas.items()]
        out = []
        for r in runs:
            for seed in c.seeds:
                grid = r["label"] is not None and seed == c.seeds[0]
                out.append(
                    {
                        "sigma": r["sigma"],
                        "glorot": False,
                        "seed": seed,
                        "raw": False,
                        "grid": grid,
                        "label": r["label"],
                        "key": f"{r['key']}.s{seed}",
                    }
                )
        for seed in c.seeds:
            out.append(
                {
                    "sigma": 1.0,
                    "glorot": True,
                    "seed": seed,
                    "raw": False,
                    "grid": seed == c.seeds[0],
                    "label": "glorot",
                    "key": f"circle.glorot.s{seed}",
                }
            )
        if self.sigmas and "good" in self.sigmas:  # the data-scaling sweep and too large a learning rate
            for seed in c.seeds[: c.probe_seeds]:
                good = {"sigma": self.sigmas["good"], "glorot": False, "seed": seed, "raw": False, "grid": False,
                        "key": f"circle.good.s{seed}"}  # fmt: skip
                out += [{**good, "label": "scale", "scale": scale} for scale in c.input_scales]
                out += [{**good, "label": "lr", "lr": lr} for lr in c.large_lrs]
            for seed in c.seeds:
                out.append(
                    {
                        "sigma": self.sigmas["good"],
                        "glorot": False,
                        "seed": seed,
                        "raw": True,
                        "grid": False,
                        "label": "good_raw",
                        "key": f"circle.good.s{seed}",
                    }
                )
        return out

    def curve_size(self, n: int) -> int:
        """Images of a set of n behind the per-epoch MNIST curves (the final numbers use the whole set)."""
        subset = self.assignment.mnist.curve_subset
        return n if subset is None else min(subset, n)

    def mnist_params(self, dropout: bool) -> tuple[dict, dict[str, torch.Tensor]]:
        m, d = self.assignment.mnist, self.mnist_data
        assert d is not None
        steps = m.epochs * math.ceil(len(d.y_train) / m.batch_size)
        params = {
            "dropout": dropout, "epochs": m.epochs, "batch_size": m.batch_size, "lr": m.lr,
            "seed": self.assignment.seed, "mc_ks": mc_schedule(m.mc_passes), "diag_size": 256,
            "curve_train": self.curve_size(len(d.y_train)), "curve_val": self.curve_size(len(d.y_val)),
            "ratio_every": max(1, steps // 500),  # the update:data ratio at 500 steps or so: the plot's resolution
        }  # fmt: skip
        inputs = {
            "x_train": d.x_train, "y_train": d.y_train, "x_val": d.x_val,
            "x_mc": d.x_val[: m.mc_subset], "x_probe": d.x_val[: m.probe_size],
        }  # fmt: skip
        return params, inputs

    # -- running ---------------------------------------------------------------------------------------------
    def start(
        self,
        name: str,
        task: str,
        params: dict,
        inputs: dict[str, torch.Tensor],
        keys: list[str],
        each: bool = False,
    ) -> None:
        """Queue one trusted task on the captured models `keys`; `on_progress(name, fraction)` follows it until it
        ends (fraction 1). A model whose build failed fails the run with that failure, without running it; with
        `each`, the task runs on the others and finds the failed ones in params["failed"] (key -> message)."""
        arrays = {k: v.detach().cpu().contiguous().numpy() for k, v in inputs.items()}
        keys = list(dict.fromkeys(keys))
        params = {**params, "device": self.device}
        if each:
            failed_keys = {k: f for k in keys if (f := self._failure_of(k)) is not None}
            if len(failed_keys) < len(keys):
                params["failed"] = {k: f.message for k, f in failed_keys.items()}
                keys = [k for k in keys if k not in failed_keys]
        if self._t0 is None:
            self._t0 = time.monotonic()
        t0 = self._t0
        failed = next((self.built.failures[k] for k in keys if k in self.built.failures), None)
        if failed is None:
            missing = [k for k in keys if k not in self.built.graphs]
            if missing:
                failed = SandboxFailure(kind="contract", message=f"{self.built.shown(missing[0])} was not built.")
        if failed is None:
            params["graphs"] = {k: self.built.graphs[k] for k in keys}
            params["shown"] = {k: self.built.shown(k) for k in keys}
            for k in keys:
                arrays |= {f"{k}/{n}": a for n, a in self.built.tensors[k].items()}

        def job() -> Run:
            started = time.monotonic() - t0
            if failed is not None:
                reply = SandboxReply(ok=False, meta={}, tensors={}, failure=failed, log_tail="", wall_seconds=0.0)
            else:
                reply = run_task(
                    None, task, params=params, inputs=arrays, device=self.device, group=self.group,
                    limits=task_limits(self.assignment.limits, name, self.threads),
                    threads=self.threads, hidden_paths=self.hidden_paths,
                    progress=lambda done, total: self.on_progress(name, done / total),
                )  # fmt: skip
            self.on_progress(name, 1.0)
            return Run(name, task, params, reply, started)

        self._futures[name] = self._pool.submit(job)

    def _failure_of(self, key: str) -> SandboxFailure | None:
        if key in self.built.failures:
            return self.built.failures[key]
        if key not in self.built.graphs:
            return SandboxFailure(kind="contract", message=f"{self.built.shown(key)} was not built.")
        return None

    def start_all(self) -> list[str]:
        """Queue every task whose contract names exist, longest first; returns the names started."""
        has = {n for n, kind in self.names.items() if kind == "function"}
        c, a = self.circle_data, self.assignment
        circle_inputs = self._circle_inputs()
        if "mnist_model" in has and self.mnist_data is not None:  # the two longest tasks, then the rest
            for dropout in (True, False):
                variant = "dropout" if dropout else "plain"
                self.start(f"mnist_{variant}", "mnist_train", *self.mnist_params(dropout), [f"mnist.{variant}"])
        if "circle_model" in has:
            runs = self.sweep_runs()
            self.start("sweep", "circle_runs", self.circle_params(runs), circle_inputs, [r["key"] for r in runs])
            runs = self.recommended_runs()
            self.start("recommended", "circle_runs", self.circle_params(runs), circle_inputs, [r["key"] for r in runs])
        if "deep_model" in has:
            self.start(
                "deep", "deep_stats", {"inits": list(INITS), "seed": a.seed},
                {"x": self.deep_x, "cotangent": self.deep_cotangent}, [f"deep.{i}" for i in INITS], each=True,
            )  # fmt: skip
        sanity_models = []
        if "circle_model" in has:
            sanity_models.append({"key": f"circle.none.s{a.seed}", "factory": "circle_model", "args": [None],
                                  "data": "circle", "n_classes": 2})  # fmt: skip
            # makemore E01: all weights and biases zero (N(0, 0)), trained for longer: only the output bias learns
            sanity_models.append({"key": f"circle.zero.s{a.seed}", "factory": "circle_model", "args": [0.0],
                                  "data": "circle", "n_classes": 2, "train_steps": a.sanity.zero_steps})  # fmt: skip
        if "deep_model" in has:
            sanity_models += [{"key": f"deep.{i}", "factory": "deep_model", "args": [i], "data": "circle",
                               "n_classes": 2} for i in INITS]  # fmt: skip
        if "mnist_model" in has and self.mnist_data is not None:
            sanity_models += [{"key": f"mnist.{v}", "factory": "mnist_model", "args": [v == "dropout"],
                               "data": "mnist", "n_classes": 10} for v in ("plain", "dropout")]  # fmt: skip
        if sanity_models:
            inputs = {"circle_x": c.x_train, "circle_y": c.y_train}
            if self.mnist_data is not None:
                inputs |= {"mnist_x": self.mnist_data.x_train[:500], "mnist_y": self.mnist_data.y_train[:500]}
            s = a.sanity
            self.start(
                "sanity", "init_sanity", {"models": sanity_models, "steps": s.steps, "lr": s.lr, "seed": a.seed},
                inputs, [m["key"] for m in sanity_models], each=True,
            )  # fmt: skip
        if "fold_batchnorm" in has:
            self.start("fold", "fold_batchnorm", {}, {"x": self.teacher_x}, ["fold"])
        return list(self._futures)

    def run(self, name: str) -> Run | None:
        """The finished run, or None when it was never started (its contract name is missing)."""
        future = self._futures.get(name)
        return future.result() if future is not None else None

    def finished(self) -> list[Run]:
        """The runs that ended with a reply, in the order they were started (a job that raised is its check's
        error, reported there)."""
        return [f.result() for f in self._futures.values() if f.done() and not f.cancelled() and not f.exception()]

    def memo(self, key: str, compute: Callable[[], object]) -> object:
        """Analyses shared by several checks (e.g. the circle runs) are computed once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def chance_loss(n_classes: int) -> float:
    """-log(1/n): the cross-entropy of a uniform prediction, the loss to expect at init."""
    return math.log(n_classes)
