"""The Debian source package's files agree with the project's: debian/changelog
is in step with pyproject.toml's version and CHANGELOG.md's releases, and the
systemd units pass `systemd-analyze verify`. Plain file checks: no root, no
build."""

import re
import shutil
import subprocess
import tomllib
from datetime import UTC
from email.utils import parsedate_to_datetime

import pytest

from tests.conftest import REPO

HEADER = re.compile(r"^leftover \((?P<version>[^)]+)\) (?P<distribution>[^;]+); urgency=\w+$")
TRAILER = re.compile(r"^ -- .+ <[^>]+>  (?P<date>.+)$")
RELEASED = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d{2}-\d{2})$")


def debian_entries(text: str) -> list[dict]:
    """Each entry of a debian/changelog: version, distribution and the UTC day of its trailer."""
    entries = []
    for line in text.splitlines():
        if header := HEADER.match(line):
            entries.append({"version": header["version"], "distribution": header["distribution"], "date": None})
        elif trailer := TRAILER.match(line):
            assert entries and entries[-1]["date"] is None, f"trailer without its header: {line!r}"
            entries[-1]["date"] = parsedate_to_datetime(trailer["date"]).astimezone(UTC).date().isoformat()
    assert entries and all(entry["date"] for entry in entries), "debian/changelog: every entry needs a header and a trailer"
    return entries


def released_in_changelog_md(text: str) -> dict[str, str]:
    """CHANGELOG.md's released versions (Keep a Changelog: '## [1.2.0] - 2026-12-01') and their days."""
    return {match["version"]: match["date"] for line in text.splitlines() if (match := RELEASED.match(line))}


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def disagreements(debian: list[dict], released: dict[str, str], version: str) -> list[str]:
    found = []
    top = debian[0]
    if top["version"] != version:
        found.append(f"debian/changelog's newest entry is {top['version']}, pyproject.toml says {version}")
    if version in released and top["distribution"] == "UNRELEASED":
        found.append(f"CHANGELOG.md has released {version}; debian/changelog's entry for it is still UNRELEASED")
    if version not in released and top["distribution"] != "UNRELEASED":
        found.append(f"debian/changelog releases {top['version']} to {top['distribution']}; CHANGELOG.md has not released it")
    for entry in debian[1:]:
        if entry["distribution"] == "UNRELEASED":
            found.append(f"debian/changelog: only the newest entry may be UNRELEASED, not {entry['version']}")
    debian_released = {entry["version"]: entry["date"] for entry in debian if entry["distribution"] != "UNRELEASED"}
    for number, day in released.items():
        if number not in debian_released:
            found.append(f"CHANGELOG.md released {number}; debian/changelog has no released entry for it")
        elif debian_released[number] != day:
            found.append(f"{number}: released on {day} in CHANGELOG.md, on {debian_released[number]} in debian/changelog")
    for number in debian_released.keys() - released.keys():
        found.append(f"debian/changelog released {number}; CHANGELOG.md has no section for it")
    return found


def test_debian_changelog_agrees_with_pyproject_and_changelog_md():
    debian = debian_entries((REPO / "debian" / "changelog").read_text())
    released = released_in_changelog_md((REPO / "CHANGELOG.md").read_text())
    assert disagreements(debian, released, project_version()) == []


def test_each_kind_of_disagreement_is_caught():
    unreleased = [{"version": "0.2.0", "distribution": "UNRELEASED", "date": "2026-12-02"},
                  {"version": "0.1.0", "distribution": "unstable", "date": "2026-12-01"}]
    assert disagreements(unreleased, {"0.1.0": "2026-12-01"}, "0.2.0") == []
    assert disagreements(unreleased, {"0.1.0": "2026-12-01"}, "0.3.0")
    assert disagreements(unreleased, {"0.1.0": "2026-11-30"}, "0.2.0")
    assert disagreements(unreleased, {"0.1.0": "2026-12-01", "0.2.0": "2026-12-02"}, "0.2.0")
    assert disagreements(unreleased, {}, "0.2.0")
    released = [{**unreleased[0], "distribution": "unstable"}, unreleased[1]]
    assert disagreements(released, {"0.1.0": "2026-12-01"}, "0.2.0")
    assert disagreements(released, {"0.1.0": "2026-12-01", "0.2.0": "2026-12-02"}, "0.2.0") == []


@pytest.mark.skipif(not shutil.which("dpkg-parsechangelog"), reason="dpkg-dev is not installed")
def test_dpkg_reads_the_debian_changelog():
    done = subprocess.run(["dpkg-parsechangelog", "-l", str(REPO / "debian" / "changelog"), "-SVersion"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == project_version()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd is not installed")
def test_systemd_units_verify_offline(tmp_path):
    """The units as written, before any install: the program is not there yet,
    so /bin/true stands in for it (the package tests verify the installed units
    with the real binary and man page)."""
    for name in ("leftover.service", "leftover.timer"):
        text = (REPO / "debian" / name).read_text()
        (tmp_path / name).write_text(text.replace("ExecStart=/usr/sbin/leftover", "ExecStart=/bin/true"))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", "leftover.timer", "leftover.service"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
