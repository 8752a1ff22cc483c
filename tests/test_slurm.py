"""Which squeue runs: the site's own installation before the distribution's;
and a squeue on a file system that never answers, which holds only a child."""

import json
import os
import re
import time
from pathlib import Path

import pytest

from leftover import cli, slurm
from leftover.act import Actor
from leftover.lock import take_lock
from leftover.programs import KILL_WAIT_SECONDS
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC, state_of
from tests.faults import config, standin_scontrol


def squeue_in(directory: Path, uid: int) -> Path:
    directory.mkdir(parents=True)
    path = directory / "squeue"
    path.write_text(f"#!/bin/sh\nprintf 'UID\\n{uid}\\n'\n")
    path.chmod(0o755)
    standin_scontrol(directory)
    return directory


@pytest.fixture
def site_and_distribution(tmp_path, monkeypatch):
    """Slurm under /opt (the site's) and Debian's slurm-client in /usr/bin,
    which is also on cron's PATH."""
    site = squeue_in(tmp_path / "opt" / "slurm" / "bin", 2001)
    distribution = squeue_in(tmp_path / "usr" / "bin", 2002)
    monkeypatch.setattr(slurm, "SITE_PREFIXES", (tmp_path / "usr" / "local" / "bin", site))
    monkeypatch.setattr(slurm, "DISTRIBUTION_PREFIXES", (distribution,))
    monkeypatch.setenv("PATH", f"{distribution}:/bin")
    return site, distribution


def test_the_sites_squeue_comes_before_the_distributions_on_path(site_and_distribution):
    site, distribution = site_and_distribution
    found = slurm.find_commands(None, time.monotonic() + 5)
    assert found.squeues == (site / "squeue", distribution / "squeue") and found.scontrol == site / "scontrol"


def test_a_configured_squeue_is_the_only_one(site_and_distribution):
    _, distribution = site_and_distribution
    assert slurm.find_commands(distribution / "squeue", time.monotonic() + 5).squeues == (distribution / "squeue",)


def test_the_run_says_which_squeue_ran_and_which_others_it_found(site_and_distribution, capsys, monkeypatch, tmp_path):
    site, distribution = site_and_distribution
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: [])
    conf = config(tmp_path, json.dumps({"protected_users": ["dave"]}))
    code = cli.main(["--no-splay", "--json", "--verbose", "--config", str(conf), "--proc", str(EXAMPLE_PROC),
                     "--passwd", str(EXAMPLE_NODE / "passwd"), "--lock-file", str(tmp_path / "lock")])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 0 and report["squeue"] == str(site / "squeue") and report["job_uids"] == [2001]
    assert f"using {site}/squeue (also found {distribution}/squeue; set 'squeue' in the config to choose)" in captured.err
    assert f"controller asked by {site}/squeue for " in captured.err


LOOKING_HUNG = (r"looking for squeue did not finish in time \(a file system on the way to it did not answer\); "
                r"pid (\d+) still there 1s after SIGKILL \(state D\), left behind")


@pytest.mark.parametrize(("where", "configured", "why"), [
    ("other/slurm/bin/squeue", True, LOOKING_HUNG),  # the configured one
    ("other/slurm/bin", False, LOOKING_HUNG),  # a directory on PATH
    # found, but the exec of the first program, the scontrol beside it, hangs
    ("squeue", True, r"scontrol did not start within 0.5s \(a file system on the way to {scontrol} did not answer\); "
                     r"pid (\d+) still there 1s after SIGKILL \(state D\), left behind"),
], ids=["configured", "on-path", "exec"])
def test_a_squeue_on_a_file_system_that_never_answers_bails_out_in_time_and_signals_nothing(
    hung_file_system, capsys, monkeypatch, tmp_path, where, configured, why
):
    """Every step towards squeue is a child's: the run bails out with one line
    within squeue_timeout and the wait after SIGKILL, and the child the kernel
    holds (state D) is left behind without a copy of the lock."""
    signalled = []
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: signalled.append(targets) or [])
    squeue = hung_file_system.mount("taken") / where
    if configured:
        conf = config(tmp_path, json.dumps({"squeue": str(squeue), "squeue_timeout": 0.5}))
    else:
        monkeypatch.setattr(slurm, "SITE_PREFIXES", (tmp_path / "opt",))
        monkeypatch.setattr(slurm, "DISTRIBUTION_PREFIXES", (tmp_path / "usr",))
        monkeypatch.setenv("PATH", f"{squeue}:/bin")
        conf = config(tmp_path, json.dumps({"squeue_timeout": 0.5}))
    lock = tmp_path / "lock"
    started = time.monotonic()
    code = cli.main(["--no-splay", "--json", "--verbose", "--config", str(conf), "--proc", str(EXAMPLE_PROC),
                     "--passwd", str(EXAMPLE_NODE / "passwd"), "--lock-file", str(lock)])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1 and signalled == [] and report["bailed_out_reason"] == "slurm"
    why = why.format(scontrol=re.escape(str(squeue.parent / "scontrol")))
    said = re.fullmatch("Slurm gave no usable answer: " + why, report["bailed_out"])
    assert said, report["bailed_out"]
    assert [line for line in captured.err.splitlines() if "bailed out" in line] == [
        f"leftover: error: bailed out, nothing signalled: {report['bailed_out']}"
    ]
    assert elapsed < 0.5 + KILL_WAIT_SECONDS + 1
    assert state_of(int(said[1])) == "D"  # still held by the kernel, and yet:
    os.close(take_lock(lock))
