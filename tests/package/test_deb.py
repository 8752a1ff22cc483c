"""The real .deb on this machine: lintian, dpkg -i, a real run of the installed
/usr/sbin/leftover against the test cluster (also with only the capabilities
leftover.service leaves it), the systemd units and their enablement, an
upgrade over a locally edited config, then remove and purge with nothing left
behind, and the migration from scicomp-leftover.

The package under test is $LEFTOVER_DEB, or the one `make deb` builds."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e import cluster
from tests.e2e.cluster import EXEMPT_BY_NAME, JOB, STRAY

pytestmark = pytest.mark.package

CONFFILES = (Path("/etc/leftover.conf"), Path("/etc/cron.d/leftover"))
# /etc/leftover.conf is the package's, but written by postinst only where none
# exists, not a dpkg conffile: see test_migrating_from_the_real_scicomp_leftover.
DPKG_CONFFILES = {"/etc/cron.d/leftover"}
SHIPPED_CONFIG = "usr/share/leftover/leftover.conf"
TIMER_LINK = Path("/etc/systemd/system/timers.target.wants/leftover.timer")


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
    shipped = tree / SHIPPED_CONFIG
    shipped.write_text(shipped.read_text().replace('"slew_max": 30', '"slew_max": 20'))
    md5 = subprocess.run(["md5sum", SHIPPED_CONFIG], cwd=tree, capture_output=True, text=True, check=True).stdout
    sums = tree / "DEBIAN" / "md5sums"
    sums.write_text("".join(md5 if line.endswith(f" {SHIPPED_CONFIG}\n") else line for line in sums.read_text().splitlines(True)))
    out = tree.parent / f"leftover_{version}+upgrade1_amd64.deb"
    subprocess.run(["fakeroot", "dpkg-deb", "--root-owner-group", "--build", str(tree), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def installed(deb):
    """A fresh install: no leftover, no scicomp-leftover, and no
    /etc/leftover.conf that an interrupted session left (postinst would keep
    it, as it keeps a site's)."""
    if package_state() != "unknown":
        dpkg("--purge", "leftover")
    subprocess.run(["dpkg", "--purge", "scicomp-leftover"], capture_output=True)
    Path("/etc/leftover.conf").unlink(missing_ok=True)
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
    for example in ("leftover-alerts.yml", "leftover-alerts.test.yml"):
        assert Path("/usr/share/doc/leftover/examples", example).read_bytes() == (REPO / "debian" / "examples" / example).read_bytes()
    conffiles = dpkg("--status", "leftover").stdout.split("Conffiles:\n", 1)[1]
    assert {line.split()[0] for line in conffiles.splitlines() if line.startswith(" /")} == DPKG_CONFFILES
    assert Path("/etc/leftover.conf").read_bytes() == Path("/", SHIPPED_CONFIG).read_bytes()


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


def unit_path(name: str) -> Path:
    """Where the package put a unit (debhelper's /lib/systemd/system on Debian 12)."""
    listed = [Path(f) for f in dpkg("-L", "leftover").stdout.splitlines() if f.endswith(f"/systemd/system/{name}")]
    assert len(listed) == 1, listed
    return listed[0]


def unit_setting(name: str, key: str) -> str:
    values = [line.split("=", 1)[1] for line in unit_path(name).read_text().splitlines() if line.startswith(f"{key}=")]
    assert len(values) == 1, f"{name}: {key}= {values}"
    return values[0]


def test_systemd_units_are_installed_and_the_timer_enabled(installed):
    service, timer = unit_path("leftover.service"), unit_path("leftover.timer")
    assert service.is_file() and timer.is_file()
    assert TIMER_LINK.is_symlink() and TIMER_LINK.resolve() == timer.resolve()
    # The service is started by the timer only: nothing enables it on its own.
    assert not list(Path("/etc/systemd/system").rglob("leftover.service"))
    assert Path("/var/lib/systemd/deb-systemd-helper-enabled/leftover.timer.dsh-also").exists()


def test_systemd_analyze_verifies_the_installed_units(installed):
    done = subprocess.run(["systemd-analyze", "verify", str(unit_path("leftover.timer")), str(unit_path("leftover.service"))],
                          capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stdout + done.stderr


def sandboxed_like_the_service(capabilities: str) -> list[str]:
    """setpriv with the bounding set and no_new_privs leftover.service gives
    (systemd itself does not run here), then the service's command line."""
    bounding = ",".join(["-all"] + [f"+{cap.removeprefix('CAP_').lower()}" for cap in capabilities.split()])
    assert unit_setting("leftover.service", "NoNewPrivileges") == "yes"
    return ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--no-new-privs",
            *unit_setting("leftover.service", "ExecStart").split()]


@pytest.mark.parametrize("dropped", [None, "CAP_KILL"])
def test_the_service_capabilities_are_enough_and_each_counts(installed, tmp_path, dropped):
    """The installed binary, with only the unit's CapabilityBoundingSet, kills a
    stray and spares a job user; without CAP_KILL from that set (the control
    that shows the set is in force) the stray lives."""
    capabilities = unit_setting("leftover.service", "CapabilityBoundingSet")
    assert set(capabilities.split()) == {"CAP_KILL", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH"}
    if dropped:
        capabilities = " ".join(cap for cap in capabilities.split() if cap != dropped)
    job_id, job_pid = cluster.submit_job(JOB)
    stray = cluster.sleeper(STRAY)
    try:
        done = subprocess.run([*sandboxed_like_the_service(capabilities), "--lock-file", str(tmp_path / "lock")],
                              capture_output=True, text=True, timeout=60)
        if dropped is None:
            assert done.returncode == 0, done.stderr
            assert cluster.wait_dead(stray.pid)
        else:  # the kernel refused the signal: nothing signalled, exit 1 (README, Exit codes)
            assert done.returncode == 1, done.stderr
            assert cluster.alive(stray.pid)
        assert cluster.alive(job_pid)
    finally:
        cluster.stop([stray])
        cluster.cancel(job_id)


def syscall_set(name: str, seen: dict[str, frozenset[str]]) -> frozenset[str]:
    """The system calls a systemd filter group such as @system-service names,
    expanded through its nested groups by systemd-analyze itself."""
    if name not in seen:
        listing = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True, check=True).stdout
        members = [line.strip() for line in listing.splitlines()[1:] if line.strip() and not line.strip().startswith("#")]
        seen[name] = frozenset().union(*[syscall_set(m, seen) if m.startswith("@") else {m} for m in members])
    return seen[name]


def allowed_system_calls() -> frozenset[str]:
    seen: dict[str, frozenset[str]] = {}
    allowed, denied = frozenset(), frozenset()
    for line in unit_path("leftover.service").read_text().splitlines():
        if line.startswith("SystemCallFilter=~"):
            denied |= frozenset().union(*[syscall_set(g, seen) if g.startswith("@") else {g} for g in line[18:].split()])
        elif line.startswith("SystemCallFilter="):
            allowed |= frozenset().union(*[syscall_set(g, seen) if g.startswith("@") else {g} for g in line[17:].split()])
    assert allowed, "leftover.service has no SystemCallFilter="
    return allowed - denied


def test_a_real_run_stays_within_the_service_system_call_filter(installed, tmp_path):
    """strace a real run, squeue and scontrol included, that kills a stray: every
    system call it makes is one SystemCallFilter= allows, every socket family
    one RestrictAddressFamilies= allows, and no memory is made writable and
    executable (MemoryDenyWriteExecute=)."""
    job_id, _ = cluster.submit_job(JOB)
    stray = cluster.sleeper(STRAY)
    trace = tmp_path / "trace"
    try:
        done = subprocess.run(["strace", "-f", "-qq", "-o", str(trace),
                               *sandboxed_like_the_service(unit_setting("leftover.service", "CapabilityBoundingSet")),
                               "--lock-file", str(tmp_path / "lock")], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert cluster.wait_dead(stray.pid)
    finally:
        cluster.stop([stray])
        cluster.cancel(job_id)
    # What setpriv does before it executes leftover, systemd does before the service starts.
    lines = trace.read_text().splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if 'execve("/usr/sbin/leftover"' in line):]
    text = "\n".join(lines)
    calls = {m[1] for line in lines if (m := re.match(r"^\d+\s+([a-z0-9_]+)\(", line))}
    assert {"kill", "pidfd_send_signal"} & calls, "the trace holds no signal sent"
    assert "squeue" in text, "Slurm was not asked"
    assert sorted(calls - allowed_system_calls()) == []
    families = set(re.findall(r"socket\((AF_[A-Z0-9]+)", text))
    assert families <= set(unit_setting("leftover.service", "RestrictAddressFamilies").split()), families
    assert "AF_INET" in families or "AF_INET6" in families, "slurmctld was not reached"
    # systemd's MemoryDenyWriteExecute= refuses a mapping both writable and
    # executable, and any mprotect() that makes memory executable.
    assert not [line for line in lines if re.search(r"PROT_WRITE\|PROT_EXEC|PROT_EXEC\|PROT_WRITE", line)
                or re.search(r"\b(pkey_)?mprotect\(.*PROT_EXEC", line)]


