"""End-to-end fixtures: the real Slurm test cluster, test users and /dev/log.

These tests kill real processes of every regular user without a job on this
machine, so they run only where tests/cluster/slurm-up made a test cluster.
LEFTOVER_REQUIRE_E2E=1 (CI) turns a skip into a failure. One test session at a
time uses the machine (cluster.holding_machine)."""

import os

import pytest

from tests.e2e import cluster
from tests.e2e.syslog_socket import DEV_LOG, SyslogCollector, stale_socket


def _unavailable(why: str):
    if os.environ.get("LEFTOVER_REQUIRE_E2E") == "1":
        pytest.fail(f"end-to-end tests required but cannot run: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def machine():
    if os.geteuid() != 0:
        _unavailable("end-to-end tests need root")
    with cluster.holding_machine() as held:
        if not held:
            _unavailable(f"another test session kept {cluster.MACHINE_LOCK} for an hour")
        yield


@pytest.fixture(scope="session")
def slurm(machine):
    """The cluster LEFTOVER_TEST_SLURM names (cluster.py), up for the session;
    a chroot's stops at its end, so that no other session meets its daemons."""
    if not cluster.is_test_cluster():
        _unavailable("no test cluster here (run tests/cluster/slurm-up as root)")
    try:
        cluster.slurm_up()
        cluster.ensure_users()
        cluster.clear_test_users()
        yield
    finally:
        if not cluster.on_host():
            cluster.clear_test_users()
        cluster.slurm_down()


@pytest.fixture(scope="session")
def syslog(machine):
    if DEV_LOG.exists() and not stale_socket(DEV_LOG):
        _unavailable(f"{DEV_LOG} belongs to a running syslog daemon")
    DEV_LOG.unlink(missing_ok=True)
    collector = SyslogCollector()
    yield collector
    collector.close()
