# One image for the API (`labgrader serve`, the default command) and the workers (`labgrader worker ...`).
#
#   docker build -t labgrader:cpu .
#   docker build -t labgrader:cuda --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130 .
#
# TORCH_INDEX_URL picks the PyTorch build: CPU-only by default (small), a CUDA index for GPU workers. The version
# is the one pinned in pyproject.toml either way ("2.13.0+cpu" and "2.13.0+cu130" both satisfy "==2.13.0", so
# `pip install` below keeps it).
#
# What a WORKER container needs (docker-compose.yml sets all three on the worker services, never on the API):
# the grader runs student code under `unshare` (private PID namespace, mounts a fresh /proc, lowers pid_max) and
# bubblewrap (user, mount, network... namespaces, pivot_root), see grader/sandbox/isolation.py.
#   * cap_add SYS_ADMIN: the worker runs as root, and root creates the PID namespace without a user namespace,
#     which takes CAP_SYS_ADMIN (Docker drops it by default).
#   * security_opt seccomp=unconfined: Docker's default seccomp profile refuses pivot_root even with
#     CAP_SYS_ADMIN, and bubblewrap needs it.
#   * security_opt apparmor=unconfined: Docker's default AppArmor profile denies every mount and writes to
#     /proc/sys/kernel/pid_max (hosts without AppArmor ignore the option).
# Missing any of them does not stop grading: the sandbox falls back to rlimits (no filesystem or network
# isolation) and every report says so. Check with:
#   docker-compose exec worker python -c "from grader.sandbox.isolation import host_support as h; print(h())"
# which must show bwrap='/usr/bin/bwrap' and pid_max=True.
# Root is what the test suite runs the sandbox as (CI runs as root), so the container behaves as tested. Student
# code never holds these privileges: bubblewrap drops every capability and gives it a user namespace of its own.
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LABGRADER_HOST=0.0.0.0 \
    LABGRADER_STORAGE_DIR=/var/lib/labgrader

# The same system packages as .ci/run (sandbox, Fashion-MNIST fallback, WeasyPrint's libraries and font), and curl
# for docker-compose's health check of the API. util-linux (prlimit, unshare) is part of every Debian image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        bubblewrap dataset-fashion-mnist libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
        curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# PyTorch first, in a layer of its own: it is most of the image and changes least.
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0

COPY pyproject.toml ./
COPY grader grader
COPY reports reports
COPY service service
COPY templates templates
COPY examples examples

# Editable on purpose: reports/render.py finds the report templates at <source root>/templates/report, next to
# the packages. A regular install would put the packages in site-packages, where no templates/ folder exists,
# and every report would fail to render. The source stays in /app; the sandbox shows the student's code
# /app/grader read-only.
RUN pip install -e . \
    && mkdir -p /var/lib/labgrader /data

EXPOSE 8000
CMD ["labgrader", "serve"]
