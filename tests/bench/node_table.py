"""What squeue's node-table RPC costs slurmctld as the node table grows.

`squeue --nodelist=NODE` fetches the node table only to map the names given to
--nodelist. A private slurmctld (its own port, state directory and cluster
name; no slurmd, the shared test cluster untouched) is started with a table of
`size` FUTURE nodes, asked 20 times, and its own sdiag figures are read."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PORT = 7917
ASKS = 20
CONF = """ClusterName=lo-nodetable
SlurmctldHost={host}
SlurmctldPort={port}
SlurmdPort={slurmd_port}
SlurmUser=slurm
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation={work}/state
SlurmdSpoolDir={work}/spool
SlurmctldPidFile={work}/slurmctld.pid
SlurmctldLogFile={work}/slurmctld.log
NodeName={host} CPUs=4 State=UNKNOWN
{future}PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def rpc_times(size: int) -> dict[str, float]:
    """Average slurmctld time in ms per RPC of `squeue -w HOST` with `size` FUTURE nodes."""
    host = socket.gethostname().split(".")[0]
    work = Path(tempfile.mkdtemp(prefix="leftover-nodetable-", dir="/tmp"))
    for sub in ("state", "spool"):
        (work / sub).mkdir()
    shutil.chown(work / "state", "slurm", "slurm")
    shutil.chown(work, "slurm", "slurm")
    future = f"NodeName=fut[1-{size}] CPUs=64 State=FUTURE\n" if size else ""
    conf = work / "slurm.conf"
    conf.write_text(CONF.format(host=host, port=PORT, slurmd_port=PORT + 1, work=work, future=future))
    conf.chmod(0o644)
    environment = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], env=environment, check=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["scontrol", "ping"], env=environment, capture_output=True, text=True).stdout.count("UP") == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"private slurmctld did not answer; see {work}/slurmctld.log")
            time.sleep(0.2)
        subprocess.run(["sdiag", "-r"], env=environment, check=True, capture_output=True)
        for _ in range(ASKS):
            subprocess.run(["squeue", "--noheader", "--all", "--format=%U", f"--nodelist={host}"], env=environment,
                           check=True, capture_output=True)
        report = subprocess.run(["sdiag"], env=environment, check=True, capture_output=True, text=True).stdout
    finally:
        subprocess.run(["scontrol", "shutdown"], env=environment, capture_output=True)
        deadline = time.monotonic() + 30
        while (work / "slurmctld.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(work, ignore_errors=True)
    times = {}
    for name in ("REQUEST_NODE_INFO", "REQUEST_JOB_INFO", "REQUEST_PARTITION_INFO"):
        found = re.search(rf"{name}\s+\(\s*\d+\)\s+count:(\d+)\s+ave_time:(\d+)", report)
        times[name] = int(found.group(2)) / 1000 if found else float("nan")
    return times
