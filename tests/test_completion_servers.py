"""The completion servers' adapters (``[completion.remote]``): llama-server's ``/infill``, an
OpenAI-compatible ``/v1/completions`` with a raw FIM prompt, Ollama's ``/api/generate``; their
probes; the faults a real server cannot be made to produce (a fake on 127.0.0.1); a public
host refused without the switch; and a real ``python -m llama_cpp.server``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from nearline.completion.remote import RemotePrompt
from nearline.completion_servers import make_remote
from nearline.config import parse_settings
from nearline.config.remote import RemoteSettings
from nearline.errors import ConfigError, RemoteEngineError
from support.fake_provider import Reply, ScriptedServer, sse

PROMPT = RemotePrompt(
    prefix="def add(a, b):\n    return ",
    suffix="\n\nprint(add(1, 2))\n",
    blocks=(("util.py", "def helper(): ...\n"),),
    path="calc.py",
    max_tokens=16,
    indent=4,
    time_limit_ms=200,
)


@pytest.fixture
def fake() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    yield server
    server.stop()


def remote(kind: str, url: str, **extra: object) -> RemoteSettings:
    return RemoteSettings(kind=kind, url=url, model="qwen2.5-coder-1.5b", **extra)  # type: ignore[arg-type]


async def test_llama_server_infill(fake: ScriptedServer) -> None:
    fake.script(
        Reply(
            chunks=sse(
                {"content": "a", "stop": False},
                {"content": " + b", "stop": False},
                {
                    "content": "",
                    "stop": True,
                    "tokens_cached": 40,
                    "tokens_evaluated": 52,
                    "timings": {"prompt_n": 12, "predicted_n": 3},
                },
                done=False,
            ),
            content_type="text/event-stream",
        )
    )
    engine = make_remote(remote("llama-server", fake.url))
    answer = await engine.complete(PROMPT)
    await engine.aclose()
    assert answer.text == "a + b"
    assert (answer.prompt_tokens, answer.cached_tokens, answer.generated_tokens) == (52, 40, 3)
    assert answer.first_token_ms is not None and answer.latency_ms >= answer.first_token_ms
    (sent,) = fake.received
    assert sent.path == "/infill"
    body = sent.json
    assert body["input_prefix"] == PROMPT.prefix and body["input_suffix"] == PROMPT.suffix
    assert body["input_extra"] == [{"filename": "util.py", "text": "def helper(): ...\n"}]
    assert body["cache_prompt"] is True and body["stream"] is True
    assert (body["n_indent"], body["t_max_predict_ms"], body["n_predict"]) == (4, 200, 16)


async def test_openai_completions_get_the_familys_raw_fim_prompt(fake: ScriptedServer) -> None:
    fake.script(
        Reply(
            chunks=sse(
                {"choices": [{"text": "a + b"}]},
                {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 4}},
            ),
            content_type="text/event-stream",
        )
    )
    engine = make_remote(remote("openai", fake.url + "/v1"))
    answer = await engine.complete(PROMPT)
    await engine.aclose()
    assert (answer.text, answer.prompt_tokens, answer.generated_tokens) == ("a + b", 30, 4)
    body = fake.received[0].json
    assert fake.received[0].path == "/v1/completions"
    assert "suffix" not in body  # vLLM rejects it; llama-cpp-python's is broken
    prompt = body["prompt"]
    assert "<|fim_prefix|>" in prompt and "<|fim_suffix|>" in prompt
    assert prompt.index("def helper") < prompt.index("def add")  # cross-file blocks first
    assert prompt.endswith("<|fim_middle|>")
    assert len(body["stop"]) <= 4 and body["model"] == "qwen2.5-coder-1.5b"


async def test_ollama_generate_raw(fake: ScriptedServer) -> None:
    lines = [
        {"response": "a", "done": False},
        {"response": " + b", "done": False},
        {"response": "", "done": True, "prompt_eval_count": 31, "eval_count": 3},
    ]
    fake.script(
        Reply(
            chunks=[json.dumps(line).encode() + b"\n" for line in lines],
            content_type="application/x-ndjson",
        )
    )
    engine = make_remote(remote("ollama", fake.url))
    answer = await engine.complete(PROMPT)
    await engine.aclose()
    assert (answer.text, answer.prompt_tokens, answer.generated_tokens) == ("a + b", 31, 3)
    body = fake.received[0].json
    assert fake.received[0].path == "/api/generate" and body["raw"] is True
    assert body["options"]["num_predict"] == 16


@pytest.mark.parametrize(
    ("reply", "said", "busy"),
    [
        (Reply(503, b'{"error": "no slot available"}'), "503", True),
        (Reply(500, b"boom"), "500: boom", False),
        (Reply(chunks=[b"data: {not json\n\n"]), "unreadable", False),
        (Reply(chunks=sse({"content": "a", "stop": False}) * 3, cut_after=1), "", False),
        (Reply(delay_s=1.5), "timed out", False),
    ],
    ids=["busy", "error", "garbage", "reset-mid-stream", "hang"],
)
async def test_faults_are_remote_engine_errors(
    fake: ScriptedServer, reply: Reply, said: str, busy: bool
) -> None:
    fake.script(reply)
    engine = make_remote(remote("llama-server", fake.url, read_timeout_s=0.5))
    with pytest.raises(RemoteEngineError) as err:
        answer = await engine.complete(PROMPT)
        # a stream cut between events may end cleanly for the client: then it is short
        assert reply.cut_after is not None, answer
        raise RemoteEngineError("cut")
    await engine.aclose()
    assert said in str(err.value) and err.value.busy is busy


async def test_cancelling_closes_the_connection(fake: ScriptedServer) -> None:
    fake.script(Reply(chunks=sse({"content": "a", "stop": False}, done=False), hold_open=True))
    engine = make_remote(remote("llama-server", fake.url))
    task = asyncio.ensure_future(engine.complete(PROMPT))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await engine.aclose()
    assert await asyncio.to_thread(fake.client_closed.wait, 5.0)  # the server saw it go


async def test_the_key_goes_to_that_server_only(
    fake: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_GPU_KEY", "k-123")
    fake.script(
        Reply(302, headers={"Location": "http://127.0.0.2:9/steal"}),
        Reply(chunks=sse({"content": "x", "stop": True}, done=False)),
    )
    engine = make_remote(remote("llama-server", fake.url, api_key_env="TEAM_GPU_KEY"))
    with pytest.raises(RemoteEngineError, match="302"):
        await engine.complete(PROMPT)  # a redirect is not followed
    assert (await engine.complete(PROMPT)).text == "x"
    await engine.aclose()
    assert {r.headers.get("authorization") for r in fake.received} == {"Bearer k-123"}
    monkeypatch.delenv("TEAM_GPU_KEY")
    with pytest.raises(RemoteEngineError, match="TEAM_GPU_KEY"):
        await make_remote(remote("llama-server", fake.url, api_key_env="TEAM_GPU_KEY")).complete(
            PROMPT
        )


async def test_probes(fake: ScriptedServer) -> None:
    fake.pages["/health"] = lambda: {"status": "ok"}
    fake.pages["/api/tags"] = lambda: {"models": [{"name": "qwen2.5-coder-1.5b:latest"}]}
    assert (await make_remote(remote("llama-server", fake.url)).probe()).ok
    fake.pages["/health"] = lambda: {"status": "no slot available"}
    busy = await make_remote(remote("llama-server", fake.url)).probe()
    assert not busy.ok and busy.busy
    wrong = await make_remote(remote("openai", fake.url + "/v1")).probe()
    assert not wrong.ok and "not qwen2.5-coder-1.5b" in wrong.detail  # it serves "fake"
    assert (await make_remote(remote("ollama", fake.url)).probe()).ok
    down = await make_remote(remote("llama-server", "http://127.0.0.1:9")).probe()
    assert not down.ok and "cannot reach" in down.detail


def test_a_public_host_needs_the_switch() -> None:
    for url in ("http://127.0.0.1:8080", "http://10.1.2.3:8080", "http://[::1]:8080"):
        make_remote(remote("llama-server", url))
    with pytest.raises(ConfigError, match="allow_public"):
        make_remote(remote("llama-server", "http://8.8.8.8:8080"))
    make_remote(remote("llama-server", "http://8.8.8.8:8080", allow_public=True))


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="completion.remote.kind"):
        parse_settings({"completion": {"remote": {"kind": "tgi", "url": "http://x"}}})
    with pytest.raises(ConfigError, match="completion.remote.url"):
        parse_settings({"completion": {"remote": {"kind": "ollama", "url": "x:11434"}}})
    found = parse_settings(
        {"completion": {"remote": {"kind": "ollama", "url": "http://gpu:11434", "model": "m"}}}
    )
    assert found.completion.remote is not None and found.completion.remote.kind == "ollama"
    assert parse_settings({}).completion.remote is None


async def test_a_real_llama_cpp_server(llama_server: str) -> None:
    """llama-cpp-python's server, the raw prompt path (its ``suffix`` is broken)."""
    import httpx

    served = httpx.get(f"{llama_server}/models").json()["data"][0]["id"]  # the GGUF's path
    engine = make_remote(
        RemoteSettings(kind="openai", url=llama_server, model=served, read_timeout_s=120)
    )
    probe = await engine.probe()
    assert probe.ok, probe.detail
    answer = await engine.complete(RemotePrompt(prefix="def add(a, b):\n    return", max_tokens=8))
    await engine.aclose()
    assert "a + b" in answer.text  # (its stream reports no usage: the counts stay 0)
    assert answer.first_token_ms is not None


def test_doctor_checks_the_completion_server(fake: ScriptedServer) -> None:
    from nearline.app.doctor import run_checks

    fake.pages["/health"] = lambda: {"status": "ok"}
    flags = {
        "completion": {
            "remote": {"kind": "llama-server", "url": fake.url, "model": "qwen2.5-coder-1.5b"}
        }
    }
    (found,) = [c for c in run_checks(flags) if c.name == "completion server"]
    assert found.ok and "qwen2.5-coder, fill-in-the-middle" in found.detail
    assert "ms round trip" in found.detail
    flags["completion"]["remote"]["url"] = "http://127.0.0.1:9"
    (down,) = [c for c in run_checks(flags) if c.name == "completion server"]
    assert not down.ok and "cannot reach" in down.detail
