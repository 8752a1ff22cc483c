import json

import pytest

from tests.e2e import cluster
from tests.e2e.cluster import STRAY

pytestmark = pytest.mark.e2e


def test_dry_run_kills_nothing_and_lists_the_stray(slurm, tmp_path):
    tmp_path.chmod(0o755)
    stray = cluster.sleeper(STRAY)
    try:
        result = cluster.run_leftover(cluster.config(tmp_path), "--dry-run", "--json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert [t["pid"] for t in report["targets"] if t["uid"] == STRAY.uid] == [stray.pid]
        assert report["targets"][0]["result"] == "planned"
        assert cluster.alive(stray.pid)
    finally:
        cluster.stop([stray])
