"""docker-compose.yml and the Dockerfile agree with each other, with the `labgrader` command and its settings, and
with .ci/run; docker-compose itself validates the compose file (no Docker daemon needed)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from fnmatch import fnmatch
from functools import cache
from pathlib import Path

import pytest
import yaml

from service.cli import parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
INFRASTRUCTURE = {"redis", "postgres"}  # every other service runs a `labgrader` command
SETTINGS_VARIABLES = {f"LABGRADER_{name.upper()}" for name in Settings.model_fields}
#: What CI installs to run these tests, which the image has no use for.
CI_ONLY_PACKAGES = {"docker-compose", "docker.io"}
DURATION_UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}


# --- docker-compose itself ----------------------------------------------------------------------------------------


@cache
def compose_command() -> tuple[str, ...]:
    """Debian's docker-compose (v1), else the `docker compose` plugin; the test fails when neither is installed."""
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    if shutil.which("docker") and _run(["docker", "compose", "version"]).returncode == 0:
        return ("docker", "compose")
    pytest.fail(
        "neither docker-compose nor the `docker compose` plugin is installed: `apt-get install docker-compose` "
        "(.ci/run installs it)"
    )


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run in the repository without the caller's compose or labgrader variables, so that defaults are checked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABGRADER_", "COMPOSE_", "DOCKER_"))}
    for name in ("POSTGRES_PASSWORD", "DATASETS_DIR", "TORCH_CUDA_INDEX_URL"):
        env.pop(name, None)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def supports_profiles() -> bool:
    """Profiles came with docker-compose 1.28; every `docker compose` plugin has them."""
    command = compose_command()
    if command != ("docker-compose",):
        return True
    done = _run([*command, "version", "--short"])
    found = re.match(r"(\d+)\.(\d+)", done.stdout.strip())
    return found is not None and (int(found[1]), int(found[2])) >= (1, 28)


def compose_config(*global_options: str) -> subprocess.CompletedProcess[str]:
    return _run([*compose_command(), *global_options, "-f", str(COMPOSE_FILE), "config", "--quiet"])


def test_docker_compose_validates_the_file():
    done = compose_config()
    assert done.returncode == 0, f"`docker-compose config` rejects {COMPOSE_FILE.name}:\n{done.stdout}{done.stderr}"


def test_docker_compose_validates_the_file_with_the_gpu_profile():
    if not supports_profiles():
        pytest.skip("this docker-compose predates profiles (1.28)")
    done = compose_config("--profile", "gpu")
    assert done.returncode == 0, f"`docker-compose --profile gpu config` fails:\n{done.stdout}{done.stderr}"


# --- the compose file, parsed -------------------------------------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def services() -> dict[str, dict]:
    return compose()["services"]


def labgrader_services() -> dict[str, dict]:
    return {name: s for name, s in services().items() if name not in INFRASTRUCTURE}


def workers() -> dict[str, dict]:
    return {name: s for name, s in labgrader_services().items() if command(s)[1] == "worker"}


def default_value(value: object) -> str:
    """The value with each ${NAME:-default} (or ${NAME-default}, ${NAME}) replaced as with no variable set."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m[1] or "", str(value))


def command(service: dict) -> list[str]:
    raw = service.get("command", [])
    return [default_value(a) for a in (shlex.split(raw) if isinstance(raw, str) else raw)]


def environment(service: dict) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {k: default_value(v) for k, v in raw.items()}


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source (a named volume or a host path), from short or long volume syntax."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            out[volume["target"]] = default_value(volume.get("source", ""))
        else:
            source, target, *_ = default_value(volume).split(":")
            out[target] = source
    return out


def seconds(duration: str) -> float:
    """A compose duration ("32m", "1h30m", "90s") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), f"not a duration: {duration!r}"
    return sum(float(n) * DURATION_UNITS[u] for n, u in parts)


def subcommands() -> set[str]:
    action = next(a for a in parser()._actions if a.dest == "command")
    return set(action.choices)


def test_every_service_but_redis_and_postgres_runs_a_valid_labgrader_command():
    assert labgrader_services().keys() >= {"api", "worker", "worker-gpu"}
    for name, service in labgrader_services().items():
        argv = command(service)
        assert argv[:1] == ["labgrader"], f"{name}: {argv}"
        assert argv[1] in subcommands(), f"{name}: `{argv[1]}` is no labgrader subcommand"
        try:
            parser().parse_args(argv[1:])
        except SystemExit as e:  # argparse exits on an unknown option or a bad choice
            pytest.fail(f"{name}: `{shlex.join(argv)}` is not accepted by `labgrader` ({e})")
    assert command(services()["api"])[1] == "serve"


