"""The whole run, in process, on the bundled example node. Every path that must
not signal is checked with an Actor that records any attempt."""

import json
import os
import shutil

import pytest

from leftover import cli
from leftover.act import NOT_CARRIED_OUT, Actor, Result
from leftover.decide import Facts, JobAnswer, decide
from leftover.lock import take_lock
from leftover.process import Process
from leftover.report import Describer
from tests.conftest import EXAMPLE_NODE, EXAMPLE_PROC, REPO
from tests.faults import FAULTY_SQUEUES, config, faulty_squeue, standin_scontrol


@pytest.fixture
def signalled(monkeypatch):
    """Every plan handed to the Actor; a test that expects nothing signalled
    asserts this stays empty."""
    calls = []
    monkeypatch.setattr(Actor, "carry_out", lambda self, targets, grace: calls.append(list(targets)) or [])
    return calls


def run(capsys, *arguments, config_path=EXAMPLE_NODE / "leftover.conf"):
    code = cli.main([
        "--no-splay", "--json", "--config", str(config_path), "--proc", str(EXAMPLE_PROC),
        "--passwd", str(EXAMPLE_NODE / "passwd"), *arguments,
    ])
    return code, json.loads(capsys.readouterr().out)


def test_dry_run_on_example_node_plans_the_strays(capsys, signalled):
    code, report = run(capsys, "--dry-run")
    assert code == 0 and signalled == []
    assert [t["pid"] for t in report["targets"]] == [1202, 1203, 1207]
    assert report["targets"][1]["name"] == "x\\x0a\\x1b[31mroot\\\\"
    assert report["job_uids"] == [2001] and report["asked_slurm"]


def test_dry_run_text_lists_one_line_per_target(capsys, signalled):
    code = cli.main(["--dry-run", "--no-splay", "--config", str(EXAMPLE_NODE / "leftover.conf"),
                     "--proc", str(EXAMPLE_PROC), "--passwd", str(EXAMPLE_NODE / "passwd")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].startswith("would kill pid=1202 user=bob uid=2002 name='python3' age=")
    assert lines[0].endswith("reason=no-job-on-node")
    assert len(lines) == 4 and "dry run, nothing signalled" in lines[-1]


def test_real_run_hands_exactly_the_plan_to_the_actor(capsys, signalled, tmp_path):
    code, _ = run(capsys, "--lock-file", str(tmp_path / "lock"))
    assert code == 0
    assert [[d.process.pid for d in targets] for targets in signalled] == [[1202, 1203, 1207]]


def test_node_with_only_protected_processes_does_not_ask_slurm(capsys, signalled, tmp_path):
    squeue = faulty_squeue(tmp_path, "exits-1")  # would fail the run if it were asked
    conf = config(tmp_path, json.dumps({"protected_users": ["alice", "bob", "dave", "longusername"], "squeue": str(squeue)}))
    code, report = run(capsys, "--dry-run", config_path=conf)
    assert code == 0 and not report["asked_slurm"] and report["targets"] == []


@pytest.mark.parametrize("fault", sorted(FAULTY_SQUEUES))
def test_faulty_squeue_bails_out_and_signals_nothing(capsys, signalled, tmp_path, fault):
    squeue = faulty_squeue(tmp_path, fault)
    conf = config(tmp_path, json.dumps({"squeue": str(squeue), "squeue_timeout": 0.5}))
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert code == 1 and signalled == []
    assert report["bailed_out"].startswith("Slurm gave no usable answer")
    assert report["targets"] == []


def test_missing_squeue_bails_out(capsys, signalled, tmp_path):
    conf = config(tmp_path, json.dumps({"squeue": str(tmp_path / "nowhere" / "squeue")}))
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert code == 1 and signalled == [] and "not an executable file" in report["bailed_out"]


def test_failing_scontrol_beside_squeue_bails_out(capsys, signalled, tmp_path):
    (tmp_path / "squeue").write_text("#!/bin/sh\nprintf 'UID\\n2001\\n'\n")
    (tmp_path / "squeue").chmod(0o755)
    (tmp_path / "scontrol").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "scontrol").chmod(0o755)
    conf = config(tmp_path, json.dumps({"squeue": str(tmp_path / "squeue")}))
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert code == 1 and signalled == [] and "scontrol exited 1" in report["bailed_out"]


