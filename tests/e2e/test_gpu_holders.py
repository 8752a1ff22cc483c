"""A real stray holding GPU device files open. This machine has no GPU, so the
stray's own mount namespace has a tmpfs on /dev with stand-in files named as
the drivers name theirs; the kernel shows its descriptors as /dev/nvidia0 and
so on, exactly as it shows a real device's, and that is all leftover reads."""

import json
import subprocess

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import STRAY

pytestmark = pytest.mark.e2e

HELD = ("/dev/dri/renderD128", "/dev/kfd", "/dev/nvidia0")
STAND_INS = "mount -t tmpfs tmpfs /dev && mkdir /dev/dri && : > /dev/nvidia0 && : > /dev/dri/renderD128 && : > /dev/kfd"


def gpu_stray() -> subprocess.Popen:
    """STRAY's sleep, holding the stand-ins open on fds 3-5 (opened as root,
    then the process becomes STRAY: unshare and setpriv exec, so the pid stays)."""
    script = (f"{STAND_INS} && exec setpriv --reuid={STRAY.uid} --regid={STRAY.uid} --clear-groups "
              "sleep 600 3</dev/nvidia0 4</dev/dri/renderD128 5</dev/kfd")
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "bash", "-c", script],
                            start_new_session=True, stdin=subprocess.DEVNULL)


def wait_until_it_is_strays(process: subprocess.Popen) -> None:
    for _ in range(100):
        status = open(f"/proc/{process.pid}/status").read()
        if f"Uid:\t{STRAY.uid}\t" in status:
            return
        subprocess.run(["sleep", "0.05"])
    raise AssertionError("the GPU stray did not start")


def test_a_target_holding_gpu_devices_says_so_in_the_log_json_and_metrics(slurm, syslog, tmp_path):
    tmp_path.chmod(0o755)
    holder, plain = gpu_stray(), cluster.sleeper(STRAY)
    try:
        wait_until_it_is_strays(holder)
        mark = syslog.mark()
        metrics = tmp_path / "leftover.prom"
        result = cluster.run_leftover(cluster.config(tmp_path, metrics_file=str(metrics)), "--json")
        assert result.returncode == 0, result.stderr
        targets = {t["pid"]: t for t in json.loads(result.stdout)["targets"]}
        assert targets[holder.pid]["gpu_devices"] == list(HELD)
        assert targets[plain.pid]["gpu_devices"] == []
        (line,) = [t for t in syslog.texts_since(mark) if f"pid={holder.pid} " in t and "SIGTERM" in t]
        assert line.startswith("sent SIGTERM to ") and line.endswith(" gpu=" + ",".join(HELD))
        assert not [t for t in syslog.texts_since(mark) if f"pid={plain.pid} " in t and " gpu=" in t]
        assert "\nleftover_gpu_holding_targets 1\n" in metrics.read_text()
        assert cluster.wait_dead(holder.pid)
    finally:
        cluster.stop([holder, plain])
