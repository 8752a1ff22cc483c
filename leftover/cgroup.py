"""What /proc/[pid]/cgroup says about Slurm: is this process inside a job?

Pure: bytes in, a verdict out. Slurm puts every job's processes in a job
cgroup: with cgroup v1, `.../slurm[_<node>]/uid_<uid>/job_<id>/...` in the
controllers' paths; with cgroup v2, `.../[<node>_]slurmstepd.scope/job_<id>/...`.
Malformed input raises CgroupFormatError, never anything else.
"""

import re

_V1_JOB = re.compile(r"/slurm(?:_[^/]+)?/uid_\d+/job_\d+(?:/|\Z)")
_V2_JOB = re.compile(r"/(?:[^/]+_)?slurmstepd\.scope/job_\d+(?:/|\Z)")


class CgroupFormatError(ValueError):
    """A cgroup file that does not have the kernel's shape."""


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
    """The first path that is a Slurm job's cgroup (v1 or v2 layout), if any.
    A path inside a user's delegated systemd subtree (user@UID.service) is
    never one: the user could have made it."""
    for path in paths:
        if "/user@" in path:
            continue
        if _V1_JOB.search(path) or _V2_JOB.search(path):
            return path
    return None
