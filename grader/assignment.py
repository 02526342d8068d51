"""An assignment: budgets, thresholds and points read from a TOML file (the default lab ships in the package)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_ASSIGNMENT = Path(__file__).parent / "assignments" / "init-reg.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsConfig(_Strict):
    """Each sandboxed task's limits. CPU budgets are derived from what the reference solution costs: a task that
    takes the reference 3 s of CPU is not allowed 300 s."""

    memory_mb: int = Field(gt=0)  # all processes of one task and its in-memory folders together
    processes: int = Field(default=128, gt=0)  # processes and threads of one task at once
    idle_seconds: float = Field(default=20, gt=0)  # neither running nor waiting for a CPU, added up
    cpu_factor: float = Field(default=3, ge=1)  # CPU budget: cpu_factor x the task's reference cost ...
    min_cpu_seconds: float = Field(default=10, gt=0)  # ... and at least this (per CPU thread of the task)
    wall_factor: float = Field(default=10, ge=1)  # wall-clock backstop: this multiple of the time the CPU budget takes
    min_wall_seconds: float = Field(default=120, gt=0)
    #: All the tasks of one grading together: this multiple of the reference's total (none without references).
    grading_cpu_factor: float = Field(default=2, ge=1)
    #: CPU seconds each task of the reference solution took (one thread; `grader calibrate` measures them).
    reference_cpu_seconds: dict[str, float] = Field(default_factory=dict)
    #: tasks that cost the reference less than this share a child (one torch import, ~1.3 s, instead of one each);
    #: 0: every task in a child of its own (`grader calibrate` measures them so)
    bundle_below: float = Field(default=6.0, ge=0)

    def cpu_budget(self, task: str, threads: int = 1) -> float:
        """The task's CPU budget; a task without a reference cost gets the largest one."""
        reference = self.reference_cpu_seconds.get(task, max(self.reference_cpu_seconds.values(), default=0.0))
        return max(self.min_cpu_seconds, self.cpu_factor * reference) * max(1, threads)

    def grading_cpu_budget(self, threads: int = 1) -> float | None:
        """CPU seconds that all the tasks of one grading may use together, or None without reference costs."""
        total = sum(self.reference_cpu_seconds.values())
        return self.grading_cpu_factor * total * max(1, threads) if total > 0 else None

    def wall_budget(self, task: str, threads: int = 1) -> float:
        return max(self.min_wall_seconds, self.wall_factor * self.cpu_budget(task, threads) / max(1, threads))


class Regimes(_Strict):
    good_accuracy: float
    escape_fraction: float
    slow_start_steps: int
    overconfident_factor: float
    #: "big" still converges: its final validation accuracy is at least this (chance is 0.5) and its training
    #: loss fell below the loss at init; below it an overconfident start is "chaotic"
    big_min_accuracy: float = 0.6


class CircleConfig(_Strict):
    n_train: int
    n_val: int
    lr: float
    steps: int
    seeds: list[int]
    sigma_grid: list[float]
    grid_resolution: int
    regimes: Regimes
    #: reported (the lab's "similar effect when scaling the data", and "other simple ways of breaking the
    #: convergence"): SIGMAS['good'] trained on the standardized inputs times each scale, and with each larger
    #: learning rate, on the first `probe_seeds` seeds
    input_scales: list[float] = Field(default_factory=lambda: [0.01, 0.1, 10.0, 100.0])
    large_lrs: list[float] = Field(default_factory=lambda: [1.0, 10.0])
    probe_seeds: int = Field(default=3, gt=0)


class DeepConfig(_Strict):
    n_samples: int
    seed: int
    layer_tolerance: float
    growth_tolerance: float
    #: the share of an init's points earned when only its first and output layers are off (the middle right)
    edge_credit: float = Field(default=0.5, ge=0, le=1)


class MnistGpuConfig(_Strict):
    """Budgets that replace the CPU ones when the grading runs on a GPU (never in fast mode)."""

    mc_passes: int = Field(gt=0)
    mc_subset: int = Field(gt=0)


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
    gpu: MnistGpuConfig | None = None  # on a GPU: the MC ensemble over every validation image, K up to 1000

    def on_gpu(self) -> MnistConfig:
        """The budgets for a grading on a GPU."""
        if self.gpu is None:
            return self
        return self.model_copy(update={"mc_passes": self.gpu.mc_passes, "mc_subset": self.gpu.mc_subset})


class BatchNormConfig(_Strict):
    tolerance: float


class SanityConfig(_Strict):
    steps: int
    lr: float
    #: makemore E01: steps of full-batch SGD (at `lr`) for circle_model(0.0), whose weights and biases are all zero
    zero_steps: int = Field(default=300, gt=0)


