"""Flaky networks: a fault-injecting proxy between ``s3mpu put`` and the S3 server.

Connections cut mid-body, 500/503 answers and stalled connections are all retried; the
object ends up byte-identical. The manifest is minted with the proxy as endpoint, so the
signed Host is the proxy's (rclone checks it).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from faultproxy import FaultProxy

MiB = 1024 * 1024


@pytest.fixture
def proxy(s3: Any) -> Iterator[FaultProxy]:
    p = FaultProxy(s3.endpoint)
    yield p
    p.stop()


def test_cuts_errors_and_stalls_are_retried(e2e: Any, proxy: FaultProxy, make_data: Any) -> None:
    size = 4 * 5 * MiB + 17
    data = make_data(size, seed=3)
    m = e2e.mint(size=size, endpoint=proxy.url)
    proxy.set_plan(["cut", "503", "stall", "500", "cut", "pass", "503"])
    r = e2e.put(m, data, "--no-complete", "-j", "2", "--timeout", "1", "--retries", "6")
    assert r.code == 0, r.stderr
    for action in ("cut", "500", "503", "stall"):
        assert proxy.applied(action) >= 1, proxy.log
    c = e2e.cli(["complete", m, "--json"], env=e2e.admin_env())
    assert c.code == 0, c.stderr
    assert e2e.get(m) == data.read_bytes()


def test_persistent_5xx_gives_up_with_exit_75_and_resumes_later(e2e: Any, proxy: FaultProxy, make_data: Any) -> None:
    size = 2 * 5 * MiB
    data = make_data(size, seed=4)
    m = e2e.mint(size=size, endpoint=proxy.url)
    proxy.set_plan(["503"] * 100)
    r = e2e.put(m, data, "--no-complete", "-j", "1", "--retries", "1")
    assert r.code == 75, r.stderr
    assert "re-run" in r.stderr.lower() or "retry later" in r.stderr.lower()
    assert e2e.server_parts(m) == [] and not e2e.exists(m)
    proxy.set_plan([])
    r = e2e.put(m, data, "--no-complete")
    assert r.code == 0, r.stderr
    assert e2e.cli(["complete", m], env=e2e.admin_env()).code == 0
    assert e2e.get(m) == data.read_bytes()


def test_some_parts_failing_is_partial_exit_2(e2e: Any, proxy: FaultProxy, make_data: Any) -> None:
    size = 3 * 5 * MiB
    data = make_data(size, seed=5)
    m = e2e.mint(size=size, endpoint=proxy.url)
    # one worker: part 1 passes, part 2 fails twice (retries 1), part 3 fails twice -> stop
    proxy.set_plan(["pass", "500", "500", "500", "500"])
    r = e2e.put(m, data, "--no-complete", "-j", "1", "--retries", "1")
    assert r.code == 2, r.stderr
    assert "resumes" in r.stderr
    r = e2e.put(m, data, "--json", "--no-complete")
    assert r.code == 0 and r.json["parts_skipped"] == 1
    assert e2e.cli(["complete", m], env=e2e.admin_env()).code == 0
    assert e2e.get(m) == data.read_bytes()


def test_unreachable_server_is_75_before_anything(e2e: Any, make_data: Any) -> None:
    from servers import free_port

    data = make_data(100)
    dead = f"http://127.0.0.1:{free_port()}"
    m = e2e.mint(size=100)
    text = m.read_text().replace(e2e.s3.endpoint, dead)
    m.write_text(text)
    r = e2e.put(m, data)
    assert r.code == 75 and "cannot reach" in r.stderr
