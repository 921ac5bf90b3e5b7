"""The VS Code extension end to end, in a real VS Code: code-server 4.139.1 (Code 1.139.1) in
headless Chromium, driven by playwright-core (``tests/vscode_driver.js``).

The test builds ``clients/vscode`` (npm ci, lint, typecheck, bundle, .vsix), installs the .vsix
into an isolated code-server, opens a Python file, types, and checks that ghost text from the
real ``nearline serve`` (default model) appears, that Tab accepts it, that the saved file holds
it, that the status bar shows the tier and a latency, and that the accept command reached the
server (``nearline: Show Usage`` shows the ledger's report, ``acceptance: 1 of ...``). A
screenshot of the ghost text goes to ``.artifacts/vscode-ghost-text.png``.

A second test checks ``nearline/cursorRest``: the extension's server command is a small proxy
(this file, run as ``stats-proxy``) that passes the LSP traffic through and lets the driver ask
the server for ``nearline/stats``; the driver moves the cursor and waits for the server to count
the rest at that place, then turns ``nearline.warmAtCursor`` off and checks nothing more comes.

The tools are installed once into a cache folder (``support/vscode.py``), the extension is built
once for both tests; an install or build that fails fails the tests with the reason. Only
127.0.0.1 is contacted while the editor runs; every process the test starts is stopped at the
end, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from support.vscode import (
    BUILD_TIMEOUT_S,
    CHROMIUM,
    INSTALL_TIMEOUT_S,
    ROOT,
    InstallError,
    Tools,
    alive,
    build_extension,
    cmdline,
    ensure_tools,
    free_port,
    process_group,
    run_step,
    tail,
    wait_http,
)

DRIVER = Path(__file__).with_name("vscode_driver.js")
SCREENSHOT = ROOT / ".artifacts" / "vscode-ghost-text.png"
DRIVER_TIMEOUT_S = 240

SAMPLE = (
    '"""Small numeric helpers."""\n'
    "\n"
    "\n"
    "def fibonacci(n):\n"
    '    """Return the n-th Fibonacci number."""\n'
    "    if n < 2:\n"
    "        return n\n"
    "    return fibonacci(n - 1) +\n"
)
TYPED = " "
"""Typed at the end of the last line, after the ``+``."""
EXPECTED = "fibonacci(n - 2)"
"""What the default model suggests there (greedy decoding, so always the same)."""
SAMPLE_LINE = SAMPLE.count("\n") - 1
"""0-based line where the driver types."""

REST_SAMPLE = 'def greet(name):\n    return f"héllo {name} 🙂" + name\n'
REST_LINE = 1
"""0-based line where the cursor rests: on the "+", after an emoji (2 UTF-16 code units)."""
REST_LINE_TEXT = REST_SAMPLE.splitlines()[REST_LINE]
REST_LEFT = len(REST_LINE_TEXT) - REST_LINE_TEXT.index("+")
"""ArrowLeft presses from the end of the line to the "+" (all ASCII after it)."""
REST_CHARACTER = len(REST_LINE_TEXT[: REST_LINE_TEXT.index("+")].encode("utf-16-le")) // 2
"""The LSP position's character there (UTF-16, vscode-languageclient's encoding)."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT_S + BUILD_TIMEOUT_S + 600)]


def tail_extension_log(user_data: Path, chars: int = 6000) -> str:
    logs = sorted(user_data.glob("logs/*/exthost*/nearline.nearline/nearline.log"))
    return tail(logs[-1], chars) if logs else "(none)"


# -- the editor ----------------------------------------------------------------------------------
def server_command(server_log: Path, stats_port: Path | None = None) -> list[str]:
    """``nearline serve`` from this checkout; with ``stats_port``, behind the stats proxy."""
    serve = [sys.executable, "-m", "nearline", "--log-file", str(server_log), "serve"]
    if stats_port is None:
        return serve
    proxy = [sys.executable, str(Path(__file__).resolve()), "stats-proxy", str(stats_port)]
    return [*proxy, "--", *serve]


