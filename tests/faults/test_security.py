"""Security (issue 7, scenario 10).

- On every engine, a job's stored arguments overwritten with a pickle that would create a file if it
  were ever loaded (protocol 0, binary protocols, and base64 inside JSON) fails with
  SerializationError in a real worker process, on both pools; the file never appears, the
  producer's handle does not load it either, and a healthy job enqueued after them completes.
- Redis with `requirepass`: the right password works end to end; a wrong one and a missing one are
  each a BackendError that says which (in-process and from `conveyor worker`), never the password.
- Redis with an ACL user made from the exact `ACL SETUSER` line in docs/redis.md: jobs, a worker and
  the operator verbs work, the server refuses nothing, and every command the line grants is used;
  an ACL short of that line fails with an error that says a permission is missing.
- `rediss://` to a redis-server that speaks only TLS, with a certificate from a private CA made here
  with openssl: works with `ssl_ca_certs`; without trusting that CA, or by a name the certificate
  does not list, it is a BackendError about the certificate.

Every server is our own (tests.servers.RedisServer: loopback, a free port, a private directory) and
is stopped by the test that started it."""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from conveyor import BackendError, Conveyor, JobState, SerializationError
from tests.conftest import wait_for
from tests.faults import fault_app
from tests.faults.harness import APP, ROOT, Scenario
from tests.servers import RedisServer

DOCS = ROOT / "docs" / "redis.md"


# -- pickles in the store -------------------------------------------------------------------------


class Plant:
    """Unpickling this calls `call(*args)`: what loading a pickle from the store would do."""

    def __init__(self, call: Callable[..., Any], *args: Any) -> None:
        self.call = call
        self.args = args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.call, self.args


def planted(marker: Path, protocol: int) -> bytes:
    """A pickle that creates `marker` when loaded: through the shell, or through open()."""
    if protocol % 2 == 0:
        return pickle.dumps(Plant(os.system, f"touch {shlex.quote(str(marker))}"), protocol=protocol)
    return pickle.dumps(Plant(open, str(marker), "w"), protocol=protocol)


def pickled_payloads(markers: Path) -> dict[str, bytes]:
    """Stored arguments that are pickles, each with its own marker file."""
    payloads = {f"pickle protocol {p}": planted(markers / f"protocol-{p}", p)
                for p in (0, 1, 2, pickle.HIGHEST_PROTOCOL)}
    for p in (0, pickle.HIGHEST_PROTOCOL):
        encoded = base64.b64encode(planted(markers / f"base64-{p}", p)).decode()
        payloads[f"base64 pickle (protocol {p}) as a JSON string"] = json.dumps(encoded).encode()
        payloads[f"base64 pickle (protocol {p}) tagged in JSON arguments"] = json.dumps(
            {"args": {"py/pickle": encoded}, "kwargs": {}}).encode()
    return payloads


@pytest.fixture
def scenario(engine_url: str, tmp_path: Path) -> Iterator[Scenario]:
    scenario = Scenario(engine_url, tmp_path)
    yield scenario
    scenario.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("pool", ["thread", "process"])
def test_stored_pickles_are_never_unpickled(scenario: Scenario, pool: str, tmp_path: Path) -> None:
    # The control: these pickles do what they say when something does load them.
    control = tmp_path / "control"
    control.mkdir()
    for protocol in (0, 1, 2, pickle.HIGHEST_PROTOCOL):
        loaded = pickle.loads(planted(control / str(protocol), protocol))  # the one place a pickle is loaded
        if hasattr(loaded, "close"):
            loaded.close()  # open()'s file
    assert sorted(p.name for p in control.iterdir()) == sorted(str(p) for p in (0, 1, 2, pickle.HIGHEST_PROTOCOL))

    markers = tmp_path / "markers"
    markers.mkdir()
    poison: dict[str, str] = {}
    for name, payload in pickled_payloads(markers).items():
        job = fault_app.work.delay(0.0)
        scenario.write_payload(job.id, payload)  # behind conveyor's back, before any worker runs
        poison[name] = job.id
    healthy = fault_app.work.delay(0.0)
    scenario.enqueued += [*poison.values(), healthy.id]

    with scenario.workers(1, "--pool", pool, "-c", "2") as workers:
        assert healthy.result(timeout=90) == 1
        scenario.wait_finished(timeout=90)
        assert workers.processes[0].poll() is None, "the worker died"

    ran = {run.job_id for run in scenario.ledger.runs()}
    assert ran == {healthy.id}, "a job with pickled arguments ran"
    for name, job_id in poison.items():
        job = scenario.app.get_job(job_id)
        assert job.status == JobState.FAILED, (name, job.errors)
        assert job.attempts == 1, (name, job.errors)  # a payload no retry mends: no second attempt
        assert [e.type for e in job.errors] == ["SerializationError"], (name, job.errors)
        assert "stored arguments" in job.errors[-1].message, (name, job.errors[-1].message)
        with pytest.raises(SerializationError):  # the producer's handle does not load it either
            job.args  # noqa: B018
    assert list(markers.iterdir()) == [], "a stored pickle was loaded"


