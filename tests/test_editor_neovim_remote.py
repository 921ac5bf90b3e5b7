"""End to end in a real Neovim with the plugin in ``clients/neovim`` and ``[completion.remote]``
pointing at a real ``python -m llama_cpp.server`` on 127.0.0.1: the server's ghost text (in
first, or replacing the local model's through ``nearline/completionReady``), then, once the
server is killed, the local model's, with no error in the editor.

The server runs the same default model as the editor's local engine (the only one a clean
machine has), so their answers are alike: until the server is killed the local one is held
back (``min_confidence = 1``), which makes the ghost text surely the server's."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.llama_server import llama_cpp_server, served_model
from test_editor_neovim import (  # noqa: F401 (fixtures)
    FIRST_GHOST_S,
    LAST,
    PLUGIN,
    PREFIX,
    SERVER_CMD,
    Editor,
    fib_file,
    lua_list,
    lua_string,
    start_editor,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

LUCAS = [
    "",
    "",
    "def lucas(n):",
    "    if n < 2:",
    "        return 2 - n",
    "    return lucas(n - 1) +",
]

REMOTE_INIT = """
vim.opt.runtimepath:prepend({plugin})
_G.notes = {{}}
vim.notify = function(msg, level) table.insert(_G.notes, {{ msg = msg, level = level }}) end
require('nearline').setup({{
  cmd = {cmd},
  init_options = {{ completion = {{ time_budget_ms = 50, min_confidence = 1, remote = {{
    kind = 'openai', url = {url}, model = {model}, read_timeout_s = 60, cooldown_s = 1,
  }} }} }},
}})
vim.o.laststatus = 2
vim.o.statusline = '%f %{{%v:lua.require("nearline").statusline()%}}'
"""


def shown_engine(stats: dict[str, Any]) -> str | None:
    """The engine of the newest answer that had text."""
    for record in reversed(stats.get("recent") or []):
        if record.get("chars"):
            return str(record.get("engine"))
    return None


def errors(nv: Editor) -> list[Any]:
    return [n for n in nv.lua("return _G.notes") if n["level"] >= 4]  # vim.log.levels.ERROR


def test_the_servers_ghost_text_then_the_local_models_once_it_is_killed(
    start_editor: Callable[[str, Path], Editor],  # noqa: F811 (the fixture)
    fib_file: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    with llama_cpp_server(tmp_path) as (process, url):
        init = REMOTE_INIT.format(
            plugin=lua_string(str(PLUGIN)),
            cmd=lua_list(SERVER_CMD),
            url=lua_string(url),
            model=lua_string(served_model(url)),
        )
        nv = start_editor(init, fib_file)
        nv.wait_attached()
        nv.keys(f"{LAST}GA ")

        def remote_ghost() -> str | None:
            ghost = nv.ghost()
            return ghost if ghost and shown_engine(nv.stats()) == "remote" else None

        started = time.monotonic()
        shown = wait_for("the server's ghost text", remote_ghost, FIRST_GHOST_S, 0.5)
        status = nv.lua("return vim.api.nvim_eval_statusline(vim.o.statusline, {}).str")
        print(f"remote ghost text {shown!r} after {time.monotonic() - started:.1f} s; {status}")
        assert "nearline: remote" in status, status
        assert nv.line(LAST) == PREFIX + " "

        process.kill()
        process.wait(timeout=30)

    # The server is gone: the next keystrokes get the local model's ghost text.
    nv.lua(
        "vim.lsp.get_clients({ name = 'nearline' })[1]:notify('workspace/didChangeConfiguration',"
        " { settings = { nearline = { completion = { min_confidence = 0 } } } })"
    )
    nv.keys("<Esc>")
    nv.nvim.current.buffer.append(LUCAS)
    nv.keys("GA ")  # a new place: the server's suggestion above does not answer it

    def local_ghost() -> str | None:
        ghost = nv.ghost()
        return ghost if ghost and shown_engine(nv.stats()) == "local" else None

    started = time.monotonic()
    shown = wait_for("the local model's ghost text", local_ghost, 60, 0.5)
    print(f"local ghost text {shown!r} after {time.monotonic() - started:.1f} s")
    remote = nv.stats()["remote"]
    assert remote["errors"] >= 1, remote
    assert not errors(nv), nv.lua("return _G.notes")