def editor_settings(server_log: Path, stats_port: Path | None = None) -> dict[str, Any]:
    """User settings: a quiet offline workbench, and nearline started from this checkout."""
    return {
        "workbench.startupEditor": "none",
        "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": "off",
        "extensions.ignoreRecommendations": True,
        "workbench.enableExperiments": False,
        "workbench.tips.enabled": False,
        "chat.disableAIFeatures": True,
        "window.commandCenter": False,
        "workbench.secondarySideBar.defaultVisibility": "hidden",
        "editor.inlineSuggest.enabled": True,
        # No suggest widget over (or instead of) the ghost text.
        "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
        "editor.suggestOnTriggerCharacters": False,
        "files.autoSave": "off",
        # The smallest budget: the first answer is cut short, so the whole suggestion arrives
        # through nearline/completionReady (and the setting goes through initializationOptions).
        "nearline.completion.timeBudgetMs": 10,
        "nearline.serverCommand": server_command(server_log, stats_port),
    }  # fmt: skip


@dataclass(frozen=True)
class Editor:
    """An isolated code-server: its own config, user data, extensions and workspace."""

    command: list[str]
    env: dict[str, str]
    user_data: Path
    workspace: Path
    port: int
    server_log: Path


def prepare_editor(
    tmp_path: Path, tools: Tools, vsix: Path, stats_port: Path | None = None
) -> Editor:
    data = tmp_path / "code-server"
    user = data / "user"
    extensions = data / "extensions"
    workspace = tmp_path / "workspace"
    for folder in (user / "User", extensions, workspace):
        folder.mkdir(parents=True)
    port = free_port()
    (data / "config.yaml").write_text(f"bind-addr: 127.0.0.1:{port}\nauth: none\ncert: false\n")
    server_log = tmp_path / "nearline-serve.log"
    settings = editor_settings(server_log, stats_port)
    (user / "User" / "settings.json").write_text(json.dumps(settings, indent=2))
    env = tools.env()
    env.update(
        # Extension gallery queries go nowhere (127.0.0.1:9 refuses at once).
        EXTENSIONS_GALLERY=json.dumps(
            {"serviceUrl": "http://127.0.0.1:9/gallery", "itemUrl": "http://127.0.0.1:9/item"}
        ),
        NEARLINE_CACHE_DIR=str(tmp_path / "nearline-cache"),
        NEARLINE_DATA_DIR=str(tmp_path / "nearline-data"),
        NEARLINE_CONFIG=str(tmp_path / "nearline-config.toml"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("NEARLINE_CATALOG", None)
    command = [
        str(tools.code_server),
        "--config", str(data / "config.yaml"),
        "--user-data-dir", str(user),
        "--extensions-dir", str(extensions),
    ]  # fmt: skip
    run_step(
        "code-server --install-extension",
        [*command, "--install-extension", str(vsix), "--force"],
        env=env,
        timeout=180,
        log=tmp_path / "build.log",
    )
    return Editor(command, env, user, workspace, port, server_log)


@dataclass
class DriverRun:
    result: dict[str, Any] | None
    timed_out: bool
    driver_exit: int | None
    leftovers: list[str]
    """Command lines of processes that survived the cleanup."""
    server_pids: set[int]
    """``nearline serve`` processes seen while the editor ran."""
    diagnostics: str


def run_driver(
    editor: Editor,
    tools: Tools,
    tmp_path: Path,
    sample: Path,
    scenario: dict[str, Any] | None = None,
) -> DriverRun:
    """Start code-server, run ``vscode_driver.js`` against it (``scenario``: more of its config,
    ``{"scenario": "rest", ...}`` for the cursor rest), stop everything."""
    code_server_log = tmp_path / "code-server.log"
    driver_log = tmp_path / "driver.log"
    result_file = tmp_path / "driver-result.json"
    server_pids: set[int] = set()
    with process_group() as group:
        with code_server_log.open("wb") as out:
            code_server = group.start(
                [*editor.command, "--disable-telemetry", "--disable-update-check",
                 "--disable-workspace-trust", "--disable-getting-started-override",
                 "--disable-proxy", "--reconnection-grace-time", "10", "--ignore-last-opened",
                 str(editor.workspace)],
                cwd=tmp_path, env=editor.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_http(f"http://127.0.0.1:{editor.port}/healthz", code_server, 60)
        config = {
            "url": f"http://127.0.0.1:{editor.port}/?folder={editor.workspace}",
            "chromium": CHROMIUM,
            "file": sample.name,
            "filePath": str(sample),
            "line": SAMPLE_LINE,
            "typed": TYPED,
            "screenshot": str(SCREENSHOT),
            "shots": str(tmp_path / "shots"),
            "result": str(result_file),
            "ghostTimeoutMs": 60000,
            **(scenario or {}),
        }
        driver_env = dict(editor.env, NODE_PATH=str(tools.playwright_modules))
        driver_env["NEARLINE_VSCODE_DRIVER"] = json.dumps(config)
        with driver_log.open("wb") as out:
            driver = group.start(
                [str(tools.node_home / "bin" / "node"), str(DRIVER)],
                cwd=tmp_path, env=driver_env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + DRIVER_TIMEOUT_S
        while driver.poll() is None and time.monotonic() < deadline:
            for pid in group.snapshot():
                line = cmdline(pid)
                if "nearline" in line and "serve" in line:
                    server_pids.add(pid)
            time.sleep(0.5)
        timed_out = driver.poll() is None
        leftovers = group.stop()
    diagnostics = (
        f"\n--- driver log ---\n{tail(driver_log)}"
        f"\n--- nearline serve log ---\n{tail(editor.server_log)}"
        f"\n--- extension log ---\n{tail_extension_log(editor.user_data)}"
        f"\n--- code-server log ---\n{tail(code_server_log, 2000)}"
    )
    result = json.loads(result_file.read_text()) if result_file.is_file() else None
    return DriverRun(result, timed_out, driver.returncode, leftovers, server_pids, diagnostics)


# -- the stats proxy -----------------------------------------------------------------------------
PROXY_ID = "stats-proxy-"
PROXY_ANSWER_S = 20.0


def read_message(stream: IO[bytes]) -> bytes | None:
    """The body of the next LSP message on ``stream``; None at its end."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            return None
        if not line.strip():
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        return None
    body = stream.read(length)
    return body if len(body) == length else None


def write_message(stream: IO[bytes], body: bytes, lock: threading.Lock) -> None:
    with lock:
        stream.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        stream.flush()


def stats_proxy(port_file: Path, command: list[str]) -> int:
    """Run the language server ``command`` on this process's stdin and stdout, passing every
    message through, and answer each TCP connection to 127.0.0.1:PORT (PORT written to
    ``port_file``) with one JSON line: the server's ``nearline/stats`` result, asked for then, or
    ``{"error": ...}``. Returns the server's exit status."""
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    to_server, from_server_out, to_client = server.stdin, server.stdout, sys.stdout.buffer
    server_lock, client_lock = threading.Lock(), threading.Lock()
    initialized = threading.Event()
    pending: dict[str, queue.Queue[dict[str, Any]]] = {}
    ids = iter(range(1, 1 << 30))

    def from_client() -> None:
        while (body := read_message(sys.stdin.buffer)) is not None:
            if not initialized.is_set() and json.loads(body).get("method") == "initialized":
                initialized.set()
            try:
                write_message(to_server, body, server_lock)
            except OSError:
                break
        with contextlib.suppress(OSError):
            to_server.close()

    def from_server() -> None:
        while (body := read_message(from_server_out)) is not None:
            message = json.loads(body)
            ident = message.get("id")
            waiter = pending.pop(ident, None) if isinstance(ident, str) else None
            if waiter is not None and "method" not in message:
                waiter.put(message)
                continue
            write_message(to_client, body, client_lock)

    def answer(conn: socket.socket) -> None:
        with conn:
            reply: dict[str, Any]
            if not initialized.is_set():
                reply = {"error": "the server is not initialized yet"}
            else:
                ident = f"{PROXY_ID}{next(ids)}"
                waiter: queue.Queue[dict[str, Any]] = queue.Queue()
                pending[ident] = waiter
                request = {"jsonrpc": "2.0", "id": ident, "method": "nearline/stats", "params": {}}
                try:
                    write_message(to_server, json.dumps(request).encode(), server_lock)
                    message = waiter.get(timeout=PROXY_ANSWER_S)
                    reply = message.get("result", {"error": message})
                except (OSError, queue.Empty) as exc:
                    pending.pop(ident, None)
                    reply = {"error": f"no answer to nearline/stats: {exc!r}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")

    def serve(listener: socket.socket) -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    listener = socket.create_server(("127.0.0.1", 0))
    partial = port_file.with_name(port_file.name + ".partial")
    partial.write_text(str(listener.getsockname()[1]))
    partial.replace(port_file)
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    threading.Thread(target=from_client, daemon=True).start()
    relay = threading.Thread(target=from_server, daemon=True)
    relay.start()
    status = server.wait()
    relay.join(5)
    return status


# -- the tests -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Built:
    tools: Tools
    vsix: Path
    tools_s: float
    build_s: float


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The tools, installed (once per cache), and the extension's .vsix, built once here."""
    out = tmp_path_factory.mktemp("vscode-build")
    started = time.monotonic()
    try:
        tools = ensure_tools()
        installed = time.monotonic()
        vsix = build_extension(tools, out, out / "build.log")
    except InstallError as exc:
        pytest.fail(f"VS Code test setup failed: {exc}", pytrace=False)
    return Built(tools, vsix, installed - started, time.monotonic() - installed)


def test_vscode_ghost_text_accept_and_status(tmp_path: Path, built: Built) -> None:
    tools = built.tools
    started = time.monotonic()
    try:
        editor = prepare_editor(tmp_path, tools, built.vsix)
    except InstallError as exc:
        pytest.fail(f"VS Code test setup failed: {exc}", pytrace=False)
    sample = editor.workspace / "fib.py"
    sample.write_text(SAMPLE)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)

    run = run_driver(editor, tools, tmp_path, sample)
    finished = time.monotonic()

    why = run.diagnostics
    assert not run.timed_out, f"the driver did not finish in {DRIVER_TIMEOUT_S} s{why}"
    assert run.result is not None, f"the driver wrote no result (exit {run.driver_exit}){why}"
    result = run.result
    assert result["error"] is None, f"driver error: {result['error']}{why}"
    assert run.server_pids, f"no `nearline serve` process was seen{why}"

    ghost = result["ghost"]
    assert ghost.strip(), f"no ghost text appeared{why}"
    assert EXPECTED in ghost, (
        f"ghost text {ghost!r}, expected the whole {EXPECTED!r} (a cut suggestion means "
        f"nearline/completionReady was not followed){why}"
    )
    assert SCREENSHOT.is_file()
    saved = sample.read_text()
    typed = SAMPLE[:-1] + TYPED
    assert saved.startswith(typed), f"saved file: {saved!r}"
    accepted = saved[len(typed) :].rstrip("\n")
    assert accepted == ghost, f"the file holds {accepted!r}, the ghost text was {ghost!r}"

    status = result["status"]
    assert "local" in status and "ms" in status, f"status bar: {status!r}{why}"
    assert result["usageAccepted"] >= 1, f"usage output: {result['usage']!r}{why}"
    assert result["blocked"] == [], f"non-local requests: {result['blocked']}"
    complaints = [n for n in result["notifications"] if "nearline" in n.lower()]
    assert not complaints, f"nearline showed messages: {complaints}{why}"
    assert not run.leftovers, f"processes still running after cleanup: {run.leftovers}"
    assert not [pid for pid in run.server_pids if alive(pid)], "nearline serve outlived the test"
    print(
        f"\nvscode e2e: tools {built.tools_s:.0f} s, build {built.build_s:.0f} s, "
        f"editor {finished - started:.0f} s; ghost {ghost!r} after {result['ghostMs']} ms; "
        f"status {status!r}"
    )


def test_vscode_cursor_rest_and_warm_at_cursor_off(tmp_path: Path, built: Built) -> None:
    stats_port = tmp_path / "stats-port"
    started = time.monotonic()
    try:
        editor = prepare_editor(tmp_path, built.tools, built.vsix, stats_port)
    except InstallError as exc:
        pytest.fail(f"VS Code test setup failed: {exc}", pytrace=False)
    sample = editor.workspace / "greet.py"
    sample.write_text(REST_SAMPLE)
    at = {"uri": sample.as_uri(), "line": REST_LINE, "character": REST_CHARACTER}
    run = run_driver(
        editor,
        built.tools,
        tmp_path,
        sample,
        {
            "scenario": "rest",
            "restLine": REST_LINE,
            "restLeft": REST_LEFT,
            "restAt": at,
            "statsPortFile": str(stats_port),
            "settingsFile": str(editor.user_data / "User" / "settings.json"),
            "userData": str(editor.user_data),
            "restTimeoutMs": 15000,
            "quietMs": 1000,
        },
    )
    finished = time.monotonic()

    rest = (run.result or {}).get("rest") or {}
    why = f"\n--- cursor rest ---\n{json.dumps(rest, indent=1)[-4000:]}{run.diagnostics}"
    assert not run.timed_out, f"the driver did not finish in {DRIVER_TIMEOUT_S} s{why}"
    assert run.result is not None, f"the driver wrote no result (exit {run.driver_exit}){why}"
    assert run.result["error"] is None, f"driver error: {run.result['error']}{why}"
    assert run.server_pids, f"no `nearline serve` process was seen{why}"

    # The cursor left on the "+": the server counted a rest there (UTF-16 character).
    rested = rest["rested"]
    assert rested["rests"] >= 1 and rested["last_rest"] == at, rested
    # Away and back within the 200 ms debounce: the same place, not sent again.
    assert rest["sameAgain"]["rests"] == rested["rests"], rest["sameAgain"]
    # Typing moves the cursor too.
    typed = rest["typed"]
    assert typed["last_rest"] == dict(at, character=REST_CHARACTER + 2), typed
    assert typed["rests"] > rested["rests"], typed
    # nearline.warmAtCursor off (changed while the editor runs): moves send nothing.
    assert rest["setting"] is False, f"settings.json: nearline.warmAtCursor = {rest['setting']}"
    assert rest["offApplied"], f"the extension did not log the setting's change{why}"
    assert rest["afterOff"]["rests"] == rest["beforeOff"]["rests"], rest

    assert run.result["blocked"] == [], f"non-local requests: {run.result['blocked']}"
    complaints = [n for n in run.result["notifications"] if "nearline" in n.lower()]
    assert not complaints, f"nearline showed messages: {complaints}{why}"
    assert not run.leftovers, f"processes still running after cleanup: {run.leftovers}"
    assert not [pid for pid in run.server_pids if alive(pid)], "nearline serve outlived the test"
    print(
        f"\nvscode cursor rest: editor {finished - started:.0f} s; "
        f"rest seen after {rest.get('restMs')} ms; {rested['rests']} rests then"
    )


if __name__ == "__main__" and sys.argv[1:2] == ["stats-proxy"]:
    # The VS Code extension's server command in the cursor rest test (see server_command).
    separator = sys.argv.index("--")
    sys.exit(stats_proxy(Path(sys.argv[2]), sys.argv[separator + 1 :]))
