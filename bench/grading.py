"""Benchmarks of a whole grade: its wall time and where it goes, MNIST against the CPU's own matrix-product
rate, and what each sandboxed child costs before it does any work."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from bench.common import REFERENCE, Row, reference_module
from grader.assignment import load_assignment
from grader.built import Built
from grader.checks import dropout
from grader.device import cpu_count
from grader.grading import grade, prepare
from grader.result import GradeResult
from grader.sandbox import Limits, detect_isolation, run_task
from grader.session import Session
from grader.tasks import lab
from grader.tasks.local import captured_models

GRADE_TIMELINE: list[dict] = []  # the last measured grade's tasks, for the plot
LAST_RESULT: list[GradeResult] = []  # the last measured grade, for the report benchmark


def bench_grade(quick: bool) -> Row:
    """The reference solution graded end to end (report excluded): sandbox tasks one at a time, each in a child
    of its own (the plain schedule) against ours (two at a time, longest first, the small ones sharing two
    children). Same score required."""
    a = load_assignment()
    plain = a.model_copy(update={"limits": a.limits.model_copy(update={"bundle_below": 0.0})})
    t0 = time.perf_counter()
    serial = grade(REFERENCE, plain, fast=quick, workers=1)
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = grade(REFERENCE, fast=quick)
    ours = time.perf_counter() - t0
    assert serial.score == result.score == result.max_score, (serial.score, result.score, result.max_score)
    GRADE_TIMELINE[:] = [r.model_dump() for r in result.runs]
    LAST_RESULT[:] = [result]
    busy = sum(r.seconds for r in result.runs)
    alone = {r.name: r.seconds for r in serial.runs}
    alone |= {r.name: sum(alone.get(n, 0.0) for n in r.name.split("+")) for r in result.runs if r.task == "bundle"}
    solo, paired = sum(alone.values()), busy
    details = [
        f"Wall time of the grade: {ours:.1f} s with {min(2, cpu_count())} sandbox tasks at once, {baseline:.1f} s "
        f"one at a time; the tasks' own wall times add up to {busy:.1f} s. The critical path is the longest task "
        "plus the build task (the student's file run once, every model captured); the table shows where each task ran.",
        "",
        "| sandbox task | started (s) | wall (s) | wall alone (s) |",
        "|---|---:|---:|---:|",
        *(
            f"| {r.name} ({r.task}) | {r.started_s or 0:.1f} | {r.seconds:.1f} | {alone.get(r.name, 0):.1f} |"
            for r in result.runs
        ),
        "",
        f"Run beside another task, each task takes {paired / solo:.2f}x its time alone (the sum of the walls, "
        f"{paired:.1f} s against {solo:.1f} s): two tasks at once delivered {2 * solo / paired:.2f}x the work of one "
        "in this run (2x: perfect sharing of the two CPUs; above 2x, the one-at-a-time run was slowed by something "
        "else on the machine).",
        "",
        "| check (trusted side; includes waiting for its tasks) | seconds |",
        "|---|---:|",
        *(f"| {c.title} | {c.seconds:.1f} |" for c in result.checks),
    ]
    what = f"reference solution{' (fast mode)' if quick else ''}, {result.score:g}/{result.max_score:g} both ways; "
    what += f"baseline runs the {len(serial.runs)} sandbox tasks one at a time, ours in {len(result.runs)} children"
    return Row("grade", baseline, ours, what, details=details)


def _gemm_rate(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """FLOP/s of one (m x k) @ (k x n) float32 product on this thread count, best of repeated runs."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    best, spent = float("inf"), 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        a @ b
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return 2 * m * k * n / best


def _macs(model: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


def _dropout_inputs(model: nn.Module) -> int:
    """Random numbers the model's dropout layers draw per image."""
    sizes: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, args, _out: sizes.append(args[0][0].numel()))
        for m in model.modules()
        if isinstance(m, nn.Dropout)
    ]
    model.train()
    with torch.no_grad():
        model(torch.zeros(1, 784))
    for h in hooks:
        h.remove()
    return sum(sizes)


