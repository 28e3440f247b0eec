"""A network partition (issue 7, scenario 11), on the server engines: one worker runs in a network
namespace the test makes (a veth pair to the host; the store is reached through a forwarder on
the host's end), a second runs on the host. The link is cut for longer than a lease in the middle
of the run, then restored.

Pass: the partitioned worker's jobs are rescued and finished by the other worker; when the link
returns, the late finishes of the worker that lost its leases change nothing (each rescued job
keeps the rescue's `WorkerLost` error and the host worker's outcome); nothing is lost, no two
runs overlap, and the only jobs run twice are ones the partitioned worker had started before the
cut. Needs root (ip netns); CI runs as root. Why not SQLite: one machine, no network."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import wait_for
from tests.faults.harness import APP, ROOT, Scenario
from tests.faults.proxy import StallingProxy
from tests.faults.test_half_open import through

CONCURRENCY = 4
LEASE = 2.0
CUT_FOR = 3 * LEASE  # the partition outlasts a lease with room for the host worker's rescue


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextmanager
def namespace() -> Iterator[tuple[str, str, str]]:
    """A network namespace joined to the host by a veth pair: (namespace, host end, host address)."""
    assert os.geteuid() == 0, "the partition scenario makes a network namespace: run the tests as root"
    tag = secrets.token_hex(3)
    name, host_end, ns_end = f"cv{tag}", f"cvh{tag}", f"cvn{tag}"
    octet = int(tag[:2], 16)
    host_address, ns_address = f"10.213.{octet}.1", f"10.213.{octet}.2"
    ip("netns", "add", name)
    try:
        ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        ip("link", "set", ns_end, "netns", name)
        ip("addr", "add", f"{host_address}/30", "dev", host_end)
        ip("link", "set", host_end, "up")
        for command in (["addr", "add", f"{ns_address}/30", "dev", ns_end], ["link", "set", ns_end, "up"],
                        ["link", "set", "lo", "up"]):
            ip("netns", "exec", name, "ip", *command)
        yield name, host_end, host_address
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        ip("netns", "del", name)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("engine", ["redis", "postgres"])
def test_a_partitioned_workers_jobs_are_rescued_and_its_late_finishes_change_nothing(
        engine_url: str, tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    scenario = Scenario(engine_url, tmp_path)
    options = ["-c", str(CONCURRENCY), "--lease", str(LEASE), "--heartbeat", str(LEASE / 5), "--log-level", "WARNING"]
    with namespace() as (name, host_end, host_address):
        forwarder = StallingProxy(urlsplit(engine_url).port or 0, host=host_address)
        env = {**os.environ, **scenario.env,
               "CONVEYOR_URL": through(engine_url, forwarder.port).replace("127.0.0.1", host_address)}
        partitioned = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-m", "conveyor.cli", "worker",
                                        APP, *options], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        try:
            scenario.enqueue(3000, 0.02)
            assert wait_for(lambda: partitioned.pid in {run.pid for run in scenario.ledger.runs()}, timeout=60), \
                "the worker in the namespace never ran a job"
            with scenario.workers(1, *options):
                ip("link", "set", host_end, "down")
                cut_at = time.time()
                time.sleep(CUT_FOR)  # the partition's length is the scenario's parameter
                ip("link", "set", host_end, "up")
                restored_at = time.time()
                scenario.wait_finished(timeout=120)
                assert partitioned.poll() is None, "the partitioned worker died"
        finally:
            partitioned.send_signal(signal.SIGTERM)
            partitioned.communicate(timeout=60)
            forwarder.close()
    verdict = scenario.verdict()
    runs = scenario.ledger.runs()
    behind_cut = {run.job_id for run in runs if run.pid == partitioned.pid and run.started < cut_at}
    after_restore = [run for run in runs if run.pid == partitioned.pid and run.started > restored_at]
    rescued = [job for job in scenario.app.jobs(state="completed", limit=5000)
               if any(error.type == "WorkerLost" for error in job.errors)]
    summary = (f"cut {CUT_FOR:g}s; {len(rescued)} jobs rescued, {len(verdict.duplicated)} run twice, "
               f"{len(after_restore)} runs by the partitioned worker after the link returned; {verdict.summary()}")
    record_property("verdict", summary)
    print(f"\n{summary}")
    assert verdict.lost == [] and verdict.unexpected == [] and verdict.overlapping == []
    assert 0 < len(rescued) <= CONCURRENCY, "the partitioned worker's jobs were not rescued"
    assert set(verdict.duplicated) <= behind_cut, "a job ran twice that was not behind the cut"
    assert set(verdict.duplicated) <= {job.id for job in rescued}
    for job in rescued:  # the late finish changed nothing: the rescue's error stands, one more attempt ran
        assert [error.type for error in job.errors] == ["WorkerLost"] and job.attempts == 2, job.errors
    scenario.close()
