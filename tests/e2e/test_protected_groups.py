"""protected_groups on this machine's real group and user databases: a real
group, a supplementary member and a user whose primary group it is, each with
a stray and no job; both are spared as protected-group while a plain stray dies."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import STRAY, TestUser

pytestmark = pytest.mark.e2e

GROUP, GID = "lo-admins", 3100
SUPPLEMENTARY = TestUser("lo-groupmember", 3101)  # lo-admins lists them in /etc/group
PRIMARY = TestUser("lo-groupprimary", 3102)  # lo-admins is their primary group


@pytest.fixture(scope="module")
def admins(slurm):
    """The group and its two members, made once on this machine (as the other lo-* users are)."""
    if subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "--gid", str(GID), GROUP], check=True)
    for user, options in ((SUPPLEMENTARY, ["--user-group", "--groups", GROUP]), (PRIMARY, ["--gid", GROUP])):
        if subprocess.run(["getent", "passwd", user.name], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--no-create-home", "--uid", str(user.uid), "--shell", "/bin/sh", *options, user.name],
                           check=True)
    yield
    subprocess.run(["pkill", "-KILL", "-U", f"{SUPPLEMENTARY.uid},{PRIMARY.uid}"], capture_output=True)


def stray_of(user: TestUser) -> subprocess.Popen:
    return subprocess.Popen(["sleep", "600"], user=user.uid, group=GID, extra_groups=[], start_new_session=True, cwd="/",
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_members_of_a_real_group_are_spared_and_a_plain_stray_is_killed(admins, tmp_path):
    tmp_path.chmod(0o755)
    processes = [stray_of(SUPPLEMENTARY), stray_of(PRIMARY), cluster.sleeper(STRAY)]
    try:
        result = cluster.run_leftover(cluster.config(tmp_path, protected_groups=[GROUP]), "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert [t["pid"] for t in report["targets"]] == [processes[2].pid]
        assert report["reasons"]["protected-group"] == 2
        assert cluster.wait_dead(processes[2].pid)
        assert cluster.alive(processes[0].pid) and cluster.alive(processes[1].pid)
    finally:
        cluster.stop(processes)


def test_a_primary_member_missing_from_the_passwd_file_is_found_in_the_user_database(admins, tmp_path):
    """--passwd without the primary member: their primary group comes from the
    system's user database (getpwuid through NSS), looked up for their stray."""
    tmp_path.chmod(0o755)
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(line for line in Path("/etc/passwd").read_text().splitlines(True)
                              if not line.startswith(f"{PRIMARY.name}:")))
    processes = [stray_of(PRIMARY)]
    try:
        result = cluster.run_leftover(cluster.config(tmp_path, protected_groups=[GID]), "--dry-run", "--json",
                                      "--passwd", str(passwd))
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert processes[0].pid not in [t["pid"] for t in report["targets"]]
        assert report["reasons"]["protected-group"] == 1
    finally:
        cluster.stop(processes)


def test_a_group_the_node_does_not_know_kills_nothing(admins, tmp_path):
    tmp_path.chmod(0o755)
    processes = [cluster.sleeper(STRAY)]
    try:
        result = cluster.run_leftover(cluster.config(tmp_path, protected_groups=["lo-no-such-group"]), "--json")
        assert result.returncode == 2 and json.loads(result.stdout)["bailed_out_reason"] == "config"
        assert cluster.alive(processes[0].pid)
    finally:
        cluster.stop(processes)
