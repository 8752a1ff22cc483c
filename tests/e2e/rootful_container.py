"""What a rootful container runtime does with remapped UIDs (podman
--userns=auto, LXC): as root, make a user namespace, map its UIDs and GIDs
0-65535 onto host FIRST and up, become its UID 0 and exec the command, which
runs as host UID FIRST. Prints the command's pid, then waits for it.

usage: rootful_container.py FIRST COMMAND [ARGUMENT...]
"""

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000  # include/uapi/linux/sched.h


def main() -> int:
    first, argv = int(sys.argv[1]), sys.argv[2:]
    unshared_read, unshared_write = os.pipe()
    mapped_read, mapped_write = os.pipe()
    child = os.fork()
    if child == 0:
        if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWUSER) != 0:
            os._exit(1)
        os.write(unshared_write, b"u")
        if os.read(mapped_read, 1) != b"m":
            os._exit(1)
        os.setresgid(0, 0, 0)  # a privileged parent wrote gid_map: setgroups stays allowed
        os.setgroups([])
        os.setresuid(0, 0, 0)
        os.execvp(argv[0], argv)
    if os.read(unshared_read, 1) != b"u":
        return 1
    for map_file in ("uid_map", "gid_map"):
        with open(f"/proc/{child}/{map_file}", "w") as handle:
            handle.write(f"0 {first} 65536\n")
    os.write(mapped_write, b"m")
    print(child, flush=True)
    return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])


if __name__ == "__main__":
    sys.exit(main())