def test_every_labgrader_variable_in_the_compose_file_and_dockerfile_is_a_setting():
    for path in (COMPOSE_FILE, DOCKERFILE):
        used = set(re.findall(r"\bLABGRADER_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
        assert used, path
        assert used <= SETTINGS_VARIABLES, f"{path.name}: not settings: {sorted(used - SETTINGS_VARIABLES)}"


def test_every_labgrader_service_environment_makes_valid_settings(monkeypatch):
    for name, service in labgrader_services().items():
        for variable in SETTINGS_VARIABLES:
            monkeypatch.delenv(variable, raising=False)
        image_env = {k: v for k, v in dockerfile_env().items() if k.startswith("LABGRADER_")}
        for variable, value in {**image_env, **environment(service)}.items():
            monkeypatch.setenv(variable, value)
        settings = Settings()  # raises on a value of the wrong type
        assert settings.sqlalchemy_url.startswith("postgresql+psycopg://"), name
        assert settings.broker_url.startswith("redis://redis:"), name


def test_the_api_and_every_worker_share_the_storage_volume():
    image_default = dockerfile_env().get("LABGRADER_STORAGE_DIR")
    storage_dir = {
        name: environment(s).get("LABGRADER_STORAGE_DIR", image_default) for name, s in labgrader_services().items()
    }
    sources = {name: mounts(s).get(storage_dir[name]) for name, s in labgrader_services().items()}
    assert len(set(storage_dir.values())) == 1, storage_dir
    assert len(set(sources.values())) == 1, sources
    assert next(iter(sources.values())) in compose()["volumes"], "the storage must be a named volume"


def test_the_default_worker_listens_where_the_api_sends_and_the_gpu_worker_is_opt_in():
    api_queue = environment(services()["api"]).get("LABGRADER_QUEUE", Settings.model_fields["queue"].default)
    default_workers = {name: s for name, s in workers().items() if not s.get("profiles")}
    assert default_workers, "`docker-compose up` without a profile must start a worker"
    for name, service in default_workers.items():
        args = parser().parse_args(command(service)[1:])
        assert args.queue == api_queue, f"{name} listens on {args.queue}, the API sends to {api_queue}"
    gpu = services()["worker-gpu"]
    args = parser().parse_args(command(gpu)[1:])
    assert gpu["profiles"] == ["gpu"]
    assert (args.queue, args.device, args.concurrency) == ("grading-gpu", "cuda", 1)
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices), devices


def test_the_gpu_worker_has_an_image_of_its_own_built_with_cuda_torch():
    gpu, cpu = services()["worker-gpu"], services()["worker"]
    assert gpu["image"] != cpu["image"] == services()["api"]["image"], "one tag for two builds: one overwrites"
    index = default_value(gpu["build"]["args"]["TORCH_INDEX_URL"])
    assert index.startswith("https://") and index != dockerfile_build_args()["TORCH_INDEX_URL"]


def test_workers_can_sandbox_and_finish_their_grading_on_stop():
    for name, service in workers().items():
        options = {o.replace(":", "=", 1) for o in service.get("security_opt", [])}
        assert {"seccomp=unconfined", "apparmor=unconfined"} <= options, name
        assert "SYS_ADMIN" in {c.upper().removeprefix("CAP_") for c in service.get("cap_add", [])}, name
        grace = seconds(service.get("stop_grace_period", "10s"))
        assert grace > Settings().time_limit, f"{name}: SIGKILL before a grading's time limit ({grace} s)"
    api = services()["api"]
    assert not api.get("cap_add") and not api.get("security_opt"), "the API runs no student code"


def test_the_api_waits_for_healthy_redis_and_postgres_and_has_a_health_check():
    from service.api.app import create_app

    for name, service in labgrader_services().items():
        depends = service["depends_on"]
        for dependency in INFRASTRUCTURE:
            assert depends[dependency]["condition"] == "service_healthy", name
            assert services()[dependency]["healthcheck"]["test"], dependency
    check = " ".join(services()["api"]["healthcheck"]["test"])
    path = re.search(r"localhost:(\d+)(/\S*)", check)
    assert path and path[2] in create_app(Settings()).openapi()["paths"], check
    assert f"{path[1]}:{path[1]}" in services()["api"]["ports"]
    assert environment(services()["api"])["LABGRADER_PORT"] == path[1]


# --- the Dockerfile -----------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    words = [line.strip().split(None, 1) for line in joined.splitlines() if line.strip()]
    return [(w[0].upper(), w[1] if len(w) > 1 else "") for w in words]


def dockerfile_args(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def dockerfile_env() -> dict[str, str]:
    out = {}
    for args in dockerfile_args("ENV"):
        out.update(item.split("=", 1) for item in shlex.split(args))
    return out


def dockerfile_build_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in dockerfile_args("ARG"))


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def test_the_image_runs_an_existing_labgrader_subcommand():
    last = [args for name in ("ENTRYPOINT", "CMD") for args in dockerfile_args(name)[-1:]]
    argv = [word for args in last for word in exec_form(args)]
    assert argv[:1] == ["labgrader"] and argv[1] in subcommands(), argv
    assert dockerfile_env()["LABGRADER_HOST"] == "0.0.0.0"


def test_the_image_installs_the_system_packages_of_ci():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    wanted = set(re.search(r'^APT_PACKAGES="([^"]*)"', ci, re.MULTILINE)[1].split()) - CI_ONLY_PACKAGES
    installed = set()
    for args in dockerfile_args("RUN"):
        for command_ in re.split(r"&&|;", args):
            words = command_.split()
            if words[:2] == ["apt-get", "install"]:
                installed |= {w for w in words[2:] if not w.startswith("-")}
    assert wanted <= installed, f"missing from the Dockerfile: {sorted(wanted - installed)}"
    assert "curl" in installed, "the API's health check runs curl"


def test_the_image_has_the_pinned_torch_and_an_editable_install_beside_the_templates():
    from reports.render import TEMPLATES

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = [d for d in pyproject["project"]["dependencies"] if re.match(r"torch\s*==", d)]
    run = " ".join(dockerfile_args("RUN"))
    assert pins and all(pin.replace(" ", "") in run for pin in pins), pins
    assert re.search(r"pip install (-e|--editable) \.", run), "report templates are found beside the source only"
    copied = {shlex.split(args)[0] for args in dockerfile_args("COPY")}
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {TEMPLATES.relative_to(ROOT).parts[0], "pyproject.toml"} <= copied, copied
    ignored = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()[:1] not in ("", "#")]
    for source in copied:
        assert not any(fnmatch(source, pattern) for pattern in ignored), f".dockerignore drops {source}"
