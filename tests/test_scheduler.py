"""Unit tests for nearline.completion.scheduler: one worker thread, newest work first, cancellation.

A job blocks the worker on a ``threading.Event`` so that what is queued behind it is known
exactly; waits use generous timeouts and never measure time.
"""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from nearline.completion.scheduler import Job, Priority, Scheduler

WAIT = 10  # seconds; only reached when something is broken


@pytest.fixture
def scheduler():
    s = Scheduler(name="nearline-test")
    yield s
    s.close()


class Blocker:
    """A job body that signals when it starts and waits until released (or cancelled)."""

    def __init__(self, stop_on_cancel: bool = False) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.stop_on_cancel = stop_on_cancel
        self.saw_cancel = False

    def __call__(self, cancel: threading.Event) -> str:
        self.started.set()
        if self.stop_on_cancel:
            assert cancel.wait(WAIT), "cancel flag never set"
        else:
            assert self.release.wait(WAIT), "never released"
        self.saw_cancel = cancel.is_set()
        return "blocker done"


def block(scheduler: Scheduler, key: str = "blocker", **kw) -> tuple[Blocker, Job]:
    body = Blocker(**kw)
    job = Job(run=body, key=key)
    scheduler.submit(job)
    assert body.started.wait(WAIT)
    return body, job


def recorder(log: list[str], name: str):
    def run(cancel: threading.Event) -> str:
        log.append(name)
        return name

    return run


# -- basics ----------------------------------------------------------------------------------


def test_job_result_reaches_its_future(scheduler):
    fut = scheduler.submit(Job(run=lambda cancel: 42, key="a"))
    assert fut.result(WAIT) == 42


def test_job_error_reaches_its_future(scheduler):
    def boom(cancel):
        raise ValueError("boom")

    fut = scheduler.submit(Job(run=boom, key="a"))
    with pytest.raises(ValueError, match="boom"):
        fut.result(WAIT)
    # The worker survives a failing job.
    assert scheduler.submit(Job(run=lambda cancel: "ok", key="a")).result(WAIT) == "ok"


def test_jobs_run_one_at_a_time_on_one_thread(scheduler):
    threads: set[int] = set()
    active = 0
    most = 0
    lock = threading.Lock()

    def run(cancel: threading.Event) -> None:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
            threads.add(threading.get_ident())
        # Give a second (wrongly) concurrent job a chance to overlap.
        threading.Event().wait(0.001)
        with lock:
            active -= 1

    futures = [
        scheduler.submit(Job(run=run, key=f"doc{i}", priority=Priority.LOAD)) for i in range(20)
    ]
    for fut in futures:
        fut.result(WAIT)
    assert most == 1
    assert len(threads) == 1
    assert threading.get_ident() not in threads


def test_worker_thread_name(scheduler):
    name = scheduler.submit(Job(run=lambda c: threading.current_thread().name)).result(WAIT)
    assert name == "nearline-test"


def test_idle(scheduler):
    body, _ = block(scheduler)
    assert not scheduler.idle()
    body.release.set()
    fut = scheduler.submit(Job(run=lambda c: None, key="x"))
    fut.result(WAIT)
    for _ in range(1000):
        if scheduler.idle():
            break
        threading.Event().wait(0.01)
    assert scheduler.idle()


# -- foreground supersedes -------------------------------------------------------------------


def test_foreground_cancels_queued_jobs_with_the_same_key(scheduler):
    ran: list[str] = []
    body, _ = block(scheduler)
    first = scheduler.submit(Job(run=recorder(ran, "first"), key="doc"))
    second = scheduler.submit(Job(run=recorder(ran, "second"), key="doc"))
    third = scheduler.submit(Job(run=recorder(ran, "third"), key="doc"))
    assert first.cancelled()
    assert second.cancelled()
    assert not third.cancelled()
    body.release.set()
    assert third.result(WAIT) == "third"
    with pytest.raises(CancelledError):
        first.result(WAIT)
    assert ran == ["third"]


def test_foreground_leaves_other_keys_alone(scheduler):
    ran: list[str] = []
    body, blocker_job = block(scheduler)
    a = scheduler.submit(Job(run=recorder(ran, "a"), key="doc-a"))
    b = scheduler.submit(Job(run=recorder(ran, "b"), key="doc-b"))
    assert not a.cancelled()
    assert not blocker_job.cancel_event.is_set()
    body.release.set()
    assert a.result(WAIT) == "a"
    assert b.result(WAIT) == "b"
    assert ran == ["b", "a"]  # newest first
    assert not body.saw_cancel


def test_foreground_sets_cancel_flag_of_running_job_with_same_key(scheduler):
    body, running = block(scheduler, key="doc", stop_on_cancel=True)
    newer = scheduler.submit(Job(run=lambda c: "newer", key="doc"))
    assert running.cancel_event.is_set()
    # A running job is not cancelled: it sees its flag and returns.
    assert running.future.result(WAIT) == "blocker done"
    assert body.saw_cancel
    assert not running.future.cancelled()
    assert newer.result(WAIT) == "newer"


def test_dropped_counts_jobs_removed_unrun(scheduler):
    body, _ = block(scheduler)
    for _ in range(3):
        scheduler.submit(Job(run=lambda c: None, key="doc"))
    last = scheduler.submit(Job(run=lambda c: "last", key="doc"))
    body.release.set()
    assert last.result(WAIT) == "last"
    assert scheduler.dropped == 3


