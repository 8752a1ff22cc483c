"""`make deb`'s contract with the build flow administrators know: RELEASE and
PACKAGE from the environment are checked, never silently overridden."""

import os
import subprocess

from tests.conftest import REPO


def make_deb(**environment) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "deb"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **environment}, timeout=60)


def test_release_that_disagrees_with_pyproject_is_an_error():
    done = make_deb(RELEASE="0.0.0-not-this")
    assert done.returncode != 0
    assert "RELEASE=0.0.0-not-this but pyproject.toml says" in done.stderr


def test_the_replaced_package_name_is_refused():
    done = make_deb(PACKAGE="scicomp-leftover")
    assert done.returncode != 0
    assert "replaces scicomp-leftover" in done.stderr


def test_another_package_name_is_refused_not_ignored():
    done = make_deb(PACKAGE="site-leftover")
    assert done.returncode != 0
    assert "debian/control names the package leftover" in done.stderr