@pytest.mark.parametrize(
    "text",
    ['{"protected_users": ["nosuchuser-anywhere"]}', '{"grace": 8}', "{not json", '{"min_uid": 0}'],
)
def test_config_errors_exit_2_and_signal_nothing(capsys, signalled, tmp_path, text):
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=config(tmp_path, text))
    assert code == 2 and signalled == [] and report["bailed_out"]


def test_named_config_that_is_missing_exits_2(capsys, signalled, tmp_path):
    code, _ = run(capsys, config_path=tmp_path / "absent.conf")
    assert code == 2 and signalled == []


def test_missing_passwd_bails_out(capsys, signalled, tmp_path):
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), "--passwd", str(tmp_path / "absent"))
    assert code == 1 and signalled == [] and "cannot read" in report["bailed_out"]


def test_unreadable_proc_bails_out(capsys, signalled, tmp_path):
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), "--proc", str(tmp_path / "absent"))
    assert code == 1 and signalled == [] and "cannot list" in report["bailed_out"]


def test_second_copy_exits_at_once_while_the_lock_is_held(capsys, signalled, tmp_path):
    held = take_lock(tmp_path / "lock")
    try:
        code, report = run(capsys, "--lock-file", str(tmp_path / "lock"))
    finally:
        os.close(held)
    assert code == 1 and signalled == [] and "another leftover holds" in report["bailed_out"]


def test_unusable_lock_file_bails_out(capsys, signalled, tmp_path):
    code, report = run(capsys, "--lock-file", str(tmp_path / "no-such-dir" / "lock"))
    assert code == 1 and signalled == [] and "cannot open lock file" in report["bailed_out"]


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--no-such-option"])
    assert exit_.value.code == 2


def test_version(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("leftover 0.")


def test_local_job_source_never_runs_squeue(capsys, signalled, tmp_path):
    squeue = faulty_squeue(tmp_path, "exits-1")  # would fail the run if it were asked
    conf = config(tmp_path, json.dumps({"job_source": "local", "squeue": str(squeue), "protected_users": ["dave"]}))
    code, report = run(capsys, "--dry-run", config_path=conf)
    assert code == 0 and not report["asked_slurm"] and report["job_source"] == "local"
    assert [t["pid"] for t in report["targets"]] == [1202, 1203, 1207]  # alice is spared by her job cgroup alone
    assert report["local_job_processes"] == 1


def test_node_whose_user_processes_all_show_a_job_does_not_ask(capsys, signalled, tmp_path):
    squeue = faulty_squeue(tmp_path, "exits-1")
    conf = config(tmp_path, json.dumps({"protected_users": ["bob", "dave", "longusername"], "squeue": str(squeue)}))
    code, report = run(capsys, "--dry-run", config_path=conf)
    assert code == 0 and not report["asked_slurm"]
    assert report["reasons"]["in-job-cgroup"] == 1 and report["reasons"]["uid-has-local-job"] == 1


def metrics_text(path):
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in path.read_text().splitlines() if not line.startswith("#")}


def test_metrics_file_after_a_completed_run(capsys, signalled, tmp_path):
    conf = config(tmp_path, json.dumps({"protected_users": ["dave"], "squeue": str(EXAMPLE_NODE / "squeue"),
                                        "metrics_file": str(tmp_path / "leftover.prom")}))
    code, _ = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    figures = metrics_text(tmp_path / "leftover.prom")
    assert code == 0
    assert figures["leftover_processes_scanned"] == 11 and figures["leftover_local_job_processes"] == 1
    assert figures["leftover_controller_asked"] == 1 and figures["leftover_targets"] == 3
    assert figures['leftover_run_bailed_out{reason=""}'] == 0
    assert figures["leftover_last_success_timestamp_seconds"] == figures["leftover_run_timestamp_seconds"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".leftover.prom.")]


def test_metrics_file_after_a_bail_out_keeps_the_last_success(capsys, signalled, tmp_path):
    prom = tmp_path / "leftover.prom"
    good = config(tmp_path, json.dumps({"squeue": str(EXAMPLE_NODE / "squeue"), "metrics_file": str(prom)}))
    run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=good)
    success = metrics_text(prom)["leftover_last_success_timestamp_seconds"]
    bad = config(tmp_path, json.dumps({"squeue": str(faulty_squeue(tmp_path, "exits-1")), "metrics_file": str(prom)}))
    code, _ = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=bad)
    figures = metrics_text(prom)
    assert code == 1 and signalled[1:] == []
    assert figures['leftover_run_bailed_out{reason="slurm"}'] == 1
    assert figures["leftover_last_success_timestamp_seconds"] == success
    assert figures["leftover_run_timestamp_seconds"] > success


