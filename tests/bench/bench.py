"""`make bench`: what a leftover run costs, printed as one table.

A benchmark, not a test: it asserts nothing and prints figures measured on this
machine, with the targets beside them. Parts that need root, the frozen binary
or the real test cluster say so and are skipped where those are missing.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from leftover.decide import Facts, JobAnswer
from leftover.scan import boottime_ticks
from leftover.survey import look, look_again
from tests.bench.faketree import write_tree
from tests.bench.floors import floor_1, floor_2
from tests.conftest import REPO

SIZES = (1_000, 10_000, 50_000)
# What `make deb` froze (debian/rules runs PyInstaller in its copy of the source, build/deb/leftover).
FROZEN = REPO / "build" / "deb" / "leftover" / "build" / "pyinstaller" / "dist" / "leftover" / "leftover"
FACTS = Facts(min_uid=1000, protected_uids=frozenset())
ROWS: list[tuple[str, str, str]] = []


def row(what: str, figure: str, target: str = "") -> None:
    ROWS.append((what, figure, target))
    print(f"  {what}: {figure}", file=sys.stderr, flush=True)


def tool_scan(proc_root: Path, answered: bool) -> None:
    """A run's looks: the first alone, or (when Slurm is asked) both."""
    first = look(proc_root, FACTS)
    if answered:
        look_again(proc_root, first, Facts(1000, frozenset(), JobAnswer(frozenset(), boottime_ticks())))


def best_of(function, *arguments, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        function(*arguments)
        times.append(time.perf_counter() - began)
    return min(times)


def scan_rows(proc_root: Path, label: str, count: int, answered: bool) -> None:
    base = best_of(floor_1, proc_root)
    careful = best_of(floor_2, proc_root)
    tool = best_of(tool_scan, proc_root, answered)
    row(f"{label}: floor 1 (status once, UID)", f"{base / count * 1e6:.2f} us/process")
    row(f"{label}: floor 2 (+ stat, cgroup for UID >= 1000)", f"{careful / count * 1e6:.2f} us/process, {careful / base:.2f} x floor 1")
    if answered:
        row(f"{label}: leftover, both looks", f"{tool / count * 1e6:.2f} us/process, {tool / base:.2f} x floor 1, "
            f"{tool / careful:.2f} x floor 2", "<= floor 2")
    else:
        row(f"{label}: leftover, first look", f"{tool / count * 1e6:.2f} us/process, {tool / base:.2f} x floor 1", "<= 1.25 x floor 1")


def peak_rss(proc_root: Path, directory: Path) -> int:
    """Peak RSS in kB of a whole dry run over proc_root (job_source local)."""
    conf = directory / "bench.conf"
    conf.write_text(json.dumps({"job_source": "local"}))
    conf.chmod(0o644)
    command = [str(FROZEN)] if FROZEN.exists() else [sys.executable, "-m", "leftover"]
    # Measured by GNU time, not our own wait4: a child forked (or vfork'd) from
    # this process, large after its in-process scans, inherits its high-water
    # mark and would report it; time's own child starts from time's small one.
    report = directory / "maxrss"
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *command, "--dry-run", "--no-splay",
                    "--config", str(conf), "--proc", str(proc_root)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return int(report.read_text().split()[-1])


def generated_trees() -> None:
    print("generated /proc trees", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="leftover-bench-") as scratch:
        for size in SIZES:
            for strays, state in ((0.0, "all user processes in jobs"), (0.5, "half the user processes strays")):
                tree = Path(scratch) / f"{size}-{strays}"
                write_tree(tree, size, strays)
                scan_rows(tree, f"{size:>6} processes, {state}", size, answered=strays > 0)
                rss = peak_rss(tree, Path(scratch))
                binary = "frozen binary" if FROZEN.exists() else "python3 -m leftover"
                row(f"{size:>6} processes, {state}: peak RSS ({binary})", f"{rss / 1024:.1f} MB", "< 40 MB at 50,000")


def whole_runs(extra: int) -> None:
    """Whole leftover runs on the real /proc against floors run as whole
    processes by the same interpreter, ten times each, interleaved, medians.
    extra processes of one job user sit outside every job: in the first case
    that user has a job process here (the node answers; Slurm is not asked),
    in the second only an allocation with no process of theirs (Slurm must be
    asked). Needs root, the test cluster, and the machine to itself."""
    from tests.e2e import cluster

    if os.geteuid() != 0 or not cluster.is_test_cluster():
        row("whole runs on the real /proc", "skipped: needs root and the test cluster (tests/cluster/slurm-up)")
        return
    with cluster.holding_machine() as held:
        if not held:
            row("whole runs on the real /proc", f"skipped: another test session kept {cluster.MACHINE_LOCK} for an hour")
            return
        cluster.slurm_up_with("proctrack/linuxproc")
        cluster.ensure_users()
        cluster.clear_test_users()
        with tempfile.TemporaryDirectory(prefix="leftover-bench-") as scratch:
            conf = cluster.config(Path(scratch))
            try:
                job_id, _ = cluster.submit_job(cluster.JOB)
                cluster.start_as(cluster.JOB, ["sh", "-c", f"for i in $(seq {extra}); do sleep 600 & done; wait"])
                _wait_for_processes(cluster.JOB.uid, extra)
                _whole_run_rows("Slurm not asked (the user has a job process here)", conf)
                cluster.cancel(job_id)
                _allocation_with_no_process(cluster, cluster.JOB)
                _whole_run_rows("Slurm asked (an allocation with no process here)", conf)
            finally:
                cluster.clear_test_users()


def _allocation_with_no_process(cluster, user) -> None:
    """salloc --no-shell under proctrack/linuxproc: a running allocation on this
    node with no process of the user's and no cgroup naming them."""
    import grp

    done = subprocess.run(["salloc", "--no-shell", "--nodes=1"], user=user.uid, group=grp.getgrnam(user.name).gr_gid,
                          extra_groups=[], capture_output=True, text=True, check=True, cwd="/tmp")
    job_id = int(done.stderr.split("Granted job allocation ")[1].split()[0])
    deadline = time.monotonic() + 30
    while cluster.job_state(job_id) != "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"allocation {job_id} did not start")
        time.sleep(0.2)


def _wait_for_processes(uid: int, count: int) -> None:
    deadline = time.monotonic() + 120
    while sum(1 for name in os.listdir("/proc") if name.isdigit() and _uid_of(name) == uid) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"uid {uid} did not reach {count} processes")
        time.sleep(0.5)


