"""A FUSE file system that stops answering: a parallel file system (Slurm
under /opt on NFS or GPFS) whose server is stuck. Run by /usr/bin/python3
(Debian's python3-fusepy):

    /usr/bin/python3 tests/e2e/hung_fs.py MOUNTPOINT queued|taken

Its root answers, and so do /other (a directory) and /squeue, /scontrol and
/getent (root's executable files, whose contents are never served: opening one
never answers); any other name in the root does not exist. Every request below
/other, and every open of a file, gets no answer. With

- queued, it serves one request at a time: once such a request hangs it,
  later ones stay queued in the kernel, where (as in NFS's RPC waits) the
  caller's wait can be ended by a fatal signal but by no other; but a lookup
  in a directory where another lookup hangs waits for that directory's lock
  (fs/fuse/dir.c, fuse_lock_inode: libfuse 2 has no parallel lookups), a
  mutex that not even SIGKILL interrupts;
- taken, each request is taken by a thread of its own (libfuse starts up to
  ten) and never answered: the caller's wait is one that not even SIGKILL
  ends (fs/fuse/dev.c, request_wait_answer: a request the server has read,
  once a fatal signal is pending, is waited for with an uninterruptible
  wait_event), the state in which nothing can end a process.

It serves until killed; killing it aborts the connection, which ends every
wait on it."""

import errno
import stat
import sys
import threading

from fusepy import FUSE, FuseOSError, Operations

DIRECTORIES = ("/", "/other")
PROGRAMS = ("/squeue", "/scontrol", "/getent")


class Hung(Operations):
    def getattr(self, path, fh=None):
        if path in DIRECTORIES:
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_uid": 0, "st_gid": 0}
        if path in PROGRAMS:
            return {"st_mode": stat.S_IFREG | 0o755, "st_nlink": 1, "st_uid": 0, "st_gid": 0, "st_size": 4096}
        if path.startswith("/other/"):
            never_answer()
        raise FuseOSError(errno.ENOENT)

    def open(self, path, flags):
        never_answer()

    def readdir(self, path, fh):
        return [".", ".."]


def never_answer():
    threading.Event().wait()


if __name__ == "__main__":
    FUSE(Hung(), sys.argv[1], foreground=True, nothreads=sys.argv[2] == "queued")