def test_squeue_printing_megabytes_bails_out(capsys, signalled, tmp_path):
    conf = config(tmp_path, json.dumps({"squeue": str(faulty_squeue(tmp_path, "prints-megabytes"))}))
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert code == 1 and signalled == []
    assert "printed 1048576 bytes or more" in report["bailed_out"]


def test_squeue_printing_without_end_is_stopped_at_the_cap(capsys, signalled, tmp_path):
    squeue = tmp_path / "squeue"
    squeue.write_text("#!/bin/sh\nexec yes 2001\n")
    squeue.chmod(0o755)
    standin_scontrol(tmp_path)
    conf = config(tmp_path, json.dumps({"squeue": str(squeue), "squeue_timeout": 30}))
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert code == 1 and signalled == [] and "printed 1048576 bytes or more" in report["bailed_out"]


def test_passwd_that_cannot_be_read_bails_out(capsys, signalled, tmp_path):
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), "--passwd", str(tmp_path))
    assert code == 1 and signalled == [] and "cannot read" in report["bailed_out"]


def test_a_dry_run_leaves_the_metrics_file_alone(capsys, signalled, tmp_path):
    prom = tmp_path / "leftover.prom"
    conf = config(tmp_path, json.dumps({"squeue": str(EXAMPLE_NODE / "squeue"), "metrics_file": str(prom)}))
    code, _ = run(capsys, "--dry-run", config_path=conf)
    assert code == 0 and not prom.exists()


@pytest.mark.parametrize(
    "text",
    ['{"protected_users": ["slurm"], "protected_users": []}', "[" * 100_000, '{"protected_users": ["a\\u0000b"]}'],
    ids=["repeated-key", "deeply-nested", "nul-in-name"],
)
def test_hostile_configs_are_config_errors_not_tracebacks(capsys, signalled, tmp_path, text):
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=config(tmp_path, text))
    assert code == 2 and signalled == [] and report["bailed_out_reason"] == "config"


def test_dangling_default_config_link_is_an_error_not_the_defaults(tmp_path):
    from leftover.config import ConfigError, load_settings

    link = tmp_path / "leftover.conf"
    link.symlink_to(tmp_path / "gone.conf")
    with pytest.raises(ConfigError, match="dangling link"):
        load_settings(link, explicit=False, trusted_owners=frozenset({os.geteuid()}))


def test_huge_numbers_are_refused_not_a_traceback(capsys, signalled, tmp_path):
    squeue = tmp_path / "squeue"
    squeue.write_text("#!/bin/sh\necho UID; printf '%05000d\\n' 7\n")
    squeue.chmod(0o755)
    standin_scontrol(tmp_path)
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=config(tmp_path, json.dumps({"squeue": str(squeue)})))
    assert code == 1 and signalled == [] and "is not a UID" in report["bailed_out"]


def test_a_squeue_others_could_have_replaced_is_not_run(capsys, signalled, tmp_path):
    squeue = faulty_squeue(tmp_path, "prints-blank-line")
    squeue.write_text("#!/bin/sh\necho 2001\n")
    squeue.chmod(0o777)
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=config(tmp_path, json.dumps({"squeue": str(squeue)})))
    assert code == 1 and signalled == [] and "squeue on its path is writable by group or others (mode 0777)" in report["bailed_out"]


def test_an_internal_error_before_the_kill_phase_signals_nothing(capsys, signalled, monkeypatch):
    def broken(*_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "look", broken)
    code, report = run(capsys, "--dry-run")
    assert code == 1 and signalled == []
    assert report["bailed_out"] == "internal error (RuntimeError: a bug)" and report["bailed_out_reason"] == "internal"


def outcomes_of(*results):
    """An Actor that reports results for the plan's targets, in order."""
    from leftover.act import Outcome

    def carry_out(self, targets, grace):
        return [Outcome(d, r, "cannot open a pidfd: Too many open files" if r in NOT_CARRIED_OUT else "")
                for d, r in zip(targets, results, strict=True)]

    return carry_out