def test_job_cancelled_by_its_caller_never_runs(scheduler):
    ran: list[str] = []
    body, _ = block(scheduler)
    job = Job(run=recorder(ran, "cancelled"), key="a")
    fut = scheduler.submit(job)
    job.cancel()
    after = scheduler.submit(Job(run=recorder(ran, "after"), key="b", priority=Priority.LOAD))
    body.release.set()
    assert after.result(WAIT) == "after"
    assert fut.cancelled()
    assert ran == ["after"]


# -- background ------------------------------------------------------------------------------


def test_background_runs_only_when_no_foreground_waits(scheduler):
    ran: list[str] = []
    body, _ = block(scheduler)
    fg = scheduler.submit(Job(run=recorder(ran, "fg"), key="a"))
    bg = scheduler.submit(Job(run=recorder(ran, "bg"), key="b", priority=Priority.BACKGROUND))
    body.release.set()
    assert bg.result(WAIT) == "bg"
    assert fg.result(WAIT) == "fg"
    assert ran == ["fg", "bg"]


def test_background_runs_when_idle(scheduler):
    assert (
        scheduler.submit(Job(run=lambda c: "bg", key="a", priority=Priority.BACKGROUND)).result(
            WAIT
        )
        == "bg"
    )


def test_queued_background_cancelled_by_any_foreground(scheduler):
    ran: list[str] = []
    body, _ = block(scheduler)
    bg = scheduler.submit(Job(run=recorder(ran, "bg"), key="doc-a", priority=Priority.BACKGROUND))
    fg = scheduler.submit(Job(run=recorder(ran, "fg"), key="doc-b"))
    assert bg.cancelled()
    body.release.set()
    assert fg.result(WAIT) == "fg"
    assert ran == ["fg"]


def test_running_background_sees_cancel_flag_on_any_foreground(scheduler):
    body = Blocker(stop_on_cancel=True)
    bg = Job(run=body, key="doc-a", priority=Priority.BACKGROUND)
    scheduler.submit(bg)
    assert body.started.wait(WAIT)
    fg = scheduler.submit(Job(run=lambda c: "fg", key="doc-b"))
    assert bg.cancel_event.is_set()
    assert bg.future.result(WAIT) == "blocker done"
    assert fg.result(WAIT) == "fg"


def test_background_does_not_cancel_anything(scheduler):
    body, running = block(scheduler, key="doc")
    fg = scheduler.submit(Job(run=lambda c: "fg", key="doc"))
    scheduler.submit(Job(run=lambda c: None, key="doc", priority=Priority.BACKGROUND))
    assert not fg.cancelled()
    body.release.set()
    assert fg.result(WAIT) == "fg"


def test_cancel_background_keeps_what_it_is_told_to_keep(scheduler):
    body, _ = block(scheduler)
    warm = scheduler.submit(Job(run=lambda c: "warm", key="doc", priority=Priority.BACKGROUND))
    carry = Job(run=lambda c: "carry", key="doc", priority=Priority.BACKGROUND, place=(3, 4))
    scheduler.submit(carry)
    scheduler.cancel_background(keep=lambda job: job.place == (3, 4))
    assert warm.cancelled() and not carry.future.cancelled()
    body.release.set()
    assert carry.future.result(WAIT) == "carry"
    scheduler.cancel_background()  # nothing left: a no-op


# -- load ------------------------------------------------------------------------------------


def test_load_runs_first(scheduler):
    ran: list[str] = []
    body, _ = block(scheduler)
    bg = scheduler.submit(Job(run=recorder(ran, "bg"), key="b", priority=Priority.BACKGROUND))
    fg = scheduler.submit(Job(run=recorder(ran, "fg"), key="a"))
    load = scheduler.submit(Job(run=recorder(ran, "load"), priority=Priority.LOAD))
    assert bg.cancelled()  # by the foreground job
    body.release.set()
    assert fg.result(WAIT) == "fg"
    assert load.result(WAIT) == "load"
    assert ran == ["load", "fg"]


def test_load_is_not_cancelled_by_foreground(scheduler):
    body, _ = block(scheduler)
    load_body = Blocker()
    load = Job(run=load_body, key="doc", priority=Priority.LOAD)
    scheduler.submit(load)
    scheduler.submit(Job(run=lambda c: None, key="doc"))
    assert not load.future.cancelled()
    body.release.set()
    assert load_body.started.wait(WAIT)
    scheduler.submit(Job(run=lambda c: None, key="doc"))
    assert not load.cancel_event.is_set()
    load_body.release.set()
    assert load.future.result(WAIT) == "blocker done"


# -- close -----------------------------------------------------------------------------------


def worker_alive(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


def test_close_stops_the_thread():
    s = Scheduler(name="nearline-test-close")
    assert s.submit(Job(run=lambda c: 1)).result(WAIT) == 1
    assert worker_alive("nearline-test-close")
    s.close()
    assert not worker_alive("nearline-test-close")


def test_close_cancels_pending_and_flags_running():
    s = Scheduler(name="nearline-test-close-running")
    body, running = block(s, stop_on_cancel=True)
    queued = s.submit(Job(run=lambda c: "never", key="other"))
    s.close()
    assert queued.cancelled()
    assert running.cancel_event.is_set()
    assert running.future.result(WAIT) == "blocker done"
    assert not worker_alive("nearline-test-close-running")


def test_submit_after_close_is_cancelled():
    s = Scheduler()
    s.close()
    fut = s.submit(Job(run=lambda c: "never"))
    assert fut.cancelled()


def test_close_twice():
    s = Scheduler(name="nearline-test-close-twice")
    s.close()
    s.close()
    assert not worker_alive("nearline-test-close-twice")