def _uid_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _whole_run_rows(case: str, conf: Path) -> None:
    python = os.path.realpath(sys.executable)  # not a pyenv shim: that alone costs ~100 ms
    _compiled(python)
    commands = {
        "floor 1": [python, "-S", "-m", "tests.bench.floors", "1", "/proc"],
        "floor 2": [python, "-S", "-m", "tests.bench.floors", "2", "/proc"],
        "python3 -m leftover": [python, "-S", "-m", "leftover", "--dry-run", "--no-splay", "--config", str(conf)],
    }
    if FROZEN.exists():
        commands["frozen binary"] = [str(FROZEN), "--dry-run", "--no-splay", "--config", str(conf)]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(10):
        for name, command in commands.items():
            began = time.perf_counter()
            subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[name].append(time.perf_counter() - began)
    median = {name: statistics.median(values) for name, values in times.items()}
    count = sum(1 for name in os.listdir("/proc") if name.isdigit())
    row(f"whole run, {count} processes, {case}: floor 1", f"{median['floor 1'] * 1000:.0f} ms")
    row(f"whole run, {count} processes, {case}: floor 2", f"{median['floor 2'] * 1000:.0f} ms, "
        f"{median['floor 2'] / median['floor 1']:.2f} x floor 1")
    asked = case.startswith("Slurm asked")
    target = "<= floor 2 and <= 1.4-1.9 x floor 1 (scicomp-leftover)" if asked else "<= 1.25 x floor 1"
    for name in commands:
        if name.startswith("floor"):
            continue
        row(f"whole run, {count} processes, {case}: {name}",
            f"{median[name] * 1000:.0f} ms, {median[name] / median['floor 1']:.2f} x floor 1, "
            f"{median[name] / median['floor 2']:.2f} x floor 2", target)
    # The same reads in this process, without start-up: what each process costs.
    scan_rows(Path("/proc"), f"in-process, real /proc, {count} processes, {case}", count, answered=asked)


def _compiled(python: str) -> None:
    """Byte-compile the package and the floors, as an installed copy is: with
    PYTHONDONTWRITEBYTECODE set (as on some build machines), every timed
    `python3 -m leftover` would otherwise compile its source again."""
    subprocess.run([python, "-m", "compileall", "-q", str(REPO / "leftover"), str(REPO / "tests" / "bench")], check=True)


def startup() -> None:
    def median_run(command: list[str]) -> float:
        times = []
        for _ in range(15):
            began = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    bare = median_run([python, "-S", "-c", "pass"])
    row(f"start-up: {python} -S -c pass", f"{bare * 1000:.1f} ms")
    ours = os.path.realpath(sys.executable)
    _compiled(ours)
    here = median_run([ours, "-S", "-c", "pass"])
    imported = median_run([ours, "-S", "-c", "import leftover.cli"])
    row("start-up: importing leftover.cli (python3 -S, byte-compiled)", f"{(imported - here) * 1000:.1f} ms beyond -c pass")
    if FROZEN.exists():
        with tempfile.TemporaryDirectory(prefix="leftover-bench-") as scratch:
            conf = Path(scratch) / "local.conf"
            conf.write_text(json.dumps({"job_source": "local"}))
            conf.chmod(0o644)
            example = REPO / "fixtures" / "example-node"
            frozen = median_run([str(FROZEN), "--dry-run", "--no-splay", "--config", str(conf),
                                 "--proc", str(example / "proc"), "--passwd", str(example / "passwd")])
        row("start-up: frozen binary, a dry run of the example node (11 processes, job_source local)",
            f"{frozen * 1000:.1f} ms, {frozen / bare:.1f} x python3 -S")
    else:
        row("start-up: frozen onedir binary", "skipped: run `make deb` first")


