"""A FUSE file system whose root answers and whose every other path never
does: a parallel file system (Slurm under /opt on NFS or GPFS) that stopped
answering. Run by /usr/bin/python3 (Debian's python3-fusepy):

    /usr/bin/python3 tests/e2e/hung_fs.py MOUNTPOINT

It serves one request at a time: once a lookup below /other hangs it, later
requests (in other directories, whose locks that lookup does not hold) stay
queued in the kernel, where (as in NFS's RPC waits) the caller's wait can be
ended by a fatal signal but by no other. It serves until killed; killing it
aborts the connection, which ends every wait on it."""

import stat
import sys
import threading

from fusepy import FUSE, Operations

ANSWERED = ("/", "/other")  # directories that answer; a lookup below /other keeps the server busy


class Hung(Operations):
    def getattr(self, path, fh=None):
        if path in ANSWERED:
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_uid": 0, "st_gid": 0}
        threading.Event().wait()  # never answers

    def readdir(self, path, fh):
        return [".", ".."]


if __name__ == "__main__":
    FUSE(Hung(), sys.argv[1], foreground=True, nothreads=True)
