"""The example alert rules (debian/examples/leftover-alerts.yml): valid for
Prometheus, right on series that fire and on series that stay quiet (promtool,
from Debian's prometheus package), and about metrics leftover really writes."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from leftover import metrics
from leftover.decide import Facts, Plan
from leftover.report import RunReport
from tests.conftest import REPO

EXAMPLES = REPO / "debian" / "examples"
RULES = EXAMPLES / "leftover-alerts.yml"
RULE_TESTS = EXAMPLES / "leftover-alerts.test.yml"


@pytest.fixture
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("LEFTOVER_REQUIRE_E2E") == "1":
            pytest.fail("promtool is missing (Debian package prometheus; make deps installs it)")
        pytest.skip("promtool is missing (Debian package prometheus)")
    return found


def promtool_says(promtool: str, *arguments: str, cwd: Path = EXAMPLES) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *arguments], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_rules_are_valid(promtool):
    done = promtool_says(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_rules_fire_and_stay_quiet_as_the_unit_tests_say(promtool):
    done = promtool_says(promtool, "test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("before, after", [
    ("for: 1h", "for: 30m"),  # n1 would fire too early, while n2's failing spell is still unbroken
    ("max without (reason) (leftover_run_bailed_out)", "leftover_run_bailed_out"),  # a new reason restarts the hour
    ("> 1800", "> 3000"),  # n2's stopped runs would not be seen
    ('result="unkillable"} > 0\n        for: 15m', 'result="unkillable"} > 0\n        for: 0m'),  # n2's one-off fires
    ("leftover_squeue_seconds > 1.5\n        for: 30m", "leftover_squeue_seconds > 1.5\n        for: 10m"),
    ("leftover_targets > 50", "leftover_targets > 2"),
    ("leftover_gpu_holding_targets > 0", "leftover_gpu_holding_targets >= 0"),
    ('result=~"signal-failed|unchecked"} > 0', 'result=~"signal-failed|unchecked|changed"} > 0'),
    ('result=~"signal-failed|unchecked"} > 0', 'result="signal-failed"} > 0'),
])
def test_the_rule_tests_catch_a_wrong_rule(promtool, tmp_path, before, after):
    text = RULES.read_text()
    assert before in text
    (tmp_path / RULES.name).write_text(text.replace(before, after))
    shutil.copy(RULE_TESTS, tmp_path)
    done = promtool_says(promtool, "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr


def test_every_metric_the_rules_use_is_one_leftover_writes():
    report = RunReport(dry_run=False, plan=Plan((), (), Facts(min_uid=1000, protected_uids=frozenset())), slurm_seconds=0.5)
    written = set(re.findall(r"^(leftover_\w+)", metrics.render(report, 1.0, 1.0), re.M))
    used = set(re.findall(r"\b(leftover_\w+)\b", RULES.read_text()))
    assert used and used <= written, used - written
