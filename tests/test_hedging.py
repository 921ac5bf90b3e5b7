"""Hedging a keystroke between the local model (a fake engine) and a completion server (a fake
``RemoteEngine`` on the server's own thread): who wins, the budget, late answers, one live
request per document, typing through an answer on its way, the breaker, privacy, and
``mode = "only"``. Fast: no model and no HTTP (the real server is in test_lsp_remote.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from nearline.accounting.entries import Project
from nearline.app.completions import REMOTE_PROVIDER, entry_of
from nearline.completion import CompletionService, Source
from nearline.completion.cache import CompletionCache
from nearline.completion.context import build_context
from nearline.completion.hedge import Engine, Hedge, RemoteLane, choose, typed_since
from nearline.completion.remote import Probe, RemoteAnswer, RemotePrompt
from nearline.completion.remote_health import RemoteBreaker, RemoteState
from nearline.config import parse_settings
from nearline.documents import DocumentView, split_lines
from nearline.errors import RemoteEngineError
from support.fake_engine import FakeEngine
from test_completion_service import end_of

URI = "file:///w/a.py"
CODE = "def add(a, b):\n    return a"
REMOTE = {"kind": "llama-server", "url": "http://127.0.0.1:9"}


class FakeRemote:
    """A completion server: an answer after a delay, an error, or no answer at all."""

    kind = "llama-server"
    model_id = "big-model"
    where = "http://127.0.0.1:9"

    def __init__(
        self,
        answer: str | Callable[[RemotePrompt], str] = " + b",
        *,
        delay_s: float = 0.0,
        error: RemoteEngineError | None = None,
        hang: bool = False,
    ) -> None:
        self.answer_for = answer if callable(answer) else (lambda _p: answer)
        self.delay_s = delay_s
        self.error = error
        self.hang = hang
        self.prompts: list[RemotePrompt] = []
        self.cancelled = 0
        self.probe_ok = True
        self.threads: set[str] = set()

    async def complete(self, prompt: RemotePrompt) -> RemoteAnswer:
        self.prompts.append(prompt)
        self.threads.add(threading.current_thread().name)
        try:
            await asyncio.sleep(3600 if self.hang else self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return RemoteAnswer(self.answer_for(prompt), self.model_id, 40, 30, 3, self.delay_s * 1000)

    async def probe(self) -> Probe:
        return Probe(self.probe_ok, "probed")

    async def aclose(self) -> None:
        pass


def view(text: str, version: int = 1, uri: str = URI) -> DocumentView:
    return DocumentView(uri, version, split_lines(text))


def make(
    services: list[CompletionService],
    engine: FakeEngine,
    remote: FakeRemote,
    *,
    breaker: RemoteBreaker | None = None,
    allowed: Callable[[str], bool] = lambda uri: True,
    **completion: object,
) -> CompletionService:
    mode = completion.pop("mode", "hedge")
    settings = parse_settings(
        {"completion": {"warmup": False, **completion, "remote": {**REMOTE, "mode": mode}}}
    )
    assert settings.completion.remote is not None
    lane = RemoteLane(lambda: remote)
    lane.made.result(timeout=5)
    hedge = Hedge(settings.completion.remote, lane, breaker=breaker, allowed=allowed)
    service = CompletionService(settings, engine, CompletionCache(None), hedge=hedge)
    services.append(service)
    return service


async def ask(service: CompletionService, text: str, version: int = 1):  # noqa: ANN201
    return await service.complete(view(text, version), *end_of(text), "utf-32")


def test_which_answer_is_shown_when_both_are_in() -> None:
    assert choose(" + b", " + c") is Engine.REMOTE  # the bigger model's
    assert choose(" + b", "") is Engine.LOCAL  # it had nothing
    assert choose(" + b + c", " + b") is Engine.LOCAL  # the same and more
    assert choose(" + b", " + b") is Engine.REMOTE


def test_typed_since() -> None:
    lines = split_lines("x = fo\n")
    old = build_context(
        lines, 0, 6, previous_anchor=None, max_prefix_chars=500, max_suffix_chars=50
    )
    lines2 = split_lines("x = foo(\n")
    new = build_context(lines2, 0, 8, previous_anchor=0, max_prefix_chars=500, max_suffix_chars=50)
    assert typed_since(old, new) == "o("
    assert typed_since(new, old) is None


async def test_the_server_in_first_serves_and_the_local_job_runs_on(
    services: list[CompletionService],
) -> None:
    engine = FakeEngine(" + local + b", token_s=0.05)
    remote = FakeRemote(" + b", delay_s=0.01)
    service = make(services, engine, remote, time_budget_ms=2000)
    result = await ask(service, CODE)
    assert (result.text, result.engine, result.model_id) == (" + b", Engine.REMOTE, "big-model")
    assert result.source is Source.MODEL and result.remote is not None
    assert remote.threads == {"nearline-remote"}  # the server's own thread, not the loop's
    prompt = remote.prompts[0]
    assert prompt.prefix.endswith("return a") and prompt.stop == ("\n",)
    await asyncio.sleep(0.6)
    # the local job ran on (its model keeps up with the person) and changed nothing shown
    assert service.stats.cancelled == 0 and service.stats.model_calls == 1
    assert service.stats.recent[-1]["engine"] == "remote"
    # typing what the server wrote is typing-through, still the server's
    typed = CODE + " +"
    second = await ask(service, typed, 2)
    assert (second.source, second.text, second.engine) == (Source.TYPING_THROUGH, " b", "remote")
    assert second.model_id == "big-model" and len(remote.prompts) == 1


async def test_both_in_within_the_budget_the_server_wins_unless_local_says_more(
    services: list[CompletionService],
) -> None:
    remote = FakeRemote(" + b", delay_s=0.05)
    service = make(services, FakeEngine(" + c"), remote, time_budget_ms=1000)
    assert (await ask(service, CODE)).text == " + b"
    remote2 = FakeRemote(" + b", delay_s=0.05)
    service2 = make(services, FakeEngine(" + b + c"), remote2, time_budget_ms=1000)
    result = await ask(service2, CODE)
    assert (result.text, result.engine) == (" + b + c", Engine.LOCAL)
    remote3 = FakeRemote("", delay_s=0.0)
    service3 = make(services, FakeEngine(" + c", token_s=0.02), remote3, time_budget_ms=1000)
    assert (await ask(service3, CODE)).text == " + c"


async def test_a_late_answer_replaces_the_local_one_through_completion_ready(
    services: list[CompletionService],
) -> None:
    remote = FakeRemote(" + b", delay_s=0.3)
    service = make(services, FakeEngine(" + c"), remote, time_budget_ms=50)
    ready = asyncio.Event()
    service.on_extended = lambda uri, ctx: ready.set()
    first = await ask(service, CODE)
    assert (first.text, first.engine) == (" + c", Engine.LOCAL)
    assert first.latency_ms < 250
    await asyncio.wait_for(ready.wait(), 2)
    again = await ask(service, CODE)  # the client asks again at the same place
    assert (again.text, again.engine, again.source) == (" + b", Engine.REMOTE, Source.MODEL)
    assert again.remote is not None  # its usage goes in this request's ledger row
    assert service.hedge is not None and service.hedge.stats.late == 1


async def test_a_late_answer_is_dropped_once_the_person_moved_on(
    services: list[CompletionService],
) -> None:
    remote = FakeRemote(" + b", delay_s=0.2)
    service = make(services, FakeEngine(" + c"), remote, time_budget_ms=20)
    ready: list[int] = []
    service.on_extended = lambda uri, ctx: ready.append(ctx.line)
    await ask(service, CODE)
    other = CODE + "\n"
    await ask(service, other, 2)  # not the same line: the first request is closed
    await asyncio.sleep(0.4)
    assert remote.cancelled == 1 and ready == [2]  # only the newer request's answer


async def test_a_hanging_server_costs_no_more_than_the_budget(
    services: list[CompletionService],
) -> None:
    remote = FakeRemote(hang=True)
    service = make(services, FakeEngine(" + c"), remote, time_budget_ms=60)
    result = await ask(service, CODE)
    assert (result.text, result.engine) == (" + c", Engine.LOCAL)
    assert result.latency_ms < 400


async def test_typing_through_an_answer_on_its_way(services: list[CompletionService]) -> None:
    remote = FakeRemote(" + b", delay_s=0.15)
    service = make(services, FakeEngine("", token_s=0.0), remote, time_budget_ms=20)
    first = await ask(service, CODE)  # the server's answer is on its way
    assert first.text == ""
    typed = CODE + " +"
    second = await ask(service, typed, 2)  # reuses it: one live request per document
    await asyncio.sleep(0.3)
    assert len(remote.prompts) == 1 and remote.cancelled == 0
    assert service.hedge is not None and service.hedge.stats.reused == 1
    third = await ask(service, typed, 2)  # completionReady's request: the rest of it
    assert (third.text, third.engine) == (" b", Engine.REMOTE), second


async def test_errors_open_the_breaker_and_a_probe_closes_it(
    services: list[CompletionService],
) -> None:
    now = [0.0]
    breaker = RemoteBreaker(failures=2, cooldown_s=5, clock=lambda: now[0])
    remote = FakeRemote(error=RemoteEngineError("connection refused"))
    service = make(services, FakeEngine(" + c"), remote, breaker=breaker, time_budget_ms=200)
    for version in range(1, 4):
        result = await ask(service, CODE + " " * version, version)
        assert result.engine is Engine.LOCAL
    assert breaker.state is RemoteState.OPEN and len(remote.prompts) == 2
    assert service.hedge is not None and service.hedge.stats.skipped == 1
    remote.error = None
    now[0] = 10.0
    await ask(service, CODE + "  x", 9)  # the cooldown is over: a probe goes out
    await asyncio.sleep(0.1)
    assert breaker.state is RemoteState.CLOSED
    result = await ask(service, CODE, 10)
    assert (result.text, result.engine) == (" + b", Engine.REMOTE)
    assert service.stats_dict()["remote"]["state"] == "closed"


async def test_busy_is_not_down(services: list[CompletionService]) -> None:
    breaker = RemoteBreaker(failures=1)
    remote = FakeRemote(error=RemoteEngineError("503", busy=True))
    service = make(services, FakeEngine(" + c"), remote, breaker=breaker, time_budget_ms=200)
    await ask(service, CODE)
    assert breaker.state is RemoteState.BUSY and breaker.reason == ""


async def test_a_local_only_document_never_goes_to_the_server(
    services: list[CompletionService],
) -> None:
    remote = FakeRemote(" + b")
    service = make(
        services, FakeEngine(" + c"), remote, allowed=lambda uri: not uri.endswith(".env")
    )
    secret = await service.complete(view("KEY=", uri="file:///w/.env"), 0, 4, "utf-32")
    assert secret.engine is Engine.LOCAL and not remote.prompts
    assert (await ask(service, CODE)).engine is Engine.REMOTE


async def test_only_mode_asks_the_server_alone(services: list[CompletionService]) -> None:
    engine = FakeEngine(" + c")
    remote = FakeRemote(" + b", delay_s=0.1)
    service = make(services, engine, remote, mode="only", time_budget_ms=20)
    result = await ask(service, CODE)
    assert (result.text, result.engine) == (" + b", Engine.REMOTE) and not engine.calls
    remote.error = RemoteEngineError("down")
    failed = await ask(service, CODE + "  ", 2)
    assert failed.text == "" and not engine.calls


def test_the_ledger_row_of_a_server_answer() -> None:
    from nearline.completion.result import CompletionResult

    answer = RemoteAnswer(
        " + b", "big-model", prompt_tokens=40, cached_tokens=30, generated_tokens=3
    )
    result = CompletionResult(
        " + b", Source.MODEL, "big-model", 12.0, 1, 12, engine=Engine.REMOTE, remote=answer
    )
    entry = entry_of(result, Project(), "python", shown=True)
    assert (entry.provider, entry.model, entry.cost_usd) == (REMOTE_PROVIDER, "big-model", 0.0)
    assert (entry.tokens.input, entry.tokens.cache_read, entry.tokens.output) == (10, 30, 3)
    assert not entry.cloud and entry.accepted is False
