"""What a newcomer copies from the screen: the demo's "Next:" commands and the README's first commands, as printed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from callscribe.cli.demo import next_steps

REC_ID = "0123456789abcdef0123456789abcdef"
README = Path(__file__).resolve().parents[2] / "README.md"


def _program(directory: Path, name: str = "callscribe") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    program = directory / name
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    return program


def test_next_steps_use_the_bare_name_when_it_is_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _program(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    lines = next_steps(REC_ID, cwd=tmp_path).splitlines()
    assert "  callscribe search refund --tenant acme" in lines
    assert f"  callscribe show {REC_ID} --tenant acme" in lines
    assert not any("not on PATH" in line for line in lines)


def test_next_steps_name_the_program_when_it_is_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    program = _program(project / ".venv" / "bin")
    (program.parent / "activate").write_text("")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(sys, "executable", str(program.parent / "python"))  # `make demo` runs .venv/bin/callscribe
    lines = next_steps(REC_ID, cwd=project).splitlines()  # from the repository: the relative path
    assert "  .venv/bin/callscribe search refund --tenant acme" in lines
    assert "  .venv/bin/callscribe stack status" in lines
    assert lines[-1] == "  # 'callscribe' is not on PATH; 'source .venv/bin/activate' puts it there for this shell"
    lines = next_steps(REC_ID, cwd=tmp_path / "elsewhere").splitlines()  # from outside it: the absolute path
    assert f"  {program} status {REC_ID} --tenant acme" in lines


def test_the_printed_command_runs_without_callscribe_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    cwd = Path(sys.executable).parent.parent.parent  # the directory holding the venv, as after `make demo`
    [line] = [line for line in next_steps(REC_ID, cwd=cwd).splitlines() if line.endswith("stack status")]
    argv = [*shlex.split(line), "--home", str(tmp_path / "no-stack")]
    result = subprocess.run(argv, cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr  # `stack status` of a home without a stack: runs, says so
    assert "no local stack runs in" in result.stdout


def test_the_readme_first_commands_put_callscribe_on_path() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands.index("make demo") < commands.index("source .venv/bin/activate")
