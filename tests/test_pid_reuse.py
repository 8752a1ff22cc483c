"""A pid reused between the plan and the signal: inside a new PID namespace,
writing /proc/sys/kernel/ns_last_pid makes the next process take the planned
process's pid. The newcomer must not be signalled, with pidfds and without."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

IN_NAMESPACE = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from pathlib import Path
    from leftover.act import Actor, Result
    from leftover.decide import RULES, Decision
    from leftover.scan import read_identity

    victim = subprocess.Popen(["sleep", "600"])
    planned = Decision(read_identity(Path("/proc"), victim.pid), RULES[-1])
    victim.kill()
    victim.wait()
    time.sleep(0.05)  # a newcomer starts at least a clock tick after the plan's Slurm answer
    Path("/proc/sys/kernel/ns_last_pid").write_text(str(victim.pid - 1))
    newcomer = subprocess.Popen(["sleep", "600"])
    said = []
    actor = Actor(report=lambda level, text: said.append(text), describe=lambda d: f"pid={d.process.pid}")
    actor.pidfds = sys.argv[1] == "pidfd"
    outcomes = actor.carry_out([planned], grace_seconds=1)
    time.sleep(0.2)
    print(json.dumps({
        "reused": newcomer.pid == victim.pid,
        "result": outcomes[0].result.value,
        "newcomer_alive": newcomer.poll() is None,
        "said": said,
    }))
    newcomer.kill()
    """
)


@pytest.mark.parametrize("mode", ["pidfd", "start-time-fallback"])
def test_newcomer_with_a_reused_pid_is_not_signalled(mode):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        if os.environ.get("LEFTOVER_REQUIRE_E2E") == "1":
            pytest.fail("needs root and unshare(1)")
        pytest.skip("needs root and unshare(1)")
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", IN_NAMESPACE, mode],
        cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["reused"], "the namespace did not hand out the planned pid again"
    assert outcome["result"] == "changed"
    assert outcome["newcomer_alive"]
    assert any("no longer names the planned process" in line for line in outcome["said"])
