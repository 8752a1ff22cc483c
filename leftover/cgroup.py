"""What /proc/[pid]/cgroup says about Slurm: is this process inside a job, and
whose job is it?

Pure: bytes in, a verdict out. Malformed input raises CgroupFormatError, never
anything else. It must never take a cgroup that a user could have made for a
job's: a path inside a user's delegated systemd subtree (user@UID.service) is
never a job's, whatever it looks like.

The job cgroup layouts Slurm 22.05 to 26.05 write (fixtures/cgroup/*.source
cite the source file and tag of each):
- cgroup v1: `<prefix>/slurm[_<node>]/uid_<uid>/job_<id>/...` in each
  controller's path (CgroupPrepend, default /slurm or /slurm_%n).
- cgroup v2: `<prefix>/<slice>/[<node>_]slurmstepd.scope/<job>/...` where
  <slice> is system.slice or CgroupSlice= (25.11+, any path), <node>_ is there
  in multiple-slurmd builds, <prefix> is the cgroup of a container slurmd runs
  in, and <job> is `job_<id>` up to 25.11, or from 26.05 the job's
  SLUID (`s` and 13 Crockford base32 digits) unless CgroupJobIdPaths=yes.
"""

import functools
import re
from typing import NamedTuple

_V1_JOB = re.compile(r"/slurm(?:_[^/]+)?/uid_(\d{1,10})/job_\d+(?:/|\Z)")
# print_sluid() (src/common/sluid.c, slurm-26-05-*): 's', then 13 characters of
# "0123456789ABCDEFGHJKMNPQRSTVWXYZ", the first holding only the top 4 bits.
_SLUID = r"s[0-9A-F][0-9A-HJKMNP-TV-Z]{12}"
_V2_JOB = re.compile(r"/(?:[^/]+_)?slurmstepd\.scope/(?:job_\d+|" + _SLUID + r")(?:/|\Z)")
_MAX_UID = 2**32 - 2


class CgroupFormatError(ValueError):
    """A cgroup file that does not have the kernel's shape."""


class JobCgroup(NamedTuple):
    """What one cgroup file says: the Slurm job cgroup it names (None: none)
    and the user that path names (cgroup v1's uid_<N>; None on v2)."""

    path: str | None
    uid: int | None


@functools.lru_cache(maxsize=1024)
def read_job_cgroup(raw: bytes) -> JobCgroup:
    """parse_cgroup, job_cgroup and job_cgroup_uid of one cgroup file's bytes.
    Cached on those bytes: a node has far fewer distinct cgroup files than
    processes (a job's processes share one), and a file is the whole input,
    so an answer found once is the answer every time. Garbled bytes raise
    CgroupFormatError each time (exceptions are not cached)."""
    path = job_cgroup(parse_cgroup(raw))
    return JobCgroup(path, job_cgroup_uid(path))


def parse_cgroup(raw: bytes) -> tuple[str, ...]:
    """The cgroup paths of `hierarchy-ID:controller-list:path` lines."""
    paths = []
    for line in raw.decode("utf-8", "surrogateescape").split("\n"):
        if not line:
            continue
        hierarchy, sep, rest = line.partition(":")
        _controllers, sep2, path = rest.partition(":")
        if not (sep and sep2 and hierarchy.isascii() and hierarchy.isdigit() and path.startswith("/")):
            raise CgroupFormatError(f"not a cgroup line: {line[:60]!r}")
        paths.append(path)
    if not paths:
        raise CgroupFormatError("no cgroup line")
    return tuple(paths)


def job_cgroup(paths: tuple[str, ...]) -> str | None:
    """The first path that is a Slurm job's cgroup (any layout above), if any.
    A path inside a user's delegated systemd subtree (user@UID.service) is
    never one: the user could have made it."""
    for path in paths:
        if "/user@" in path:
            continue
        if _V1_JOB.search(path) or _V2_JOB.search(path):
            return path
    return None


def job_cgroup_uid(path: str | None) -> int | None:
    """The UID a cgroup v1 job path names (`uid_<N>`): the job's user, even
    for the root-owned processes Slurm keeps there. None for a v2 path, which
    names no user, and for anything that is not a job's cgroup."""
    if path is None or "/user@" in path:
        return None
    found = _V1_JOB.search(path)
    if found is None:
        return None
    uid = int(found.group(1))
    return uid if uid <= _MAX_UID else None
