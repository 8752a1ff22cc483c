"""Generated /proc trees for the benchmark: the shape of a busy compute node at
any size, written as the kernel writes status, stat and cgroup files, with
every process in the initial user namespace (ns/user as the link the kernel shows)."""

from pathlib import Path

STATUS = (
    "Name:\t{name}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\nPPid:\t{ppid}\n"
    "TracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\nFDSize:\t64\nGroups:\t\n"
    "NStgid:\t{pid}\nNSpid:\t{pid}\nNSpgid:\t{pid}\nNSsid:\t{pid}\nKthread:\t{kthread}\n"
    "VmPeak:\t   10000 kB\nVmSize:\t   10000 kB\nVmRSS:\t    2000 kB\nThreads:\t1\n"
    "SigQ:\t0/95000\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n"
    "SigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
    "CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n"
    "Seccomp:\t0\nSpeculation_Store_Bypass:\tthread vulnerable\nCpus_allowed:\tffff\nCpus_allowed_list:\t0-15\n"
    "Mems_allowed:\t1\nMems_allowed_list:\t0\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t1\n"
)
STAT = "{pid} ({name}) S {ppid} {pid} {pid} 0 -1 {flags} 100 0 0 0 1 1 0 0 20 0 1 0 {start} 10240000 500 " + " ".join(["0"] * 30) + "\n"
CGROUP_OUTSIDE = "9:name=systemd:/\n6:freezer:/\n4:memory:/\n0::/\n"
CGROUP_JOB = "9:name=systemd:/\n6:freezer:/slurm/uid_{uid}/job_{job}/step_0\n4:memory:/\n0::/\n"
INITIAL_USERNS = "user:[4026531837]"


def write_tree(root: Path, size: int, strays: float) -> None:
    """size processes: a fifth kernel threads, a fifth root daemons, the rest
    user processes, each under a root slurmstepd (one per 20 processes) except
    the fraction `strays`, which sit outside every job."""
    root.mkdir(parents=True)

    def put(pid, name, ppid, uid, kthread=0, cgroup=CGROUP_OUTSIDE, start=1000):
        directory = root / str(pid)
        directory.mkdir()
        (directory / "status").write_text(STATUS.format(name=name, pid=pid, ppid=ppid, uid=uid, kthread=kthread))
        (directory / "stat").write_text(STAT.format(pid=pid, name=name, ppid=ppid, flags=0x00200040 if kthread else 0x400100, start=start))
        (directory / "cgroup").write_text(cgroup)
        (directory / "ns").mkdir()
        (directory / "ns" / "user").symlink_to(INITIAL_USERNS)

    put(1, "init", 0, 0)
    put(2, "kthreadd", 0, 0, kthread=1)
    kernel, daemons = size // 5, size // 5
    pid = 3
    for _ in range(kernel):
        put(pid, "kworker/0:1", 2, 0, kthread=1)
        pid += 1
    for _ in range(daemons):
        put(pid, "daemon", 1, 0)
        pid += 1
    users = size - kernel - daemons - 2
    stray_count = int(users * strays)
    stepd = None
    for index in range(users - stray_count):
        if index % 20 == 0:
            stepd = pid
            put(pid, "slurmstepd", 1, 0)
            pid += 1
            continue
        uid = 5000 + index // 20
        put(pid, "solver", stepd, uid, cgroup=CGROUP_JOB.format(uid=uid, job=stepd))
        pid += 1
    for index in range(stray_count):
        put(pid, "stray", 1, 9000 + index % 50)
        pid += 1
