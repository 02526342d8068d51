"""The sandboxed runs behind the checks: a small generic runner. Each check declares the runs it needs
(RunSpec); each runs once in its own child process, several at a time, and every check reads the validated raw
data of the runs it needs. Nothing here knows a particular check."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from grader.assignment import Assignment, LimitsConfig
from grader.built import Built
from grader.data import CircleData, MnistData
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


Made = tuple[dict, dict[str, torch.Tensor], list[str]]  # a run's params, inputs and the keys of its models


@dataclass(frozen=True)
class RunSpec:
    """A trusted task a check needs, started once per grading: `make(session)` gives its params, its inputs and
    the keys of the captured models it runs on, or None when there is nothing to run."""

    name: str  # the run's name: its reference CPU cost and limits are keyed by it
    task: str  # a task of grader.tasks.lab.TASKS
    make: Callable[[Session], Made | None]
    needs: tuple[str, ...] = ()  # contract names (functions) without which it is not started
    mnist: bool = False  # needs the MNIST data
    each: bool = False  # run on the models that were built even where others failed (Session.start)


@dataclass
class _Part:
    """A run ready to go to a child: its params and arrays, or the failure of a model it needs."""

    name: str
    task: str
    params: dict
    arrays: dict[str, np.ndarray]  # its inputs and its models' tensors (key/name)
    failed: SandboxFailure | None
    inputs: frozenset[str] = frozenset()  # which arrays are its inputs


def _failed_reply(failure: SandboxFailure | None) -> SandboxReply:
    return SandboxReply(ok=False, meta={}, tensors={}, failure=failure, log_tail="", wall_seconds=0.0)


def _part_reply(reply: SandboxReply, name: str) -> SandboxReply:
    """One part's reply out of a bundle's: its meta and its tensors, or its own failure, or the bundle's."""
    if not reply.ok:
        return reply
    part = reply.meta.get("parts", {}).get(name) if isinstance(reply.meta.get("parts"), dict) else None
    if not isinstance(part, dict):
        failure = SandboxFailure(kind="grader_error", message=f"The grader's {name} task sent no reply.")
        return dataclasses.replace(reply, ok=False, meta={}, tensors={}, failure=failure)
    if part.get("ok") is not True:
        kind = part.get("kind") if part.get("kind") in ("contract", "grader_error") else "grader_error"
        failure = SandboxFailure(kind=kind, message=str(part.get("message", ""))[:2000])
        return dataclasses.replace(reply, ok=False, meta={}, tensors={}, failure=failure)
    prefix = f"out-{name}/"
    tensors = {k.removeprefix(prefix): v for k, v in reply.tensors.items() if k.startswith(prefix)}
    meta = part.get("meta") if isinstance(part.get("meta"), dict) else {}
    return dataclasses.replace(reply, meta=meta, tensors=tensors)


def bundle_limits(config: LimitsConfig, names: list[str], threads: int) -> Limits:
    """The limits of a child that runs several small tasks one after the other: their budgets added up."""
    return Limits(
        wall_seconds=sum(config.wall_budget(n, threads) for n in names),
        cpu_seconds=sum(config.cpu_budget(n, threads) for n in names),
        idle_seconds=config.idle_seconds,
        memory_mb=config.memory_mb,
        processes=config.processes,
    )


def task_limits(config: LimitsConfig, task: str, threads: int) -> Limits:
    """The sandbox limits of one task (named as in Session.start, or "build"), its budgets from its reference cost."""
    return Limits(
        wall_seconds=config.wall_budget(task, threads),
        cpu_seconds=config.cpu_budget(task, threads),
        idle_seconds=config.idle_seconds,
        memory_mb=config.memory_mb,
        processes=config.processes,
    )


