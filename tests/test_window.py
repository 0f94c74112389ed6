"""The in-flight window of a bundle's workers: Little's law on the shortest round trip, parking and ending."""
from __future__ import annotations

import threading
import time

from s3mpu.user.window import Window


def test_the_window_is_rate_times_the_shortest_round_trip_between_least_and_most() -> None:
    w = Window(64, least=16, rate=4000, every=4)
    assert w.limit == 64  # wide until answers come: a long link never waits for them
    for _ in range(4):
        w.answered(0.0005)  # loopback: 2 would do; the floor leaves room for the big lane's parts
    assert w.limit == 16
    w = Window(64, least=16, rate=4000, every=4)
    for s in (0.008, 0.006, 0.009, 0.007):
        w.answered(s)  # a LAN or a nearby region: 4000 x 6 ms
    assert w.limit == 24
    w = Window(64, least=16, rate=4000, every=4)
    for _ in range(8):
        w.answered(0.020)  # a 20 ms link: 80 would help, -j caps it
    assert w.limit == 64


def test_queueing_never_widens_it_but_a_shorter_round_trip_narrows_it() -> None:
    w = Window(64, least=8, rate=4000, every=2)
    w.answered(0.004)
    w.answered(0.5)  # a request that waited behind others: the shortest stays 4 ms
    assert w.limit == 16
    w.answered(0.002)
    w.answered(0.9)
    assert w.limit == 8


def test_a_parked_worker_runs_once_the_window_reaches_it_and_open_is_for_good() -> None:
    w = Window(32, least=4, rate=4000, every=1)
    w.answered(0.0001)
    assert w.limit == 4
    ran = threading.Event()

    def worker() -> None:
        w.wait_turn(10, lambda: False)
        ran.set()

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    assert not ran.wait(0.3)  # parked
    w.open()  # the tasks have ended: every worker must take its last None
    assert ran.wait(2)
    t.join(2)
    w.answered(0.0001)  # an answer in flight at the end does not narrow it again
    assert w.limit == 32


def test_a_parked_worker_leaves_when_the_transfer_stops() -> None:
    w = Window(32, least=2, rate=4000, every=1)
    w.answered(0.0001)
    stop = threading.Event()
    t = threading.Thread(target=w.wait_turn, args=(20, stop.is_set), daemon=True)
    t.start()
    time.sleep(0.1)
    assert t.is_alive()
    stop.set()
    t.join(2)
    assert not t.is_alive()
