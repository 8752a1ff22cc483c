"""`make soak`: a race soak against the real test cluster.

Users with jobs keep submitting short jobs whose steps start and end child
processes; another user keeps starting strays; leftover runs back to back with
no splay and a short grace. It stops by itself after LEFTOVER_SOAK_SECONDS
(default 300) and then reports:

- runs, jobs submitted, jobs that ran to completion (each leaves a marker as
  its last act), strays started and strays killed;
- wrong kills: a target of leftover's owned by a job user (whose processes
  here only ever live in jobs), or a job, or a job's escaped child, that did
  not complete. Must be 0;
- strays still alive after a final run, though they existed before its Slurm
  answer. Must be 0.

Exit status 0 only when both are 0.
"""

import grp
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import REPO
from tests.e2e import cluster
from tests.e2e.cluster import JOB, LONG_NAME, STRAY

JOB_USERS = (JOB, LONG_NAME)
JOBS_IN_FLIGHT = 3  # per job user
JOB_SCRIPT = """#!/bin/sh
# A job whose steps start and end child processes, one of which escapes with
# setsid (no longer below slurmstepd); both the job and the escaped child
# leave a marker as their last act.
(setsid sh -c 'sleep 0.4; touch {markers}/'$SLURM_JOB_ID'.escaped' </dev/null >/dev/null 2>&1 &)
for step in 1 2 3; do
    sleep 0.2 &
    sh -c 'sleep 0.3' &
    wait
done
for wait in 1 2 3 4 5 6 7 8 9 10; do
    [ -e {markers}/$SLURM_JOB_ID.escaped ] && break
    sleep 0.5
done
echo done > {markers}/$SLURM_JOB_ID
"""


def submit(user, script: Path) -> int:
    done = subprocess.run(
        ["sbatch", "--parsable", "--chdir=/tmp", "--output=/dev/null", str(script)],
        user=user.uid, group=grp.getgrnam(user.name).gr_gid,
        extra_groups=[], capture_output=True, text=True, check=True,
    )
    return int(done.stdout.strip().split(";")[0])


def active_jobs(user) -> int:
    done = subprocess.run(["squeue", "-h", "-u", user.name, "-o", "%i"], capture_output=True, text=True)
    return len(done.stdout.split())


def run_leftover(conf: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "leftover", "--no-splay", "--json", "--config", str(conf), "--lock-file", str(conf.parent / "lock")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    return json.loads(done.stdout) if done.stdout.strip() else {"exit_code": done.returncode, "targets": []}


def main() -> int:
    if not cluster.is_test_cluster():
        print("soak: no test cluster here (run tests/cluster/slurm-up as root)", file=sys.stderr)
        return 2
    with cluster.holding_machine() as held:
        if not held:
            print(f"soak: another test session kept {cluster.MACHINE_LOCK} for an hour", file=sys.stderr)
            return 2
        return soak(float(os.environ.get("LEFTOVER_SOAK_SECONDS", "300")))


def soak(seconds: float) -> int:
    cluster.slurm_up_with("proctrack/linuxproc")
    cluster.ensure_users()
    cluster.clear_test_users()
    work = Path(tempfile.mkdtemp(prefix="leftover-soak-", dir="/tmp"))
    work.chmod(0o755)
    markers = work / "markers"
    markers.mkdir()
    markers.chmod(0o777)
    script = work / "job.sh"
    script.write_text(JOB_SCRIPT.format(markers=markers))
    script.chmod(0o755)
    conf = cluster.config(work, grace_seconds=1)
    job_uids = {user.uid for user in JOB_USERS}

    submitted: list[int] = []
    strays = []
    runs = bailed = strays_killed = 0
    wrong: list[str] = []
    deadline = time.monotonic() + seconds
    next_stray = 0.0
    while time.monotonic() < deadline:
        for user in JOB_USERS:
            for _ in range(JOBS_IN_FLIGHT - active_jobs(user)):
                submitted.append(submit(user, script))
        if time.monotonic() >= next_stray:
            strays.append(cluster.sleeper(STRAY))
            next_stray = time.monotonic() + random.uniform(0.2, 1.5)
        report = run_leftover(conf)
        runs += 1
        bailed += report.get("exit_code", 0) != 0
        for target in report.get("targets", []):
            if set(target["uids"]) & job_uids:
                wrong.append(f"run {runs}: targeted pid {target['pid']} of job user uid {target['uid']} ({target['reason']})")
            elif target["uid"] == STRAY.uid and target.get("result") in ("terminated", "killed"):
                strays_killed += 1

    settle = time.monotonic() + 120
    while any(active_jobs(user) for user in JOB_USERS) and time.monotonic() < settle:
        time.sleep(0.5)
    final = run_leftover(conf)
    survivors = [s.pid for s in strays if cluster.alive(s.pid)]
    incomplete = [job for job in submitted if not (markers / str(job)).exists()]
    for job in incomplete:
        wrong.append(f"job {job} left no completion marker")
    for job in submitted:
        if not (markers / f"{job}.escaped").exists():
            wrong.append(f"the escaped child of job {job} left no completion marker")
    cluster.stop(strays)
    shutil.rmtree(work, ignore_errors=True)

    print(f"soak: {seconds:g}s, {runs} runs ({bailed} bailed out), {len(submitted)} jobs, "
          f"{len(submitted) - len(incomplete)} completed, {len(strays)} strays started, "
          f"{strays_killed} killed during the soak, {len(survivors)} alive after the final run "
          f"(exit {final.get('exit_code')}), wrong kills: {len(wrong)}")
    for line in wrong[:20]:
        print(f"soak: WRONG: {line}")
    for pid in survivors[:20]:
        print(f"soak: stray pid {pid} survived the final run")
    return 0 if not wrong and not survivors else 1


if __name__ == "__main__":
    sys.exit(main())