CRON_UNDER = """set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
if [ "$1" = systemd ]; then mkdir -p /run/systemd/system; fi
mount --bind "$2" /usr/sbin/leftover
sh -c "$3"
"""


def cron_entry_runs_leftover(tmp_path: Path, init: str) -> bool:
    """Run the installed cron line as cron would, in a mount namespace of its
    own where /usr/sbin/leftover is a stand-in that leaves a mark, with or
    without /run/systemd/system (the sign that systemd is the init)."""
    line = next(line for line in Path("/etc/cron.d/leftover").read_text().splitlines() if line.startswith("*/10 "))
    command = line.split(None, 6)[6]
    mark = tmp_path / f"ran-under-{init}"
    stand_in = tmp_path / "leftover"
    stand_in.write_text(f"#!/bin/sh\ntouch {mark}\n")
    stand_in.chmod(0o755)
    subprocess.run(["unshare", "--mount", "sh", "-c", CRON_UNDER, "cron-under", init, str(stand_in), command],
                   check=True, capture_output=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return mark.exists()


def test_cron_entry_yields_to_the_timer_where_systemd_runs(installed, tmp_path):
    assert not cron_entry_runs_leftover(tmp_path, "systemd")
    assert cron_entry_runs_leftover(tmp_path, "sysvinit")


def test_upgrade_keeps_the_locally_edited_config(installed, upgrade_deb):
    edited = '{"protected_users": ["slurm"], "grace_seconds": 3}\n'
    Path("/etc/leftover.conf").write_text(edited)
    dpkg("-i", str(upgrade_deb))
    assert "+upgrade1" in dpkg("--status", "leftover").stdout
    assert Path("/etc/leftover.conf").read_text() == edited
    Path("/etc/leftover.conf.dpkg-dist").unlink(missing_ok=True)
    subprocess.run(["/usr/sbin/leftover", "--version"], check=True, capture_output=True)
    assert TIMER_LINK.is_symlink() and unit_path("leftover.service").is_file()


def test_upgrade_keeps_a_timer_the_administrator_disabled_disabled(installed, upgrade_deb):
    subprocess.run(["systemctl", "disable", "leftover.timer"], check=True, capture_output=True)
    assert not TIMER_LINK.is_symlink()
    dpkg("-i", str(upgrade_deb))
    assert not TIMER_LINK.is_symlink()
    subprocess.run(["systemctl", "enable", "leftover.timer"], check=True, capture_output=True)


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
    assert not TIMER_LINK.is_symlink()
    assert not list(Path("/var/lib/systemd/deb-systemd-helper-enabled").rglob("leftover.*"))
    assert not [f for f in files if f.name.startswith("leftover.") and "/systemd/" in str(f) and f.exists()]


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


def real_scicomp_leftover(directory: Path) -> Path:
    """A package shaped exactly like FredHutch's scicomp-leftover 0.2.1 (its
    Makefile, debian/control, postinst and prerm): the onedir bundle under
    /usr/local/lib/leftover, the /usr/local/sbin link made by postinst, and no
    conffile: no /etc/leftover.conf, no cron file. Sites wrote those by hand."""
    tree = directory / "scicomp-leftover_0.2.1"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr/local/lib/leftover/_internal").mkdir(parents=True)
    (tree / "usr/local/sbin").mkdir(parents=True)
    (tree / "usr/local/lib/leftover/leftover").write_text("#!/bin/sh\nexit 0\n")
    (tree / "usr/local/lib/leftover/leftover").chmod(0o755)
    (tree / "usr/local/lib/leftover/_internal/base_library.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (tree / "DEBIAN/control").write_text(
        "Package: scicomp-leftover\nVersion: 0.2.1\nSection: utils\nPriority: optional\nArchitecture: amd64\n"
        "Depends: python3,slurm-smd-client\nMaintainer: Scientific Computing <scicomp@fredhutch.org>\n"
        "Description: The leftover script that kills processes without a job\n"
    )
    (tree / "DEBIAN/postinst").write_text("#!/bin/sh\nset -e \nln -sf /usr/local/lib/leftover/leftover /usr/local/sbin/leftover\n")
    (tree / "DEBIAN/prerm").write_text("#!/bin/sh\nrm -f /usr/local/sbin/leftover || true\n")
    for script in ("postinst", "prerm"):
        (tree / "DEBIAN" / script).chmod(0o755)
    out = directory / "scicomp-leftover_0.2.1.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(out)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("force", [[], ["--force-confnew"]], ids=["no-force", "force-confnew"])
def test_migrating_from_the_real_scicomp_leftover(deb, tmp_path, force):
    """The site's hand-made /etc/leftover.conf (its protected users, the old
    tool's slew) survives dpkg -i with stdin closed, no prompt, even with
    --force-confnew, and the installed leftover runs with it."""
    for package in ("leftover", "scicomp-leftover"):
        subprocess.run(["dpkg", "--purge", package], capture_output=True)
    # The real package lists /usr/local/lib and /usr/local/sbin as its own, so
    # dpkg removes them with it when they are empty: put back what was here.
    local_dirs = [d for d in (Path("/usr/local/lib"), Path("/usr/local/sbin")) if d.is_dir()]
    # The real package depends on SchedMD's slurm-smd-client, which this machine does not have.
    subprocess.run(["dpkg", "--force-depends", "-i", str(real_scicomp_leftover(tmp_path))], check=True, capture_output=True)
    assert Path("/usr/local/sbin/leftover").is_symlink()
    site_config = f'{{"protected_users": ["slurm", "{EXEMPT_BY_NAME.name}"], "debuglevel": "info", "slew": 10, "slew_max": 40}}\n'
    Path("/etc/leftover.conf").write_text(site_config)
    Path("/etc/leftover.conf").chmod(0o644)
    try:
        done = subprocess.run(["dpkg", *force, "-i", str(deb)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "leftover.conf" not in done.stdout + done.stderr
        assert package_state() == "installed"
        assert subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "scicomp-leftover"],
                              capture_output=True, text=True).stdout in ("", "not-installed")
        assert not Path("/usr/local/lib/leftover").exists() and not os.path.lexists("/usr/local/sbin/leftover")
        assert Path("/etc/leftover.conf").read_text() == site_config
        assert not list(Path("/etc").glob("leftover.conf.*"))
        done = subprocess.run(["/usr/sbin/leftover", "--dry-run", "--no-splay", "--verbose"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    finally:
        for package in ("leftover", "scicomp-leftover"):
            subprocess.run(["dpkg", "--purge", package], capture_output=True)
        for directory in local_dirs:
            directory.mkdir(mode=0o755, exist_ok=True)
