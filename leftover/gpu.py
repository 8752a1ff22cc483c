"""Which GPU device files a target has open: /dev/nvidia*, /dev/dri/renderD*,
/dev/kfd, as the kernel names them in /proc/[pid]/fd.

Only targets are looked at, after the plan is made, so a clean node pays
nothing. It is told (log line, --json, a metric) and never decides anything:
it never raises, a process that vanishes or an fd table that cannot be read
simply holds nothing that can be shown. Only the links are read (readlink on
/proc, which touches no file system), so a hung mount cannot stall it; at most
MAX_FDS descriptors of one process are looked at.
"""

import os
from pathlib import Path

MAX_FDS = 65536
_PREFIXES = ("/dev/nvidia", "/dev/dri/renderD")
_EXACT = ("/dev/kfd",)


def is_gpu_device(link: str) -> bool:
    """A path, as /proc/[pid]/fd shows it, that names a GPU device file."""
    return link.startswith(_PREFIXES) or link in _EXACT


def gpu_devices(proc_root: Path, pid: int) -> tuple[str, ...]:
    """The GPU device files pid has open, sorted, each once; () if none or
    if its descriptors cannot be read."""
    found = set()
    try:
        with os.scandir(f"{proc_root}/{pid}/fd") as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_FDS:
                    break
                try:
                    link = os.readlink(entry.path)
                except OSError:
                    continue
                if is_gpu_device(link):
                    found.add(link)
    except OSError:
        return ()
    return tuple(sorted(found))
