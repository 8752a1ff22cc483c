"""Shared test helpers: where the fixtures are."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_NODE = REPO / "fixtures" / "example-node"
EXAMPLE_PROC = EXAMPLE_NODE / "proc"


@pytest.fixture
def example_proc() -> Path:
    return EXAMPLE_PROC


def fixture_bytes(pid: int, name: str) -> bytes:
    return (EXAMPLE_PROC / str(pid) / name).read_bytes()
