"""The package tests use the end-to-end fixtures: the real test cluster."""

from tests.e2e.conftest import machine, slurm, syslog  # noqa: F401  (pytest fixtures)
