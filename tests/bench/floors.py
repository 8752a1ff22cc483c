"""The floors a leftover run is measured against: bare loops over /proc that
decide nothing. Run in-process by the benchmark, or as a whole process
(`python3 -S -m tests.bench.floors 1|2 PROC`) to pair with whole leftover runs."""

import os
import sys


def floor_1(proc_root) -> None:
    """What no /proc reader can avoid: every status read once, the UID taken."""
    for name in os.listdir(proc_root):
        if name.isdigit():
            try:
                with open(os.path.join(proc_root, name, "status"), "rb") as handle:
                    data = handle.read()
            except OSError:
                continue
            start = data.find(b"\nUid:\t") + 6
            int(data[start : data.index(b"\t", start)])


def floor_2(proc_root) -> None:
    """The most a careful reader needs: every status, then stat and cgroup of
    each process of a UID of 1000 or more."""
    for name in os.listdir(proc_root):
        if name.isdigit():
            try:
                with open(os.path.join(proc_root, name, "status"), "rb") as handle:
                    data = handle.read()
                start = data.find(b"\nUid:\t") + 6
                if int(data[start : data.index(b"\t", start)]) >= 1000:
                    for extra in ("stat", "cgroup"):
                        with open(os.path.join(proc_root, name, extra), "rb") as handle:
                            handle.read()
            except OSError:
                continue


if __name__ == "__main__":
    (floor_1 if sys.argv[1] == "1" else floor_2)(sys.argv[2])
