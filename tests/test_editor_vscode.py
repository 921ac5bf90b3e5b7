"""The VS Code extension end to end, in a real VS Code: code-server 4.139.1 (Code 1.139.1) in
headless Chromium, driven by playwright-core (``tests/vscode_driver.js``).

The test builds ``clients/vscode`` (npm ci, lint, typecheck, bundle, .vsix), installs the .vsix
into an isolated code-server, opens a Python file, types, and checks that ghost text from the
real ``nearline serve`` (default model) appears, that Tab accepts it, that the saved file holds
it, that the status bar shows the tier and a latency, and that the accept command reached the
server (``nearline: Show Usage`` shows the ledger's report, ``acceptance: 1 of ...``). A
screenshot of the ghost text goes to ``.artifacts/vscode-ghost-text.png``.

The tools are installed once into a cache folder (``support/vscode.py``); an install that fails
fails the test with the reason. Only 127.0.0.1 is contacted while the editor runs; every process
the test starts is stopped at the end, also on failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT_S + BUILD_TIMEOUT_S + 600)]


def tail_extension_log(user_data: Path, chars: int = 6000) -> str:
    logs = sorted(user_data.glob("logs/*/exthost*/nearline.nearline/nearline.log"))
    return tail(logs[-1], chars) if logs else "(none)"


# -- the editor ----------------------------------------------------------------------------------
def editor_settings(server_log: Path) -> dict[str, Any]:
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
        "nearline.serverCommand": [
            sys.executable, "-m", "nearline", "--log-file", str(server_log), "serve",
        ],
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


def prepare_editor(tmp_path: Path, tools: Tools, vsix: Path) -> Editor:
    data = tmp_path / "code-server"
    user = data / "user"
    extensions = data / "extensions"
    workspace = tmp_path / "workspace"
    for folder in (user / "User", extensions, workspace):
        folder.mkdir(parents=True)
    port = free_port()
    (data / "config.yaml").write_text(f"bind-addr: 127.0.0.1:{port}\nauth: none\ncert: false\n")
    server_log = tmp_path / "nearline-serve.log"
    (user / "User" / "settings.json").write_text(json.dumps(editor_settings(server_log), indent=2))
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


def run_driver(editor: Editor, tools: Tools, tmp_path: Path, sample: Path) -> DriverRun:
    """Start code-server, run ``vscode_driver.js`` against it, stop everything."""
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


# -- the test ------------------------------------------------------------------------------------
def test_vscode_ghost_text_accept_and_status(tmp_path: Path) -> None:
    started = time.monotonic()
    try:
        tools = ensure_tools()
        installed = time.monotonic()
        vsix = build_extension(tools, tmp_path, tmp_path / "build.log")
        built = time.monotonic()
        editor = prepare_editor(tmp_path, tools, vsix)
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
        f"\nvscode e2e: tools {installed - started:.0f} s, build {built - installed:.0f} s, "
        f"editor {finished - built:.0f} s; ghost {ghost!r} after {result['ghostMs']} ms; "
        f"status {status!r}"
    )
