"""Cloud engines against a local HTTP server that misbehaves on purpose: every failure ends in a
retry, a fallback to the next provider, or a clear ProviderError; never a crash or partial text."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from nearline.config import ProviderSettings
from nearline.errors import OfflineError, ProviderError, ProviderKeyError
from nearline.providers import (
    AllProvidersFailedError,
    AllProvidersOfflineError,
    CircuitBreaker,
    MalformedResponseError,
    ProviderChain,
)
from nearline.providers.reliability import RetryPolicy, backoff_delay, parse_retry_after
from support.engines import (
    REQUEST,
    FakeClock,
    FakeSleep,
    close_engines,
    engine,
    ok,
    openai_chunks,
    server,
    servers,
    settings,
)
from support.fake_provider import (
    Reply,
    ScriptedServer,
)
from support.net import closed_port

__all__ = ["close_engines", "server", "servers"]  # fixtures, used by the tests below


# -- retries ----------------------------------------------------------------------------------


async def test_429_retry_after_seconds_is_honoured(server: ScriptedServer) -> None:
    server.script(
        Reply(429, b'{"error": {"message": "slow down"}}', headers={"Retry-After": "7"}), ok("hi")
    )
    sleep = FakeSleep()
    result = await engine(settings(server), sleep=sleep).chat(REQUEST)
    assert (result.text, result.attempts, sleep.delays) == ("hi", 2, [7.0])
    assert len(server.received) == 2


async def test_429_retry_after_http_date_is_honoured_and_capped(server: ScriptedServer) -> None:
    later = email.utils.formatdate(time.time() + 600, usegmt=True)
    server.script(Reply(429, headers={"Retry-After": later}), ok("hi"))
    sleep = FakeSleep()
    result = await engine(settings(server, backoff_max_s=20.0), sleep=sleep).chat(REQUEST)
    assert result.text == "hi"
    assert sleep.delays == [20.0]


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base_s=0.5, backoff_max_s=4.0)
    assert [backoff_delay(n, policy, random=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        4.0,
    ]
    assert backoff_delay(3, policy, random=lambda: 0.25) == 0.5
    assert backoff_delay(1, policy, retry_after_s=2.5) == 2.5


async def test_500_then_503_then_success(server: ScriptedServer) -> None:
    server.script(Reply(500, b"{}"), Reply(503, b"{}"), ok("fine"))
    sleep = FakeSleep()
    result = await engine(settings(server), sleep=sleep, random=lambda: 1.0).chat(REQUEST)
    assert (result.text, result.attempts, sleep.delays) == ("fine", 3, [0.5, 1.0])


async def test_retries_run_out_into_a_clear_error(server: ScriptedServer) -> None:
    error = b'{"error": {"message": "The server is overloaded", "type": "server_error"}}'
    server.script(*[Reply(503, error)] * 3)
    with pytest.raises(ProviderError) as caught:
        await engine(settings(server, max_retries=2), sleep=FakeSleep()).chat(REQUEST)
    assert caught.value.status == 503
    assert "a: HTTP 503" in str(caught.value)
    assert "server_error: The server is overloaded" in str(caught.value)
    assert "after 3 tries" in str(caught.value)
    assert len(server.received) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_not_retried_and_carry_the_providers_message(
    server: ScriptedServer, status: int
) -> None:
    server.script(Reply(status, b'{"error": {"message": "model `nope` does not exist"}}'))
    with pytest.raises(ProviderError) as caught:
        await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert caught.value.status == status and not caught.value.retryable
    assert "model `nope` does not exist" in str(caught.value)
    assert len(server.received) == 1


async def test_slow_headers_time_out_and_are_retried(server: ScriptedServer) -> None:
    server.script(Reply(delay_s=1.0, chunks=openai_chunks("late")), ok("on time"))
    result = await engine(settings(server, read_timeout_s=0.2), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("on time", 2)


async def test_stream_cut_mid_way_is_retried_without_partial_text(server: ScriptedServer) -> None:
    cut = Reply(
        chunks=openai_chunks("PARTIAL ", "text"), content_type="text/event-stream", cut_after=1
    )
    server.script(cut, ok("Hello", " world"))
    seen: list[str] = []
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST, seen.append)
    assert (result.text, result.attempts) == ("Hello world", 2)
    assert seen == ["PARTIAL ", "Hello", "Hello world"]  # the retry starts the text again


async def test_stream_closed_before_done_counts_as_cut(server: ScriptedServer) -> None:
    early = Reply(
        chunks=openai_chunks("PARTIAL", done=False), content_type="text/event-stream", chunked=False
    )
    server.script(early, ok("whole"))
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("whole", 2)


async def test_invalid_json_is_retried_once_then_reported(server: ScriptedServer) -> None:
    server.script(Reply(body=b'{"choices": [tru'), ok("good"))
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("good", 2)

    server.script(
        Reply(body=b"<html>"),
        Reply(chunks=[b"data: {not json\n\n"], content_type="text/event-stream"),
    )
    with pytest.raises(MalformedResponseError) as caught:
        await engine(settings(server, max_retries=5), sleep=FakeSleep()).chat(REQUEST)
    assert "invalid JSON in the stream" in str(caught.value)
    assert "after 2 tries" in str(caught.value)
    assert len(server.received) == 4


async def test_empty_body_is_retried_once_then_reported(server: ScriptedServer) -> None:
    server.script(Reply(body=b""), ok("good"))
    result = await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)
    assert (result.text, result.attempts) == ("good", 2)

    server.script(Reply(body=b""), Reply(chunks=[], content_type="text/event-stream"), ok("never"))
    with pytest.raises(MalformedResponseError, match="empty"):
        await engine(settings(server), sleep=FakeSleep()).chat(REQUEST)


async def test_missing_key_is_not_retried(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEARLINE_TEST_NO_SUCH_KEY", raising=False)
    keyless = engine(settings(server, api_key_env="NEARLINE_TEST_NO_SUCH_KEY"))
    with pytest.raises(ProviderKeyError, match="NEARLINE_TEST_NO_SUCH_KEY") as caught:
        await keyless.chat(REQUEST)
    assert not caught.value.retryable
    assert server.received == []


# -- fallback chain and circuit breaker -------------------------------------------------------


async def test_chain_falls_back_to_the_next_provider(servers: list[ScriptedServer]) -> None:
    a, b = servers[0], servers[1]
    a.script(Reply(503, b"{}"), Reply(delay_s=1.0, chunks=openai_chunks("late")))
    b.script(ok("from b"))
    sleep = FakeSleep()
    chain = ProviderChain(
        [
            engine(settings(a, "a", max_retries=1, read_timeout_s=0.2), sleep=sleep),
            engine(settings(b, "b"), sleep=sleep),
        ],
        CircuitBreaker(),
    )
    result = await chain.chat(REQUEST)
    assert (result.text, result.provider, result.attempts) == ("from b", "b", 1)
    assert len(a.received) == 2


async def test_chain_reports_every_providers_failure(
    servers: list[ScriptedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEARLINE_TEST_NO_SUCH_KEY", raising=False)
    servers[0].script(Reply(401, b'{"error": {"message": "Incorrect API key provided"}}'))
    servers[1].script(
        Reply(chunks=openai_chunks("PARTIAL"), content_type="text/event-stream", cut_after=1)
    )
    engines = [
        engine(settings(servers[0], "first")),
        engine(settings(servers[1], "second", max_retries=0)),
        engine(settings(servers[2], "third", api_key_env="NEARLINE_TEST_NO_SUCH_KEY")),
        engine(
            settings(
                servers[2],
                "fourth",
                kind="anthropic",
                base_url=f"http://127.0.0.1:{closed_port()}",
                max_retries=0,
            )
        ),
    ]
    with pytest.raises(AllProvidersFailedError) as caught:
        await ProviderChain(engines, CircuitBreaker()).chat(REQUEST)
    message = str(caught.value)
    assert not isinstance(caught.value, OfflineError)
    assert "first: HTTP 401" in message and "Incorrect API key provided" in message
    assert "second: the connection was cut" in message
    assert "third: the environment variable NEARLINE_TEST_NO_SUCH_KEY is not set" in message
    assert "fourth: cannot connect" in message
    assert "PARTIAL" not in message
    assert set(caught.value.failures) == {"first", "second", "third", "fourth"}


async def test_connection_refused_everywhere_is_offline() -> None:
    engines = [
        engine(
            ProviderSettings(
                name=name,
                kind=kind,
                base_url=f"http://127.0.0.1:{closed_port()}",
                model="m",
                max_retries=1,
            ),
            sleep=FakeSleep(),
        )
        for name, kind in (("a", "openai"), ("b", "anthropic"))
    ]
    with pytest.raises(OfflineError) as caught:
        await ProviderChain(engines, CircuitBreaker()).chat(REQUEST)
    assert isinstance(caught.value, AllProvidersOfflineError)
    assert "a: cannot connect" in str(caught.value) and "b: cannot connect" in str(caught.value)


async def test_breaker_opens_skips_then_tries_again(servers: list[ScriptedServer]) -> None:
    a, b = servers[0], servers[1]
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30.0, clock=clock)
    chain = ProviderChain(
        [engine(settings(a, "a", max_retries=0)), engine(settings(b, "b"))], breaker
    )
    a.script(Reply(503, b"{}"), Reply(503, b"{}"))
    b.script(ok("b1"), ok("b2"), ok("b3"))
    assert (await chain.chat(REQUEST)).provider == "b"
    assert not breaker.is_open("a")
    assert (await chain.chat(REQUEST)).provider == "b"
    assert breaker.is_open("a")

    clock.now += 29.0
    assert (await chain.chat(REQUEST)).provider == "b"
    assert len(a.received) == 2  # skipped while open

    clock.now += 1.0
    a.script(ok("a is back"))
    result = await chain.chat(REQUEST)
    assert (result.provider, result.text) == ("a", "a is back")
    assert len(a.received) == 3 and not breaker.is_open("a")


async def test_skipped_providers_are_named_when_nothing_is_left(server: ScriptedServer) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=60.0, clock=clock)
    chain = ProviderChain([engine(settings(server, "only", max_retries=0))], breaker)
    server.script(Reply(502, b"bad gateway"))
    with pytest.raises(AllProvidersFailedError, match="only: HTTP 502"):
        await chain.chat(REQUEST)
    with pytest.raises(AllProvidersFailedError, match="only: skipped for 60s more") as caught:
        await chain.chat(REQUEST)
    assert "HTTP 502" in str(caught.value)
    assert len(server.received) == 1


def test_breaker_half_open_lets_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10.0, clock=clock)
    breaker.record_failure("p", ProviderError("bad request", status=400))
    breaker.record_failure("p", ProviderKeyError("OPENAI_API_KEY is not set"))
    assert not breaker.is_open("p")  # the request's or the setup's fault, not the provider's
    breaker.record_failure("p", OfflineError("down", retryable=True))
    assert not breaker.allow("p")
    clock.now += 10.0
    assert breaker.allow("p")  # the trial
    assert not breaker.allow("p")  # the others wait for it
    breaker.record_failure("p", OfflineError("still down", retryable=True))
    assert not breaker.allow("p")
    clock.now += 10.0
    assert breaker.allow("p")
    breaker.record_success("p")
    assert breaker.allow("p") and breaker.allow("p")


# -- cancellation -----------------------------------------------------------------------------


async def test_cancelling_closes_the_stream(server: ScriptedServer) -> None:
    server.script(
        Reply(
            chunks=openai_chunks("first", done=False),
            content_type="text/event-stream",
            hold_open=True,
        )
    )
    got_text = asyncio.Event()
    task = asyncio.create_task(engine(settings(server)).chat(REQUEST, lambda text: got_text.set()))
    await asyncio.wait_for(got_text.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(server.client_closed.wait, 5)