def bench_mnist(quick: bool) -> Row:
    """Part 3's training, curves and MC-dropout ensemble of mnist_model(True), run as the sandbox runs it (one
    thread), against the time the same FLOPs take at this machine's own measured matrix-product rate."""
    a = load_assignment()
    if quick:
        a = a.fast_budgets()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        peak = max(_gemm_rate(100, 784, 800), _gemm_rate(2000, 784, 800), _gemm_rate(1024, 1024, 1024))
        setup = prepare(a, "cpu", None)
        session = Session(Built(), setup.assignment, setup.circle, setup.mnist, names={}, sigmas=None, device="cpu",
                          workers=1, threads=1, hidden_paths=[], on_progress=lambda *_: None)  # fmt: skip
        session.close()
        params, inputs = dropout.mnist_params(session, True)
        module = reference_module()
        macs, per_image = _macs(module.mnist_model(True)), _dropout_inputs(module.mnist_model(True))
        torch.manual_seed(a.seed)  # built as the sandbox's build task builds it, captured and rebuilt as in a grading
        models, model_params, model_inputs = captured_models({"mnist.dropout": (module.mnist_model(True), 784)})
        t0 = time.perf_counter()
        meta, _ = lab.mnist_train(models, {**params, **model_params}, {**inputs, **model_inputs})
        total = time.perf_counter() - t0
        bernoulli = _bernoulli_rate()
    finally:
        torch.set_num_threads(threads)
    m, n_train, n_val = a.mnist, len(inputs["x_train"]), len(inputs["x_val"])
    flops = {
        "train": 6 * macs * n_train * m.epochs,  # forward + the two backward products per layer
        "curves": 2 * macs * ((params["curve_train"] + params["curve_val"]) * m.epochs + n_train + n_val),
        "mc": 2 * macs * m.mc_passes * len(inputs["x_mc"]),
    }
    seconds = meta["seconds"]
    masks = {  # dropout's random numbers: one per input of each dropout layer, each training sample and MC pass
        "train": per_image * n_train * m.epochs,
        "mc": per_image * m.mc_passes * len(inputs["x_mc"]),
    }
    details = [
        f"Matrix products measured here on one thread (as each sandbox task runs): {peak / 1e9:.0f} GFLOP/s at best. "
        f"mnist_model(True) has {macs / 1e6:.2f} M multiply-adds per image. Dropout draws its masks at "
        f"{bernoulli / 1e6:.0f} M random numbers/s on this thread.",
        "",
        "| phase | GFLOP | seconds | GFLOP/s | of peak | dropout masks (est. s) |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {phase} | {flops[phase] / 1e9:.0f} | {seconds[phase]:.1f} | {flops[phase] / seconds[phase] / 1e9:.0f} "
            f"| {flops[phase] / seconds[phase] / peak:.0%} | {masks.get(phase, 0) / bernoulli:.1f} |"
            for phase in ("train", "curves", "mc")
        ),
        "",
        f"At peak the same FLOPs take {sum(flops.values()) / peak:.1f} s; with the dropout masks drawn at the "
        f"measured rate, {sum(flops.values()) / peak + sum(masks.values()) / bernoulli:.1f} s is the floor of "
        f"this task on one thread; it took {total:.1f} s (diagnostics and the dropout probe included).",
    ]
    phases = sum(seconds.values())
    what = (
        f"mnist_model(True): {sum(flops.values()) / 1e12:.2f} TFLOP in {phases:.1f} s = "
        f"{sum(flops.values()) / phases / 1e9:.0f} GFLOP/s; baseline = the same FLOPs at the measured peak "
        f"({peak / 1e9:.0f} GFLOP/s), so the ratio is the fraction of peak"
    )
    return Row("mnist", sum(flops.values()) / peak, phases, what, details=details)


def _bernoulli_rate() -> float:
    x = torch.empty(2000, 800)
    x.bernoulli_(0.5)
    t0 = time.perf_counter()
    for _ in range(10):
        x.bernoulli_(0.5)
    return 10 * x.numel() / (time.perf_counter() - t0)


def bench_sandbox(quick: bool) -> Row:
    """What a sandboxed child costs before any lab work: a plain `python -c "import torch"` (the floor of any
    child process) against the grader's 'load' task of the reference solution (bubblewrap, limits, torch, the
    submission imported, the reply validated)."""
    repeats = 3 if quick else 9
    a = load_assignment()
    limits = Limits(wall_seconds=60, cpu_seconds=120, memory_mb=a.limits.memory_mb)
    # The same interpreter, flags and thread count as a child; alternated with the sandboxed runs so that a
    # drift in the machine's load or page cache falls on both alike.
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    plain: list[float] = []
    boxed: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-s", "-P", "-B", "-c", "import torch"], check=True, env=env)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        reply = run_task(REFERENCE, "load", params={}, inputs={}, limits=limits, threads=1)
        boxed.append(time.perf_counter() - t0)
        assert reply.ok, reply.failure
    isolation = detect_isolation(limits).method
    base, ours = statistics.median(plain), statistics.median(boxed)
    details = [
        f"Medians of {repeats} runs each, alternated: the interpreter with a child's flags + torch import "
        f"{base:.2f} s (min {min(plain):.2f}), sandboxed load task {ours:.2f} s (min {min(boxed):.2f}) with "
        f"isolation '{isolation}'. A full grade starts "
        f"8 children (the build task and 7 trusted lab tasks), two at a time, so start-up costs about "
        f"{8 * ours / 2:.1f} s of its wall time.",
    ]
    what = f"child start to validated reply, median of {repeats}; isolation and reply add {ours - base:.2f} s a child"
    return Row("sandbox", base, ours, what, details=details)
