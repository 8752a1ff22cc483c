"""A pidfd that names another process than /proc shows: leftover running in a
PID namespace of its own whose /proc is the parent namespace's (`unshare
--pid` without `--mount-proc`). Inside, ns_last_pid makes a decoy take the
planned process's pid number; /proc (the parent's) still shows the planned
process, so only the pidfd's own Pid line can tell them apart."""

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
    from leftover.act import Actor
    from leftover.decide import RULES, Decision
    from leftover.scan import read_identity

    target = int(sys.argv[1])  # a pid of the parent namespace, read through its /proc
    planned = Decision(read_identity(Path("/proc"), target), RULES[-1])
    Path("/proc/sys/kernel/ns_last_pid").write_text(str(target - 1))  # this namespace's counter
    decoy = subprocess.Popen(["sleep", "600"])
    said = []
    actor = Actor(report=lambda level, text: said.append(text), describe=lambda d: f"pid={d.process.pid}")
    outcome = actor.carry_out([planned], grace_seconds=1)[0]
    time.sleep(0.2)
    print(json.dumps({
        "same_number": decoy.pid == target,
        "result": outcome.result.value,
        "detail": outcome.detail,
        "decoy_alive": decoy.poll() is None,
        "said": said,
    }))
    decoy.kill()
    """
)


def test_a_pidfd_naming_another_process_than_proc_shows_is_refused():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        if os.environ.get("LEFTOVER_REQUIRE_E2E") == "1":
            pytest.fail("needs root and unshare(1)")
        pytest.skip("needs root and unshare(1)")
    target = subprocess.Popen(["sleep", "600"])
    try:
        done = subprocess.run(
            ["unshare", "--pid", "--fork", sys.executable, "-c", IN_NAMESPACE, str(target.pid)],
            cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout)
        assert outcome["same_number"], "the namespace did not hand out the planned pid's number"
        assert outcome["decoy_alive"], "the decoy in the other namespace was signalled"
        assert outcome["result"] == "unchecked"
        assert outcome["detail"].startswith("its pidfd names pid ") and "PID namespace" in outcome["detail"]
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()
