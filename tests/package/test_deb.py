"""The real .deb on this machine: lintian, dpkg -i, a real run of the installed
/usr/sbin/leftover against the test cluster, an upgrade over a locally edited
conffile, then remove and purge with nothing left behind.

The package under test is $LEFTOVER_DEB, or the one `make deb` builds."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e import cluster
from tests.e2e.cluster import JOB, STRAY

pytestmark = pytest.mark.package

CONFFILES = (Path("/etc/leftover.conf"), Path("/etc/cron.d/leftover"))


def dpkg(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dpkg", "--force-confdef", "--force-confold", *arguments],
        capture_output=True, text=True, check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def package_state() -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "leftover"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else "unknown"


@pytest.fixture(scope="module")
def deb(slurm) -> Path:
    if os.environ.get("LEFTOVER_DEB"):
        return Path(os.environ["LEFTOVER_DEB"])
    done = subprocess.run(["make", "-s", "deb"], cwd=REPO, capture_output=True, text=True, check=True)
    return REPO / done.stdout.strip().splitlines()[-1].removeprefix("deb: wrote ")


@pytest.fixture(scope="module")
def upgrade_deb(deb, tmp_path_factory) -> Path:
    """The same package as a newer version whose shipped config changed, as the
    next release's would: dpkg must then keep the administrator's edit."""
    tree = tmp_path_factory.mktemp("upgrade") / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    version = next(line.split(": ", 1)[1] for line in control.read_text().splitlines() if line.startswith("Version: "))
    control.write_text(control.read_text().replace(f"Version: {version}", f"Version: {version}+upgrade1"))
    shipped = tree / "etc" / "leftover.conf"
    shipped.write_text(shipped.read_text().replace('"slew_max": 30', '"slew_max": 20'))
    md5 = subprocess.run(["md5sum", "etc/leftover.conf"], cwd=tree, capture_output=True, text=True, check=True).stdout
    sums = tree / "DEBIAN" / "md5sums"
    sums.write_text("".join(md5 if line.endswith(" etc/leftover.conf\n") else line for line in sums.read_text().splitlines(True)))
    out = tree.parent / f"leftover_{version}+upgrade1_amd64.deb"
    subprocess.run(["fakeroot", "dpkg-deb", "--root-owner-group", "--build", str(tree), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def installed(deb):
    if package_state() != "unknown":
        dpkg("--purge", "leftover")
    dpkg("-i", str(deb))
    yield deb
    if package_state() != "unknown":
        dpkg("--purge", "leftover")


def test_lintian_is_silent(deb):
    done = subprocess.run(["lintian", "--fail-on", "error,warning", str(deb)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [line for line in done.stdout.splitlines() if line[:2] in ("E:", "W:")]


def test_installs_under_usr_with_conffiles(installed):
    files = dpkg("-L", "leftover").stdout.splitlines()
    assert not [f for f in files if f.startswith("/usr/local")]
    assert os.path.realpath("/usr/sbin/leftover") == "/usr/lib/leftover/leftover"
    assert Path("/usr/share/man/man8/leftover.8.gz").exists()
    assert Path("/usr/share/doc/leftover/copyright").exists()
    conffiles = dpkg("--status", "leftover").stdout.split("Conffiles:\n", 1)[1]
    assert {line.split()[0] for line in conffiles.splitlines() if line.startswith(" /")} == {str(p) for p in CONFFILES}


def test_installed_binary_reports_the_version_from_pyproject(installed):
    done = subprocess.run(["/usr/sbin/leftover", "--version"], capture_output=True, text=True, check=True)
    version = installed.name.split("_")[1]
    assert done.stdout.strip() == f"leftover {version}"


def test_shipped_config_is_valid(installed):
    assert json.loads(Path("/etc/leftover.conf").read_text())["protected_users"] == ["slurm"]
    done = subprocess.run(["/usr/sbin/leftover", "--dry-run", "--no-splay", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_installed_binary_kills_a_stray_and_spares_a_job_user(installed, tmp_path):
    job_id, job_pid = cluster.submit_job(JOB)
    stray = cluster.sleeper(STRAY)
    try:
        done = subprocess.run(
            ["/usr/sbin/leftover", "--no-splay", "--lock-file", str(tmp_path / "lock")],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert cluster.wait_dead(stray.pid)
        assert cluster.alive(job_pid)
    finally:
        cluster.stop([stray])
        cluster.cancel(job_id)


def test_upgrade_keeps_the_locally_edited_config(installed, upgrade_deb):
    edited = '{"protected_users": ["slurm"], "grace_seconds": 3}\n'
    Path("/etc/leftover.conf").write_text(edited)
    dpkg("-i", str(upgrade_deb))
    assert "+upgrade1" in dpkg("--status", "leftover").stdout
    assert Path("/etc/leftover.conf").read_text() == edited
    Path("/etc/leftover.conf.dpkg-dist").unlink(missing_ok=True)
    subprocess.run(["/usr/sbin/leftover", "--version"], check=True, capture_output=True)


def test_remove_keeps_config_and_purge_leaves_nothing(installed):
    files = [Path(f) for f in dpkg("-L", "leftover").stdout.splitlines()]
    owned = [f for f in files if f.is_file() and not str(f).startswith("/etc/")]
    Path("/etc/leftover.conf").write_text('{"protected_users": ["slurm"], "grace_seconds": 4}\n')
    dpkg("-r", "leftover")
    assert not any(f.exists() for f in owned)
    assert not Path("/usr/lib/leftover").exists() and not Path("/usr/sbin/leftover").exists()
    assert "grace_seconds" in Path("/etc/leftover.conf").read_text()
    dpkg("-P", "leftover")
    assert package_state() == "unknown"
    leftovers = [p for p in CONFFILES for p in (p, Path(f"{p}.dpkg-old"), Path(f"{p}.dpkg-dist")) if p.exists()]
    assert leftovers == []


def fake_scicomp_leftover(directory: Path) -> Path:
    """A package shaped like the one leftover replaces: its bundle under
    /usr/local/lib/leftover, a symlink made by its postinst, /etc/leftover.conf."""
    tree = directory / "scicomp-leftover"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/local/lib/leftover").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "usr/local/lib/leftover/leftover").write_text("#!/bin/sh\nexit 0\n")
    (tree / "usr/local/lib/leftover/leftover").chmod(0o755)
    (tree / "etc/leftover.conf").write_text('{"protected_users": ["slurm"], "debuglevel": "info", "slew": 10, "slew_max": 40}\n')
    (tree / "DEBIAN/control").write_text(
        "Package: scicomp-leftover\nVersion: 0.0.2\nArchitecture: amd64\nMaintainer: x <x@localhost.invalid>\n"
        "Description: the tool leftover replaces\n"
    )
    (tree / "DEBIAN/conffiles").write_text("/etc/leftover.conf\n")
    (tree / "DEBIAN/postinst").write_text("#!/bin/sh\nset -e\nln -sf /usr/local/lib/leftover/leftover /usr/local/sbin/leftover\n")
    (tree / "DEBIAN/prerm").write_text("#!/bin/sh\nset -e\nrm -f /usr/local/sbin/leftover\n")
    for script in ("postinst", "prerm"):
        (tree / "DEBIAN" / script).chmod(0o755)
    out = directory / "scicomp-leftover_0.0.2_amd64.deb"
    subprocess.run(["fakeroot", "dpkg-deb", "--root-owner-group", "--build", str(tree), str(out)], check=True, capture_output=True)
    return out


def test_installing_over_scicomp_leftover_replaces_it_and_keeps_its_config(deb, tmp_path):
    for package in ("leftover", "scicomp-leftover"):
        subprocess.run(["dpkg", "--purge", package], capture_output=True)
    dpkg("-i", str(fake_scicomp_leftover(tmp_path)))
    site_config = '{"protected_users": ["slurm", "root"], "debuglevel": "info", "slew": 5, "slew_max": 20}\n'
    Path("/etc/leftover.conf").write_text(site_config)
    try:
        dpkg("-i", str(deb))
        states = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ", "scicomp-leftover"], capture_output=True, text=True)
        assert states.stdout.strip() in ("", "not-installed", "config-files")
        assert not Path("/usr/local/lib/leftover").exists() and not Path("/usr/local/sbin/leftover").exists()
        assert Path("/etc/leftover.conf").read_text() == site_config
        done = subprocess.run(["/usr/sbin/leftover", "--dry-run", "--no-splay"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    finally:
        for package in ("leftover", "scicomp-leftover"):
            subprocess.run(["dpkg", "--purge", package], capture_output=True)