def controller_rpcs() -> None:
    from tests.e2e import cluster

    if not cluster.is_test_cluster():
        row("controller RPCs", "skipped: no test cluster (tests/cluster/slurm-up)")
        return
    with cluster.holding_machine() as held:
        if not held:
            row("controller RPCs", f"skipped: another test session kept {cluster.MACHINE_LOCK} for an hour")
            return
        controller_rpcs_held()


def controller_rpcs_held() -> None:
    from tests.e2e import cluster

    cluster.slurm_up_with("proctrack/linuxproc")
    cluster.ensure_users()
    with tempfile.TemporaryDirectory(prefix="leftover-bench-") as scratch:
        conf = cluster.config(Path(scratch))

        def queries_of_one_run() -> int:
            cluster.reset_controller_statistics()
            cluster.run_leftover(conf, "--dry-run")
            return sum(cluster.controller_queries().values())

        cluster.clear_test_users()
        row("controller RPCs per run: idle node", str(queries_of_one_run()), "0")
        job_id, _ = cluster.submit_job(cluster.JOB)
        row("controller RPCs per run: every user process in a job", str(queries_of_one_run()), "0")
        stray = cluster.sleeper(cluster.STRAY)
        row("controller RPCs per run: one stray present", f"{queries_of_one_run()} (one squeue: node, job, partition info)", "one squeue")
        fleet(conf, Path(scratch))
        cluster.stop([stray])
        cluster.cancel(job_id)


def fleet(conf: Path, scratch: Path) -> None:
    """K copies at the same cron minute, each with a stray to ask about."""
    from tests.e2e import cluster

    command = [str(FROZEN)] if FROZEN.exists() else [sys.executable, "-m", "leftover"]
    for copies in (50, 200):
        for splay in ("none", "default 0-30 s"):
            cluster.reset_controller_statistics()
            extra = ["--no-splay"] if splay == "none" else []
            began = time.monotonic()
            runs = [subprocess.Popen([*command, "--dry-run", "--json", "--config", str(conf), *extra], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(copies)]
            reports = [json.loads(run.communicate()[0] or "{}") for run in runs]
            wall = time.monotonic() - began
            answered = [r["slurm_seconds"] for r in reports if r.get("slurm_seconds") is not None]
            bailed = sum(1 for r in reports if r.get("exit_code"))
            stats = _job_info_stats()
            row(
                f"fleet of {copies}, splay {splay}",
                f"slowest squeue {max(answered, default=0):.2f}s, slurmctld REQUEST_JOB_INFO ave {stats[1] / 1000:.1f} ms "
                f"over {stats[0]} calls, {bailed} bailed out, {wall:.0f}s wall",
            )


def _job_info_stats() -> tuple[int, int]:
    done = subprocess.run(["sdiag"], capture_output=True, text=True, check=True)
    for line in done.stdout.splitlines():
        if line.strip().startswith("REQUEST_JOB_INFO "):
            words = dict(w.split(":") for w in line.split() if ":" in w)
            return int(words["count"]), int(words["ave_time"])
    return 0, 0


def node_table() -> None:
    """The price of squeue's --nodelist: slurmctld's node-table RPC as the table grows."""
    from tests.bench.node_table import rpc_times

    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        row("node-table RPC", "skipped: needs root and slurmctld")
        return
    for size in (0, 1000, 5000):
        times = rpc_times(size)
        row(f"slurmctld time per squeue -w, {size + 1} nodes in slurm.conf",
            f"node info {times['REQUEST_NODE_INFO']:.2f} ms, job info {times['REQUEST_JOB_INFO']:.2f} ms, "
            f"partition info {times['REQUEST_PARTITION_INFO']:.2f} ms (empty queue)")


def main() -> None:
    extra = int(os.environ.get("LEFTOVER_BENCH_EXTRA", "3000"))
    generated_trees()
    whole_runs(extra)
    startup()
    controller_rpcs()
    node_table()
    width = max(len(w) for w, _, _ in ROWS)
    print(f"| {'measure'.ljust(width)} | figure | target |")
    print(f"| {'-' * width} | --- | --- |")
    for what, figure, target in ROWS:
        print(f"| {what.ljust(width)} | {figure} | {target} |")


if __name__ == "__main__":
    main()
