"""Files of a submission under the storage folder that the API and every worker share:
submissions/<id>/<filename> (the upload) and submissions/<id>/g<generation>-a<attempt>/ (one grading's output)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def submission_dir(self, submission_id: str) -> Path:
        return self.root / "submissions" / submission_id

    def upload_path(self, submission_id: str) -> Path:
        return self.submission_dir(submission_id) / "submission.py"

    def attempt_dir(self, submission_id: str, generation: int, attempt: int) -> Path:
        return self.submission_dir(submission_id) / f"g{generation}-a{attempt}"

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def path(self, relative: str) -> Path:
        """A stored file from its database path; never outside the storage folder."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"{relative} is outside the storage folder")
        return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
