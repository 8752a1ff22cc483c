"""GPU holders: which device files count, how /proc/[pid]/fd is read, and that
only targets are looked at. The fd links here are fake (a copied /proc tree);
tests/e2e/test_gpu_holders.py has a real process holding stand-in devices."""

import json
import os
import shutil

import pytest

from leftover import cli
from leftover.act import Actor
from leftover.decide import Facts, JobAnswer
from leftover.gpu import gpu_devices, is_gpu_device
from leftover.survey import look, with_gpu_devices
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC
from tests.faults import config


@pytest.mark.parametrize("link", [
    "/dev/nvidia0", "/dev/nvidia15", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-caps/nvidia-cap1",
    "/dev/dri/renderD128", "/dev/kfd",
])
def test_gpu_device_files(link):
    assert is_gpu_device(link)


@pytest.mark.parametrize("link", [
    "/dev/null", "/dev/pts/3", "/dev/dri/card0", "/dev/kfd2", "/home/bob/dev/nvidia0", "pipe:[1234]",
    "socket:[99]", "anon_inode:[eventfd]", "/tmp/dev/kfd",
])
def test_other_files(link):
    assert not is_gpu_device(link)


@pytest.fixture
def proc(tmp_path):
    """The example node's /proc, with fd tables for a target (1202) and for a
    process in a job (1201)."""
    root = tmp_path / "proc"
    shutil.copytree(EXAMPLE_PROC, root, symlinks=True)
    for pid, links in {1202: ["/dev/nvidia0", "/dev/nvidiactl", "/dev/null", "/dev/nvidia0", "/dev/kfd"],
                       1201: ["/dev/nvidia1"]}.items():
        (root / str(pid) / "fd").mkdir()
        for fd, link in enumerate(links):
            os.symlink(link, root / str(pid) / "fd" / str(fd))
    return root


def test_devices_held_are_listed_once_each_and_sorted(proc):
    assert gpu_devices(proc, 1202) == ("/dev/kfd", "/dev/nvidia0", "/dev/nvidiactl")


def test_a_process_without_a_readable_fd_table_holds_nothing_that_can_be_shown(proc):
    assert gpu_devices(proc, 1203) == ()
    assert gpu_devices(proc, 999999) == ()


def test_only_targets_are_looked_at_and_no_verdict_changes(proc):
    facts = Facts(min_uid=1000, protected_uids=frozenset({64030, 2004}))
    plan = with_gpu_devices(proc, look(proc, facts._replace(answer=JobAnswer(frozenset({2001}), 100_000))).plan)
    held = {d.process.pid: d.process.gpu_devices for d in plan.decisions}
    assert held[1202] == ("/dev/kfd", "/dev/nvidia0", "/dev/nvidiactl")
    assert held[1201] == ()  # in a job: its fd table is never read
    assert [d.process.pid for d in plan.targets] == [1202, 1203, 1207]


def test_the_log_line_json_and_metrics_say_which_targets_hold_a_gpu(proc, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: [])
    settings = {"protected_users": ["slurm", "dave"], "squeue": str(EXAMPLE_NODE / "squeue"),
                "metrics_file": str(tmp_path / "leftover.prom")}
    conf = config(tmp_path, json.dumps(settings))
    common = ["--no-splay", "--config", str(conf), "--proc", str(proc), "--passwd", str(EXAMPLE_NODE / "passwd")]
    assert cli.main([*common, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("would kill pid=1202 ")
    assert lines[0].endswith("reason=no-job-on-node gpu=/dev/kfd,/dev/nvidia0,/dev/nvidiactl")
    assert " gpu=" not in lines[1]
    assert cli.main([*common, "--json", "--lock-file", str(tmp_path / "lock")]) == 0
    targets = json.loads(capsys.readouterr().out)["targets"]
    assert [t["gpu_devices"] for t in targets] == [["/dev/kfd", "/dev/nvidia0", "/dev/nvidiactl"], [], []]
    assert "\nleftover_gpu_holding_targets 1\n" in (tmp_path / "leftover.prom").read_text()


def test_judged_entries_claim_nothing_about_gpus_since_only_targets_are_read(proc, capsys):
    conf = EXAMPLE_NODE / "leftover.conf"
    assert cli.main(["--no-splay", "--json", "--dry-run", "--config", str(conf), "--proc", str(proc),
                     "--passwd", str(EXAMPLE_NODE / "passwd")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["judged"] and all("gpu_devices" not in entry for entry in report["judged"])
    assert all("gpu_devices" in entry for entry in report["targets"])
    assert cli.main(["--no-splay", "--json", "--all", "--dry-run", "--config", str(conf), "--proc", str(proc),
                     "--passwd", str(EXAMPLE_NODE / "passwd")]) == 0
    every = json.loads(capsys.readouterr().out)["processes"]
    assert {e["pid"] for e in every if "gpu_devices" in e} == {1202, 1203, 1207}