# -- Redis with a password --------------------------------------------------------------------------


def run_worker(url: str) -> subprocess.CompletedProcess[str]:
    """`conveyor worker` pointed at `url`, expected to give up at once with one line."""
    return subprocess.run([sys.executable, "-m", "conveyor.cli", "worker", APP, "--url", url], cwd=ROOT,
                          capture_output=True, text=True, timeout=90, check=False)


def refusal(url: str) -> str:
    app = Conveyor(url)
    try:
        with pytest.raises(BackendError) as caught:
            app.counts()
        return str(caught.value)
    finally:
        app.close()


@pytest.mark.timeout(180)
def test_redis_password_right_wrong_and_missing(tmp_path: Path) -> None:
    password = f"pw/{secrets.token_urlsafe(12)}@:%"  # characters a URL has to escape
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    secrets_shown = (password, quote(password, safe=""), wrong)
    server = RedisServer(tmp_path / "redis", extra=["--requirepass", password], ping={"password": password})
    try:
        server.start()  # inside the try: a server that fails its readiness check is still stopped
        where = f"127.0.0.1:{server.port}/0"
        scenario = Scenario(f"redis://:{quote(password, safe='')}@{where}", tmp_path)
        try:
            job = fault_app.work.delay(0.0)
            with scenario.workers(1):
                assert job.result(timeout=60) == 1
            assert job.status == JobState.COMPLETED
        finally:
            scenario.close()

        cases = {f"redis://:{wrong}@{where}": "refused the user and password in the URL",
                 f"redis://default:{wrong}@{where}": "refused the user and password in the URL",
                 f"redis://{where}": "wants a password and the URL has none"}
        for url, words in cases.items():
            message = refusal(url)
            assert words in message and "redis://" in message, message
            assert not any(secret in message for secret in secrets_shown), message
            worker = run_worker(url)
            assert worker.returncode == 1, worker.stderr
            assert worker.stderr.startswith("error: ") and worker.stderr.count("\n") == 1, worker.stderr
            assert words in worker.stderr, worker.stderr
            assert not any(secret in worker.stderr + worker.stdout for secret in secrets_shown), worker.stderr
    finally:
        server.stop()


# -- Redis with an ACL user -------------------------------------------------------------------------


def documented_acl() -> list[str]:
    """The rules of the `ACL SETUSER conveyor on >CHANGE-ME ...` line in docs/redis.md."""
    found = re.findall(r"^ACL SETUSER conveyor on >CHANGE-ME (.+)$", DOCS.read_text(), re.MULTILINE)
    assert len(found) == 1, "docs/redis.md should hold one ACL SETUSER line for conveyor"
    return str(found[0]).split()


def commands_of(rules: list[str]) -> set[str]:
    return {rule[1:] for rule in rules if rule.startswith("+")}


@pytest.fixture
def acl_server(tmp_path: Path) -> Iterator[tuple[RedisServer, redis.Redis]]:
    """A redis-server whose default user has a password (the admin's), and an admin client."""
    admin_password = secrets.token_hex(16)
    server = RedisServer(tmp_path / "redis", extra=["--requirepass", admin_password],
                         ping={"password": admin_password})
    admin = redis.Redis(host="127.0.0.1", port=server.port, password=admin_password, decode_responses=True)
    try:
        server.start()
        yield server, admin
    finally:
        admin.close()
        server.stop()


@pytest.mark.timeout(180)
def test_redis_acl_user_with_the_documented_rules_runs_everything(
        acl_server: tuple[RedisServer, redis.Redis], tmp_path: Path) -> None:
    server, admin = acl_server
    password = secrets.token_hex(16)
    rules = documented_acl()
    admin.execute_command("ACL", "SETUSER", "conveyor", "on", f">{password}", *rules)
    admin.config_resetstat()
    # Database 1: so the rules' +select is needed too.
    scenario = Scenario(f"redis://conveyor:{password}@127.0.0.1:{server.port}/1", tmp_path)
    app = scenario.app
    try:
        app.pause("default")
        assert app.paused_queues() == {"default"}
        batch = fault_app.work.map([(0.0, False)] * 3)
        retried_once = fault_app.work.delay(0.0, True)
        later = fault_app.work.with_options(delay=3600).delay(0.0)
        later.cancel()
        later.retry()  # cancelled -> queued
        jobs = [*batch, retried_once, later]
        scenario.enqueued += [job.id for job in jobs]

        with scenario.workers(1):
            app.resume("default")
            assert [job.result(timeout=60) for job in jobs] == [1, 1, 1, 2, 1]
            assert wait_for(app.workers, timeout=30)
            assert wait_for(app.stats, timeout=30)
            # The wake subscription's probe (a PING every third of socket_timeout) is let through.
            assert wait_for(lambda: any(c["user"] == "conveyor" and c["cmd"] == "ping"
                                        for c in admin.client_list()), timeout=30)
        assert {job.id for job in app.jobs(state="completed")} == {job.id for job in jobs}
        assert app.counts()["default"][JobState.COMPLETED] == 5
        batch[0].delete()

        # A claim whose lease runs out is rescued (the worker, which would rescue it too, is gone).
        stray = fault_app.work.with_options(queue="rescue").delay(0.0)
        assert [r.id for r in app.backend.fetch(["rescue"], 1, worker_id="gone", lease_seconds=0.2)] == [stray.id]
        assert [r.id for r in wait_for(app.backend.rescue_expired, timeout=30)] == [stray.id]
        assert stray.status == JobState.QUEUED
        app.prune()
        assert app.backend.purge([JobState.COMPLETED]) == 4
    finally:
        scenario.close()

    used = {name.removeprefix("cmdstat_") for name, stat in admin.info("commandstats").items()
            if stat["calls"] > 0}
    assert admin.acl_log() == [], "the server refused something the documented ACL should allow"
    assert commands_of(rules) <= used, f"granted but never used: {sorted(commands_of(rules) - used)}"


