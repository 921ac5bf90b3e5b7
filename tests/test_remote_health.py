"""The completion server's breaker: errors in a row, answers that miss the budget, busy is
not down, one probe at a time after the cooldown."""

from __future__ import annotations

from nearline.completion.remote_health import RemoteBreaker, RemoteState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_errors_in_a_row_open_it_and_a_probe_closes_it() -> None:
    clock = Clock()
    breaker = RemoteBreaker(failures=3, cooldown_s=10, clock=clock)
    breaker.failed("reset")
    breaker.answered(True)  # a success in between starts the count again
    breaker.failed("reset")
    breaker.failed("reset")
    assert breaker.allow()
    breaker.failed("connection refused")
    assert breaker.state is RemoteState.OPEN and not breaker.allow()
    assert "3 errors in a row: connection refused" in breaker.reason
    assert not breaker.probe_due()  # cooling down
    clock.now = 11
    assert breaker.probe_due() and not breaker.probe_due()  # one probe at a time
    breaker.probed(False)
    assert not breaker.probe_due()  # another cooldown
    clock.now = 22
    assert breaker.probe_due()
    breaker.probed(True)
    assert breaker.allow() and breaker.reason == ""


def test_a_server_too_slow_to_help_is_as_good_as_down() -> None:
    breaker = RemoteBreaker(window=10, missed_share=0.5, clock=Clock())
    for i in range(10):
        breaker.answered(i % 2 == 0)  # half late: not most
    assert breaker.allow()
    breaker.answered(False)
    assert breaker.state is RemoteState.OPEN and "missed the budget" in breaker.reason


def test_busy_is_not_down() -> None:
    clock = Clock()
    breaker = RemoteBreaker(failures=1, busy_s=2, clock=clock)
    breaker.failed("503", busy=True)
    assert breaker.state is RemoteState.BUSY and not breaker.allow()
    clock.now = 2.5
    assert breaker.state is RemoteState.CLOSED and breaker.allow()
