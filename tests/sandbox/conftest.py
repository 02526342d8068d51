"""Sandbox jobs of these tests get their folders in one private place, and every test checks that none of
their processes outlived its run_task() call."""

import tempfile

import pytest

from .helpers import ORPHAN_MARKER, processes_with


@pytest.fixture(scope="package", autouse=True)
def job_folders(tmp_path_factory):
    """Job folders under a folder of this test session, so that other sessions' jobs are told apart."""
    folder = tmp_path_factory.mktemp("sandbox-jobs")
    saved, tempfile.tempdir = tempfile.tempdir, str(folder)
    yield folder
    tempfile.tempdir = saved


@pytest.fixture(autouse=True)
def no_leftover_processes(job_folders):
    yield
    assert processes_with(str(job_folders)) == []
    assert processes_with(ORPHAN_MARKER) == []
