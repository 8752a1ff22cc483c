"""Which squeue runs: the site's own installation before the distribution's."""

import json
import time
from pathlib import Path

import pytest

from leftover import cli, slurm
from leftover.act import Actor
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC
from tests.faults import config


def squeue_in(directory: Path, uid: int) -> Path:
    directory.mkdir(parents=True)
    path = directory / "squeue"
    path.write_text(f"#!/bin/sh\nprintf 'UID\\n{uid}\\n'\n")
    path.chmod(0o755)
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
    assert found.squeues == (site / "squeue", distribution / "squeue") and found.scontrol is None


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