def build_plan(models: Iterable[list[dict]]) -> list[dict]:
    """Every model the checks need built, as requests for the sandbox's build task (key, factory, arguments,
    seed, input width), each key once in the order the checks ask for them. A SIGMAS model names its label; the
    sandbox fills in the student's value."""
    plan: dict[str, dict] = {}
    for requests in models:
        for request in requests:
            plan.setdefault(request["key"], request)
    return list(plan.values())


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
        self._futures: dict[str, Future[dict[str, Run]]] = {}  # run name -> its child's runs
        self._jobs: list[Run] = []  # each child that ran, as it ran (for the result's timings)
        self._memo: dict[str, object] = {}
        self._t0: float | None = None
        #: each queued child's progress label -> its share of the work (the reference's CPU seconds of its runs)
        self.weights: dict[str, float] = {}

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
        self._submit([self._prepare(name, task, params, inputs, keys, each)])

    def _prepare(
        self, name: str, task: str, params: dict, inputs: dict[str, torch.Tensor], keys: list[str], each: bool
    ) -> _Part:
        arrays = {k: v.detach().cpu().contiguous().numpy() for k, v in inputs.items()}
        keys = list(dict.fromkeys(keys))
        params = {**params, "device": self.device}
        if each:
            failed_keys = {k: f for k in keys if (f := self._failure_of(k)) is not None}
            if len(failed_keys) < len(keys):
                params["failed"] = {k: f.message for k, f in failed_keys.items()}
                keys = [k for k in keys if k not in failed_keys]
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
        return _Part(name, task, params, arrays, failed, frozenset(inputs))

    def _submit(self, parts: list[_Part]) -> None:
        """Queue one sandboxed child for `parts`: one task, or several small ones run one after the other in
        the same child (the `bundle` task: one torch import instead of one each). A part whose models failed to
        build gets its failure without running."""
        if self._t0 is None:
            self._t0 = time.monotonic()
        t0, config = self._t0, self.assignment.limits
        ready = [p for p in parts if p.failed is None]
        label = "+".join(p.name for p in ready)
        if ready:
            cost = config.reference_cpu_seconds
            self.weights[label] = max(0.1, sum(cost.get(p.name, 1.0) for p in ready))

        def job() -> dict[str, Run]:
            started = time.monotonic() - t0
            runs = {p.name: Run(p.name, p.task, p.params, _failed_reply(p.failed), started) for p in parts if p.failed}
            progress = lambda done, total: self.on_progress(label, done / total)  # noqa: E731
            if len(ready) == 1:
                p = ready[0]
                reply = run_task(
                    None, p.task, params=p.params, inputs=p.arrays, device=self.device, group=self.group,
                    limits=task_limits(config, p.name, self.threads), threads=self.threads,
                    hidden_paths=self.hidden_paths, progress=progress,
                )  # fmt: skip
                runs[p.name] = Run(p.name, p.task, p.params, reply, started)
                self._jobs.append(Run(p.name, p.task, p.params, reply, started))
            elif ready:
                arrays: dict[str, np.ndarray] = {}
                for p in ready:  # the models' tensors once (key/name), each part's own inputs as in-PART/name
                    arrays |= {k: a for k, a in p.arrays.items() if k not in p.inputs}
                    arrays |= {f"in-{p.name}/{k}": a for k, a in p.arrays.items() if k in p.inputs}
                params = {"parts": [{"name": p.name, "task": p.task, "params": p.params} for p in ready],
                          "device": self.device}  # fmt: skip
                reply = run_task(
                    None, "bundle", params=params, inputs=arrays, device=self.device, group=self.group,
                    limits=bundle_limits(config, [p.name for p in ready], self.threads), threads=self.threads,
                    hidden_paths=self.hidden_paths, progress=progress,
                )  # fmt: skip
                runs |= {p.name: Run(p.name, p.task, p.params, _part_reply(reply, p.name), started) for p in ready}
                self._jobs.append(Run(label, "bundle", params, reply, started))
            if ready:
                self.on_progress(label, 1.0)
            return runs

        future = self._pool.submit(job)
        for p in parts:
            self._futures[p.name] = future

    def _failure_of(self, key: str) -> SandboxFailure | None:
        if key in self.built.failures:
            return self.built.failures[key]
        if key not in self.built.graphs:
            return SandboxFailure(kind="contract", message=f"{self.built.shown(key)} was not built.")
        return None

    def start_all(self, runs: Iterable[RunSpec]) -> list[str]:
        """Queue every run whose contract names exist (each name once), the costliest first (by the reference
        solution's CPU time), so that the long ones do not start last; returns the names started. The runs that
        cost the reference less than `limits.bundle_below` CPU seconds share two children (one torch import each
        instead of one per run), split so that the two take about as long."""
        has = {n for n, kind in self.names.items() if kind == "function"}
        unique = {spec.name: spec for spec in runs}
        limits = self.assignment.limits
        cost = limits.reference_cpu_seconds
        small: list[list[_Part]] = [[], []]
        for spec in sorted(unique.values(), key=lambda r: -cost.get(r.name, 0.0)):
            if not set(spec.needs) <= has or (spec.mnist and self.mnist_data is None):
                continue
            made = spec.make(self)
            if made is None:
                continue
            part = self._prepare(spec.name, spec.task, *made, each=spec.each)
            if spec.name in cost and cost[spec.name] < limits.bundle_below:
                min(small, key=lambda b: sum(cost[p.name] for p in b)).append(part)  # the lighter child
            else:
                self._submit([part])
        for parts in small:
            if parts:
                self._submit(parts)
        return list(self._futures)

    def run(self, name: str) -> Run | None:
        """The finished run, or None when it was never started (its contract name is missing)."""
        future = self._futures.get(name)
        return future.result()[name] if future is not None else None

    def finished(self) -> list[Run]:
        """The sandboxed children that ended with a reply, in the order they started: a run of its own, or a
        bundle of small runs under their names joined by "+" (a job that raised is its check's error)."""
        return list(self._jobs)

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
