"""Races around the Slurm question, made to happen on demand: a wrapper around
the real squeue starts a new stray process while Slurm is being asked, as a
job starting at that moment would. Only processes older than the question may
be killed."""

import json

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import STRAY

pytestmark = pytest.mark.e2e


def test_process_started_while_slurm_is_asked_waits_for_the_next_run(slurm, tmp_path):
    real = cluster.slurm_bin() / "squeue"
    newborn = tmp_path / "newborn.pid"
    wrapper = tmp_path / "squeue"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"setpriv --reuid={STRAY.uid} --regid={STRAY.uid} --clear-groups sleep 600 </dev/null >/dev/null 2>&1 &\n"
        f"echo $! > {newborn}\n"
        "sleep 0.1\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    cluster.scontrol_beside(tmp_path)
    old = cluster.sleeper(STRAY)
    try:
        result = cluster.run_leftover(cluster.config(tmp_path, squeue=str(wrapper)), "--json")
        assert result.returncode == 0, result.stderr
        young = int(newborn.read_text())
        reasons = {entry["pid"]: entry["reason"] for entry in json.loads(result.stdout)["judged"]}
        assert reasons[young] == "started-after-slurm-answer"
        assert reasons[old.pid] == "no-job-on-node"
        assert cluster.alive(young)
        assert cluster.wait_dead(old.pid)
        second = cluster.run_leftover(cluster.config(tmp_path))
        assert second.returncode == 0 and cluster.wait_dead(young)
    finally:
        cluster.stop([old])
        cluster.clear_test_users()