@pytest.mark.timeout(180)
def test_redis_acl_short_of_the_documented_rules_says_a_permission_is_missing(
        acl_server: tuple[RedisServer, redis.Redis]) -> None:
    """What breaks, and how it reads, when the ACL lacks one of the documented grants."""
    server, admin = acl_server
    password = secrets.token_hex(16)
    rules = documented_acl()
    cases: dict[str, tuple[list[str], str, str]] = {  # user: (rules, the verb that fails, the words)
        "nochannel": ([r for r in rules if not r.startswith("&")], "enqueue", "can't publish to the channel"),
        "nohincrby": ([r for r in rules if r != "+hincrby"], "enqueue", "script can't run this command"),
        "othernamespace": ([r.replace("conveyor:*", "conveyor:{other}:*") for r in rules], "enqueue",
                           "no permissions to access one of the keys"),
        "nosubscribe": ([r for r in rules if r != "+subscribe"], "fetch", "'subscribe' command"),
        "nozrevrange": ([r for r in rules if r != "+zrevrange"], "list", "'zrevrange' command"),
    }
    steps: dict[str, Callable[[Conveyor], object]] = {
        "enqueue": lambda app: app.enqueue("work", [0.0]),
        "fetch": lambda app: app.backend.fetch(["default"], 1, worker_id="w", lease_seconds=5),
        "list": lambda app: app.jobs(),
    }
    for user, (user_rules, failing, words) in cases.items():
        admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", *user_rules)
        # A namespace each: a script refused halfway keeps what it wrote before (Redis does not roll
        # scripts back), and such a half-enqueued job would trouble the next user's fetch.
        app = Conveyor(f"redis://{user}:{password}@127.0.0.1:{server.port}/1?namespace={user}")
        try:
            for step in list(steps)[:list(steps).index(failing)]:
                steps[step](app)  # what comes before the missing grant works
            with pytest.raises(BackendError) as caught:
                steps[failing](app)
        finally:
            app.close()
        message = str(caught.value)
        assert words in message and "lacks a permission conveyor needs" in message, (user, message)
        assert password not in message and f"{user}:***@" in message, (user, message)
    refused = {(entry["username"], entry["object"]) for entry in admin.acl_log(100)}
    assert ("nohincrby", "hincrby") in refused, refused  # the script's error does not name it; ACL LOG does


# -- Redis over TLS ---------------------------------------------------------------------------------


def make_certificates(directory: Path) -> Path:
    """A private CA and a server certificate it signs for 127.0.0.1, and an unrelated CA; made with
    openssl into `directory`, which is returned."""
    directory.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=conveyor test {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "server.ext")
    return directory


@pytest.mark.timeout(180)
def test_rediss_with_a_private_ca(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    ca = certs / "ca.pem"
    server = RedisServer(tmp_path / "redis", ping={"host": "127.0.0.1", "ssl": True, "ssl_ca_certs": str(ca)})
    # TLS only (--port 0 closes the plain port), on the port RedisServer picked and checks.
    server.extra = ["--port", "0", "--tls-port", str(server.port), "--tls-cert-file", str(certs / "server.pem"),
                    "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file", str(ca),
                    "--tls-auth-clients", "no"]
    try:
        server.start()
        where = f"127.0.0.1:{server.port}/0"
        scenario = Scenario(f"rediss://{where}?ssl_ca_certs={ca}", tmp_path)
        try:
            jobs = fault_app.work.map([(0.0, False)] * 5)
            with scenario.workers(1):
                assert [job.result(timeout=60) for job in jobs] == [1] * 5
        finally:
            scenario.close()

        untrusted = "presented a TLS certificate conveyor does not trust"
        for url, words in {f"rediss://{where}": (untrusted, "ssl_ca_certs="),
                           f"rediss://{where}?ssl_ca_certs={certs / 'other-ca.pem'}": (untrusted, "ssl_ca_certs="),
                           f"rediss://localhost:{server.port}/0?ssl_ca_certs={ca}": (
                               "presented a TLS certificate for another host name", "'localhost'"),
                           f"rediss://{where}?ssl_ca_certs={certs / 'missing.pem'}": (
                               "a TLS file the URL names does not exist", "ssl_ca_certs")}.items():
            message = refusal(url)
            assert all(word in message for word in words), message
    finally:
        server.stop()
