"""Domain errors carry a kind, not a transport: the kit alone maps kinds to gRPC statuses."""

from __future__ import annotations

import subprocess
import sys

import grpc

from callscribe.kit import errors
from callscribe.kit.errors import DomainError, ErrorKind
from callscribe.kit.status import STATUS, status_of


def test_the_error_module_imports_no_grpc() -> None:
    """A core that raises domain errors must not pull in gRPC through them."""
    code = "import sys, callscribe.kit.errors; print('grpc' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_every_kind_has_the_status_of_its_name_and_every_error_class_a_kind() -> None:
    assert set(STATUS) == set(ErrorKind)
    for kind, code in STATUS.items():
        assert code.name == kind.name and isinstance(code, grpc.StatusCode)
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, DomainError)]
    assert len(classes) == len(ErrorKind)  # DomainError itself is INTERNAL
    assert {c.kind for c in classes} == set(ErrorKind)
    assert status_of(errors.DataLoss("sha256 differs")) == grpc.StatusCode.DATA_LOSS
    assert status_of(errors.InvalidArgument("bad")) == grpc.StatusCode.INVALID_ARGUMENT
