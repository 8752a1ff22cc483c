"""Shared test helpers: where the fixtures are, and a file system that stops answering."""

import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_NODE = REPO / "fixtures" / "example-node"
EXAMPLE_PROC = EXAMPLE_NODE / "proc"
HUNG_FS = REPO / "tests" / "e2e" / "hung_fs.py"


@pytest.fixture
def example_proc() -> Path:
    return EXAMPLE_PROC


def fixture_bytes(pid: int, name: str) -> bytes:
    return (EXAMPLE_PROC / str(pid) / name).read_bytes()


class HungFileSystem:
    """tests/e2e/hung_fs.py, a real FUSE file system that stops answering,
    mounted under a test's directory; released (its server killed, which ends
    every wait on it, and unmounted) at the end of the test."""

    def __init__(self, directory: Path) -> None:
        self.mountpoint = directory / "hung"
        self.server: subprocess.Popen | None = None
        self.blocker: subprocess.Popen | None = None

    def mount(self, mode: str) -> Path:
        """Its mountpoint, serving in mode ('queued': its one thread already
        held by a request that never gets an answer; 'taken')."""
        self.mountpoint.mkdir()
        self.server = subprocess.Popen(["/usr/bin/python3", str(HUNG_FS), str(self.mountpoint), mode])
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.mountpoint):
            assert time.monotonic() < deadline and self.server.poll() is None, "the hung file system did not mount"
            time.sleep(0.05)
        if mode == "queued":
            self.blocker = subprocess.Popen(["stat", str(self.mountpoint / "other" / "busy")],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while any(wchan == "fuse_dev_do_read" for wchan in self._wchans()):  # until it has taken the blocker's request
                assert time.monotonic() < deadline + 10, "the hung file system never took the first request"
                time.sleep(0.05)
        return self.mountpoint

    def release(self) -> None:
        if self.server is not None:
            self.server.kill()  # aborts the connection: every wait on it ends
            self.server.wait()
            subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)
        if self.blocker is not None:
            self.blocker.wait(timeout=30)
        self.server = self.blocker = None

    def _wchans(self) -> list[str]:
        return [(task / "wchan").read_text() for task in Path(f"/proc/{self.server.pid}/task").iterdir()]


@pytest.fixture
def hung_file_system(tmp_path):
    if os.geteuid() != 0 or not Path("/usr/lib/python3/dist-packages/fusepy.py").exists() or not Path("/dev/fuse").exists():
        pytest.skip("needs root, FUSE and python3-fusepy (make deps)")
    hung = HungFileSystem(tmp_path)
    yield hung
    hung.release()


def state_of(pid: int) -> str:
    """The kernel's one-letter state of pid, '' once it is reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return ""
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3].decode()
