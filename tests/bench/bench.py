"""`make bench`: what a leftover run costs, printed as one table.

A benchmark, not a test: it asserts nothing and prints figures measured on this
machine, with the targets beside them. Parts that need root, the frozen binary
or the real test cluster say so and are skipped where those are missing.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from leftover.decide import Facts, JobAnswer
from leftover.scan import boottime_ticks
from leftover.survey import survey
from tests.bench.faketree import write_tree
from tests.conftest import REPO

SIZES = (1_000, 10_000, 50_000)
FROZEN = REPO / "build" / "pyinstaller" / "dist" / "leftover" / "leftover"
FACTS = Facts(min_uid=1000, protected_uids=frozenset())
ROWS: list[tuple[str, str, str]] = []


def row(what: str, figure: str, target: str = "") -> None:
    ROWS.append((what, figure, target))
    print(f"  {what}: {figure}", file=sys.stderr, flush=True)


def floor(proc_root: Path) -> None:
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


def tool_scan(proc_root: Path, answered: bool) -> None:
    facts = FACTS if not answered else Facts(1000, frozenset(), JobAnswer(frozenset(), boottime_ticks()))
    survey(proc_root, facts)


def best_of(function, *arguments, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        function(*arguments)
        times.append(time.perf_counter() - began)
    return min(times)


def scan_rows(proc_root: Path, label: str, count: int, answered: bool) -> None:
    base = best_of(floor, proc_root)
    tool = best_of(tool_scan, proc_root, answered)
    row(f"{label}: floor (status once, UID)", f"{base / count * 1e6:.2f} us/process")
    row(f"{label}: leftover scan + decision", f"{tool / count * 1e6:.2f} us/process, {tool / base:.2f} x floor", "<= 1.25 x floor")


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


def real_proc(extra: int) -> None:
    if os.geteuid() != 0:
        row("real /proc", "skipped: needs root to start processes as a test user")
        return
    from tests.e2e.cluster import STRAY, ensure_users, sleeper, stop

    ensure_users()
    print(f"real /proc with {extra} extra processes of {STRAY.name}", file=sys.stderr)
    children = [sleeper(STRAY) for _ in range(extra)]
    try:
        count = sum(1 for name in os.listdir("/proc") if name.isdigit())
        scan_rows(Path("/proc"), f"real /proc, {count} processes ({extra} strays)", count, answered=True)
    finally:
        stop(children)


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
    if FROZEN.exists():
        frozen = median_run([str(FROZEN), "--version"])
        row("start-up: frozen onedir binary --version", f"{frozen * 1000:.1f} ms, {frozen / bare:.1f} x python3 -S")
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


def main() -> None:
    extra = int(os.environ.get("LEFTOVER_BENCH_EXTRA", "3000"))
    generated_trees()
    real_proc(extra)
    startup()
    controller_rpcs()
    width = max(len(w) for w, _, _ in ROWS)
    print(f"| {'measure'.ljust(width)} | figure | target |")
    print(f"| {'-' * width} | --- | --- |")
    for what, figure, target in ROWS:
        print(f"| {what.ljust(width)} | {figure} | {target} |")


if __name__ == "__main__":
    main()