def test_a_run_that_could_check_no_target_exits_1_and_names_them(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(Actor, "carry_out", outcomes_of(Result.UNCHECKED, Result.UNCHECKED, Result.FAILED))
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"))
    assert code == 1 and report["bailed_out_reason"] == "unchecked"
    assert report["bailed_out"] == (
        "3 of 3 target(s) could not be checked or signalled and were left alone "
        "(pids 1202,1203,1207; unchecked: cannot open a pidfd: Too many open files)"
    )


def test_a_run_that_signalled_some_targets_but_not_others_exits_3(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(Actor, "carry_out", outcomes_of(Result.TERMINATED, Result.UNCHECKED, Result.GONE))
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"))
    assert code == 3 and report["stopped"].startswith("1 of 3 target(s) could not be checked or signalled and were left alone (pids 1203;")
    assert [t["result"] for t in report["targets"]] == ["terminated", "unchecked", "gone"]


def test_a_run_whose_only_signal_was_a_sigterm_exits_3_not_nothing_signalled(capsys, monkeypatch, tmp_path):
    from leftover.act import Outcome

    def carry_out(self, targets, grace):
        return [Outcome(d, Result.UNCHECKED, "cannot read /proc: Input/output error", sigterm_sent=True) for d in targets]

    monkeypatch.setattr(Actor, "carry_out", carry_out)
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"))
    assert code == 3 and report["bailed_out"] is None and report["stopped"]


def test_targets_that_changed_or_exited_are_a_completed_run(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(Actor, "carry_out", outcomes_of(Result.CHANGED, Result.GONE, Result.KILLED))
    code, _ = run(capsys, "--lock-file", str(tmp_path / "lock"))
    assert code == 0


def test_system_uid_ranges_from_the_config_steer_the_system_account_rule(capsys, signalled, tmp_path):
    """bob (2002) named as a system account range: his processes are no longer targets."""
    squeue = EXAMPLE_NODE / "squeue"
    conf = config(tmp_path, json.dumps({"protected_users": ["slurm", "dave"], "squeue": str(squeue),
                                        "system_uid_ranges": [[2002, 2002]]}))
    code, report = run(capsys, "--dry-run", config_path=conf)
    assert code == 0 and signalled == []
    assert [t["pid"] for t in report["targets"]] == [1207]


def fake_slurm(directory, scontrol: str):
    """A squeue that would answer, beside an scontrol that prints the given text."""
    (directory / "squeue").write_text("#!/bin/sh\nprintf 'UID\\n2001\\n'\n")
    (directory / "squeue").chmod(0o755)
    (directory / "scontrol").write_text(f"#!/bin/sh\nprintf '%s' '{scontrol}'\n")
    (directory / "scontrol").chmod(0o755)
    return config(directory, json.dumps({"squeue": str(directory / "squeue")}))


@pytest.mark.parametrize("host", ["node7", "node7.cluster.example.org", "", "node[1-2]", "-w", "x,y"])
def test_no_node_from_scontrol_bails_out_whatever_the_host_name(capsys, signalled, tmp_path, monkeypatch, host):
    """scontrol show aliases prints nothing (exit 0) for a host slurm.conf
    gives no NodeHostname of its short name, even one that serves nodes under
    its FQDN. The host name is never asked about in their place, valid or not:
    squeue would answer it for one node of such a host at most."""
    monkeypatch.setattr("socket.gethostname", lambda: host)
    conf = fake_slurm(tmp_path, "")
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert code == 1 and signalled == [] and report["targets"] == [] and not report["asked_slurm"]
    assert "scontrol show aliases names no node of this host" in report["bailed_out"]
    assert "\n" not in report["bailed_out"]


def test_no_scontrol_beside_squeue_bails_out(capsys, signalled, tmp_path, monkeypatch):
    """Without scontrol there is nothing to learn the host's NodeNames from;
    a valid host name is not asked about in their place."""
    monkeypatch.setattr("socket.gethostname", lambda: "node7")
    conf = fake_slurm(tmp_path, "node7")
    (tmp_path / "scontrol").unlink()
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert code == 1 and signalled == [] and report["targets"] == [] and not report["asked_slurm"]
    assert "no scontrol beside squeue" in report["bailed_out"]


def test_the_names_scontrol_prints_are_the_ones_asked_about(capsys, signalled, tmp_path, monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "node7")
    conf = fake_slurm(tmp_path, "lo-twin1 lo-twin2\n")
    (tmp_path / "squeue").write_text(f"#!/bin/sh\necho \"$*\" > {tmp_path}/asked\nprintf 'UID\\n2001\\n'\n")
    code, report = run(capsys, "--dry-run", config_path=conf)
    assert code == 0 and report["node_names"] == ["lo-twin1", "lo-twin2"]
    assert (tmp_path / "asked").read_text() == "--all --format=%U --nodelist=lo-twin1,lo-twin2\n"


def slurm_with_node_names(directory, scontrol: str | None, node_names: list[str]):
    """fake_slurm whose squeue records what it was asked, with node_names in the config."""
    fake_slurm(directory, scontrol or "")
    if scontrol is None:
        (directory / "scontrol").unlink()
    (directory / "squeue").write_text(f"#!/bin/sh\necho \"$*\" > {directory}/asked\nprintf 'UID\\n2001\\n'\n")
    return config(directory, json.dumps({"squeue": str(directory / "squeue"), "node_names": node_names}))


@pytest.mark.parametrize("scontrol", ["", None])
def test_node_names_from_the_config_stand_in_where_scontrol_names_none(capsys, signalled, tmp_path, scontrol):
    """A host whose NodeHostname slurm.conf writes as an FQDN: scontrol show
    aliases prints nothing (or there is no scontrol); the config's node_names
    are asked about instead."""
    conf = slurm_with_node_names(tmp_path, scontrol, ["node7"])
    code, report = run(capsys, "--dry-run", config_path=conf)
    assert code == 0 and report["node_names"] == ["node7"]
    assert (tmp_path / "asked").read_text() == "--all --format=%U --nodelist=node7\n"


def test_node_names_from_the_config_that_scontrol_contradicts_bail_out(capsys, signalled, tmp_path):
    conf = slurm_with_node_names(tmp_path, "node8\n", ["node7"])
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert code == 1 and signalled == [] and report["targets"] == []
    assert "node_names in the config (node7) are not the node names scontrol show aliases prints" in report["bailed_out"]
    assert not (tmp_path / "asked").exists()


def test_node_names_from_the_config_that_scontrol_confirms_are_asked_about(capsys, signalled, tmp_path):
    conf = slurm_with_node_names(tmp_path, "node7 node7b\n", ["node7b", "node7"])
    code, report = run(capsys, "--dry-run", config_path=conf)
    assert code == 0 and report["node_names"] == ["node7", "node7b"]


def test_a_process_whose_namespace_cannot_be_read_is_left_alone_and_named(capsys, signalled, tmp_path):
    """A fake tree cannot answer the namespace ioctls: bob's container process
    (pid 1401 of fixtures/userns-node) is left alone with a warning, and the
    rest of the node is judged as usual."""
    proc = tmp_path / "proc"
    shutil.copytree(EXAMPLE_PROC, proc, symlinks=True)
    shutil.copytree(REPO / "fixtures" / "userns-node" / "proc" / "1401", proc / "1401", symlinks=True)
    code = cli.main(["--no-splay", "--json", "--verbose", "--config", str(EXAMPLE_NODE / "leftover.conf"), "--proc", str(proc),
                     "--passwd", str(EXAMPLE_NODE / "passwd"), "--lock-file", str(tmp_path / "lock")])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 0
    assert [[d.process.pid for d in targets] for targets in signalled] == [[1202, 1203, 1207]]
    (entry,) = [j for j in report["judged"] if j["pid"] == 1401]
    assert entry["reason"] == "userns-unreadable" and entry["uid"] == 101000
    assert entry["userns_error"] == "ns/user cannot be opened: No such file or directory"
    assert report["reasons"]["userns-unreadable"] == 1
    (warning,) = [line for line in captured.err.splitlines() if "pid=1401 " in line]
    assert "uid=101000" in warning and warning.endswith(
        "left alone, its user namespace cannot be read (ns/user cannot be opened: No such file or directory)")


def test_lines_and_json_name_the_owner_of_a_container_process():
    process = Process(pid=1401, name="sleep", state="S", ppid=1, uids=(101000,) * 4, kernel_thread=False, start_ticks=50,
                      userns_owner=2002)
    facts = Facts(min_uid=1000, protected_uids=frozenset(), answer=JobAnswer(frozenset(), 150))
    plan = decide([process], facts)
    describer = Describer({2002: "bob", 101000: "?"}.get, 100)
    (target,) = plan.targets
    assert describer.line(target, plan) == (
        "pid=1401 user=? uid=101000 userns_owner=bob userns_owner_uid=2002 name='sleep' age=1s reason=no-job-on-node"
    )
    fields = describer.fields(target, plan)
    assert (fields["userns_owner"], fields["userns_owner_uid"], fields["userns_error"]) == ("bob", 2002, None)


def test_one_process_whose_cgroup_cannot_be_read_is_spared_and_the_run_goes_on(capsys, signalled, tmp_path):
    proc = tmp_path / "proc"
    shutil.copytree(EXAMPLE_PROC, proc, symlinks=True)
    (proc / "1202" / "cgroup").unlink()
    (proc / "1202" / "cgroup").mkdir()  # reads fail (EISDIR), as ENAMETOOLONG, EIO or EACCES would
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), "--proc", str(proc))
    assert code == 0
    assert [[d.process.pid for d in targets] for targets in signalled] == [[1207]]  # bob's 1202 and 1203 spared
    assert {"pid": 1202, "why": "cgroup unreadable: Is a directory; taken to be a job's, so its UIDs are spared"} in report["skipped"]


def test_json_all_lists_every_process_with_the_rule_that_decided_it(capsys, signalled):
    code, report = run(capsys, "--dry-run", "--all")
    reasons = {entry["pid"]: entry["reason"] for entry in report["processes"]}
    assert code == 0 and len(reasons) == report["scanned"] == 11
    assert reasons[1] == "system-account" and reasons[7] == "kernel-thread" and reasons[1208] == "zombie"
    assert reasons[1201] == "in-job-cgroup" and reasons[1202] == "no-job-on-node"
    assert {entry["pid"] for entry in report["judged"]} < set(reasons)  # the judged list is kept as it was
    assert [entry["state"] for entry in report["processes"] if entry["pid"] == 1208] == ["Z"]


def test_all_without_json_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--dry-run", "--all"])
    assert exit_.value.code == 2 and "--all needs --json" in capsys.readouterr().err


def test_a_real_run_whose_proc_is_another_pid_namespaces_signals_nothing(capsys, signalled, tmp_path, monkeypatch):
    (tmp_path / "proc" / "4242").mkdir(parents=True)
    (tmp_path / "proc" / "self").symlink_to("4242")  # the host's /proc seen from a PID namespace
    monkeypatch.setattr(cli, "OWN_PROC", tmp_path / "proc")
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"))
    assert code == 1 and signalled == [] and report["bailed_out_reason"] == "proc"
    assert report["bailed_out"] == (f"{tmp_path}/proc is not this PID namespace's: it calls this process 4242, "
                                    f"not {os.getpid()}; its pids would name other processes")


def test_a_run_past_its_time_bound_is_stopped_like_one_sent_sigterm(capsys, signalled, monkeypatch, tmp_path):
    """A wait nobody foresaw (here a scan that takes for ever) still ends at
    worst_case_seconds(): the run stops, nothing signalled, exit 1."""
    import time

    monkeypatch.setattr(cli, "FIXED_MARGIN_SECONDS", 0.3)
    monkeypatch.setattr(cli, "look", lambda *_: time.sleep(30))
    conf = config(tmp_path, json.dumps({"slew_max": 0, "squeue_timeout": 0.1, "grace_seconds": 0}))
    started = time.monotonic()
    code, report = run(capsys, "--lock-file", str(tmp_path / "lock"), config_path=conf)
    assert time.monotonic() - started < 2
    assert code == 1 and signalled == [] and report["bailed_out"] == "stopped by its time bound"


HELD_MAIN_THREAD = """
import signal, sys, time
from leftover import cli

def held(*_):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # where no handler can reach it
    time.sleep(60)

cli.FIXED_MARGIN_SECONDS, cli.HARD_MARGIN_SECONDS, cli.look = 0.2, 0.5, held
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_run_held_where_no_signal_handler_runs_is_ended_by_the_watchdog(tmp_path):
    """Past its bound plus HARD_MARGIN_SECONDS, a run whose main thread cannot
    be interrupted (a stat on a hung file system) exits all the same: one line,
    exit 1 before the kill phase, and the lock is free again."""
    import subprocess
    import sys
    import time

    conf = config(tmp_path, json.dumps({"slew_max": 0, "squeue_timeout": 0.1, "grace_seconds": 0}))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", HELD_MAIN_THREAD, "--no-splay", "--config", str(conf), "--proc", str(EXAMPLE_PROC),
                           "--passwd", str(EXAMPLE_NODE / "passwd"), "--lock-file", str(tmp_path / "lock")],
                          capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 10
    assert done.returncode == 1
    assert "held where it cannot be stopped; exiting with status 1" in done.stderr
    os.close(take_lock(tmp_path / "lock"))