class TanhConfig(_Strict):
    """makemore's tanh network (the tanh_init check): thresholds calibrated in docs/checks.md."""

    gain_tolerance: float = Field(default=0.1, gt=0)  # |std x sqrt(fan_in) / (5/3) - 1| of each hidden layer
    saturation_level: float = Field(default=0.97, gt=0, lt=1)  # |tanh| above this is saturated
    saturation_max: float = Field(default=0.25, gt=0, le=1)  # largest saturated share of hidden layers 2..
    std_min: float = Field(default=0.2, ge=0)  # smallest std of the last hidden layer's activations
    shift_max: float = Field(default=1e-3, gt=0)  # a shift of a unit's output moves the next input less: batch norm
    steps: int = Field(default=1000, ge=0)  # reported diagnostics: SGD steps on the training images
    batch_size: int = Field(default=32, gt=0)
    lr: float = Field(default=0.1, gt=0)
    probe_size: int = Field(default=512, gt=0)  # images behind the statistics at init and after training


class InitLossConfig(_Strict):
    tolerance: float
    #: the largest RMS of circle_model(None)'s logits at init (median over seeds): the output layer starts small
    logit_rms: float = 0.1


class FastConfig(_Strict):
    circle_seeds: list[int]
    sigma_grid: list[float]
    mnist_epochs: int
    mnist_n_train: int
    mnist_n_val: int
    mc_passes: int
    mc_subset: int
    curve_subset: int | None = None


class SectionConfig(_Strict):
    """A part of the lab in the grade: its checks, or single items of checks ("architecture.circle")."""

    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    title: str = Field(min_length=1, max_length=120)
    #: what the section is worth; the points of its members must add up to it (None: whatever they add up to)
    points: float | None = Field(default=None, ge=0)
    members: list[str] = Field(min_length=1)


class RubricLevel(_Strict):
    """One line of a written question's rubric: what an answer worth `points` shows."""

    points: float = Field(ge=0)
    text: str = Field(min_length=1, max_length=500)


class QuestionConfig(_Strict):
    """A written answer the lab asks for: students type it in the portal, instructors grade it by hand."""

    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    title: str = Field(min_length=1, max_length=120)
    prompt: str = Field(min_length=1, max_length=2000)
    points: float = Field(gt=0)
    #: the levels an instructor picks from (highest first); points in between stay allowed
    rubric: list[RubricLevel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _levels_within_points(self) -> QuestionConfig:
        for level in self.rubric:
            if level.points > self.points:
                raise ValueError(f"question {self.id!r}: a rubric level gives {level.points:g} points, more than "
                                 f"the question's {self.points:g}")  # fmt: skip
        return self


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
    tanh: TanhConfig = Field(default_factory=TanhConfig)
    points: dict[str, dict[str, float]]
    #: how the points divide into the lab's parts, in report order; empty: the report shows checks only
    sections: list[SectionConfig] = Field(default_factory=list)
    #: written answers graded by hand (the service's portal and dashboard); the grader scores none of them
    questions: list[QuestionConfig] = Field(default_factory=list)
    fast: FastConfig

    @model_validator(mode="after")
    def _sections_cover_the_points(self) -> Assignment:
        """Every scored item is in exactly one section, every member names a check or an item of [points], and
        a section's points equal the sum of its members'."""
        if not self.sections:
            return self
        owner: dict[tuple[str, str], str] = {}
        for section in self.sections:
            for member in section.members:
                check, _, item = member.partition(".")
                if check not in self.points or (item and item not in self.points[check]):
                    raise ValueError(f"section {section.id!r}: {member!r} is neither a check nor an item of [points]")
                for name in [item] if item else list(self.points[check]):
                    if (check, name) in owner:
                        raise ValueError(
                            f"{check}.{name} is in two sections: {owner[check, name]!r} and {section.id!r}"
                        )
                    owner[check, name] = section.id
            total = sum(self.points[c][i] for (c, i), s in owner.items() if s == section.id)
            if section.points is not None and abs(total - section.points) > 1e-9:
                raise ValueError(
                    f"section {section.id!r} is worth {section.points:g} points but its members add up to {total:g}"
                )
        scored = [(c, i) for c, items in self.points.items() for i, v in items.items() if v]
        orphans = [f"{c}.{i}" for c, i in scored if (c, i) not in owner]
        if orphans:
            raise ValueError(f"scored items in no section: {', '.join(orphans)}; add them to a [[sections]] entry")
        return self

    @model_validator(mode="after")
    def _question_ids_unique(self) -> Assignment:
        ids = [q.id for q in self.questions]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"questions: the id {twice[0]!r} is used twice; give each question its own id")
        return self

    @property
    def manual_points(self) -> float:
        """What the written answers are worth together."""
        return float(sum(q.points for q in self.questions))

    def max_points(self, check_id: str) -> float:
        return float(sum(self.points.get(check_id, {}).values()))

    def section_of(self, check_id: str, item_id: str) -> str | None:
        """The id of the section an item counts in (None without sections)."""
        for section in self.sections:
            if check_id in section.members or f"{check_id}.{item_id}" in section.members:
                return section.id
        return None

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
