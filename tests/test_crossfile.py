"""Cross-file context: the definitions a document imports, as stubs before the window, chosen
again only when the window moves (so a keystroke keeps the prompt's start)."""

from __future__ import annotations

from pathlib import Path

from nearline.completion.context import build_context
from nearline.completion.crossfile import blocks_for, read_imports, resolve
from nearline.completion.engine.templates import get_template
from nearline.completion.service import build_prompt
from nearline.index.store import ProjectIndex

MODELS = '''\
class Request:
    """An HTTP request."""

    method: str
    url: str

    def read(self) -> bytes:
        """The body."""

    def _private(self) -> None: ...


def make(method: str, url: str) -> Request: ...
def unrelated() -> None: ...
'''
UTILS = "def quote(text: str, safe: str = '/') -> str: ...\ndef other() -> None: ...\n"
CLIENT = """\
import os
from ._models import Request, make
from . import _utils as u
from pkg import (
    missing,
)


def send(r: Request) -> bytes:
    path = u.quote(r.url)
    body = r.read()
    return r.
"""


def project(tmp_path: Path) -> ProjectIndex:
    root = tmp_path / "p"
    for rel, text in {
        "pkg/__init__.py": "",
        "pkg/_models.py": MODELS,
        "pkg/_utils.py": UTILS,
        "pkg/client.py": CLIENT,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    index = ProjectIndex(root, None)
    index.refresh()
    return index


def test_imports_are_read_from_lines_even_mid_edit() -> None:
    imports = read_imports(CLIENT.splitlines(keepends=True))
    assert [(i.module, i.names, i.alias) for i in imports] == [
        ("os", (), "os"),
        ("._models", (("Request", "Request"), ("make", "make")), ""),
        (".", (("_utils", "u"),), ""),
        ("pkg", (("missing", "missing"),), ""),
    ]


def test_relative_and_absolute_modules_resolve(tmp_path: Path) -> None:
    modules = project(tmp_path).modules()
    assert resolve("._models", "pkg/client.py", modules).path == "pkg/_models.py"  # type: ignore[union-attr]
    assert resolve("pkg._utils", "pkg/client.py", modules).path == "pkg/_utils.py"  # type: ignore[union-attr]
    assert resolve("os", "pkg/client.py", modules) is None


def test_blocks_hold_what_the_file_imports_and_uses(tmp_path: Path) -> None:
    modules = project(tmp_path).modules()
    lines = CLIENT.splitlines(keepends=True)
    blocks = blocks_for("pkg/client.py", lines, modules, 2000)
    assert [b.path for b in blocks] == ["pkg/_models.py", "pkg/_utils.py"]
    assert blocks[0].text == (
        "class Request:\n"
        '    """An HTTP request."""\n'
        "    method: str\n"
        "    url: str\n"
        "    def read(self) -> bytes:\n"
        '        """The body."""\n'
        "def make(method: str, url: str) -> Request:\n"
        "    ..."
    )
    assert blocks[1].text == "def quote(text: str, safe: str = '/') -> str:\n    ..."
    # The name used most comes first; a method called by name only when there is room.
    small = blocks_for("pkg/client.py", lines, modules, 100)
    assert [b.path for b in small] == ["pkg/_models.py"]
    assert small[0].text.startswith("class Request:") and "def read" not in small[0].text
    assert blocks_for("pkg/client.py", lines, modules, 0) == []


def test_the_prompt_puts_blocks_before_the_window_in_the_family_format(tmp_path: Path) -> None:
    modules = project(tmp_path).modules()
    lines = CLIENT.splitlines(keepends=True)
    ctx = build_context(
        lines, 11, 13, previous_anchor=None, max_prefix_chars=1200, max_suffix_chars=400
    )
    ctx = ctx.__class__(
        **{**ctx.__dict__, "repo": tuple(blocks_for("pkg/client.py", lines, modules, 2000))}
    )
    qwen = get_template("qwen2.5-coder")
    prompt = build_prompt(qwen, ctx, "client.py", "pkg/client.py", "p")
    assert prompt.startswith("<|repo_name|>p\n<|file_sep|>pkg/_models.py\nclass Request:")
    assert "<|file_sep|>pkg/client.py\n<|fim_prefix|>import os" in prompt
    # A family without a repository format gets none (SmolLM2 measured no gain from comments).
    plain = build_prompt(get_template("prefix-only"), ctx, "client.py", "pkg/client.py", "p")
    assert plain.startswith("import os\n") and plain.endswith("    return r.")


async def test_the_service_keeps_the_blocks_while_typing_and_chooses_again_when_the_window_moves(
    tmp_path: Path,
) -> None:
    from nearline.completion import CompletionService
    from nearline.completion.cache import CompletionCache
    from nearline.config import parse_settings
    from nearline.documents import DocumentView, split_lines
    from support.fake_engine import FakeEngine

    index = project(tmp_path)
    uri = (index.root / "pkg" / "client.py").as_uri()
    settings = parse_settings(
        {"completion": {"warmup": False, "max_prefix_chars": 200, "cross_file_chars": 2000}}
    )
    from nearline.completion.engine.templates import detect_template

    engine = FakeEngine("x", template=detect_template(["qwen2.5-coder-0.5b"]))
    service = CompletionService(settings, engine, CompletionCache(None))
    try:
        service.project = index
        text = CLIENT
        first = await service.complete(DocumentView(uri, 1, split_lines(text)), 11, 13, "utf-32")
        assert first.text == "x"
        assert engine.calls[-1].startswith("<|repo_name|>p\n<|file_sep|>pkg/_models.py\n")
        blocks, separator, _ = engine.calls[-1].partition("<|file_sep|>pkg/client.py\n")
        assert separator and "class Request:" in blocks and "def quote(" in blocks
        # A new use of an imported module while typing: the blocks stay as they were, byte for
        # byte, up to the current file's separator.
        text = CLIENT.replace("    return r.", "    u.other()\n    return r.")
        await service.complete(DocumentView(uri, 2, split_lines(text)), 12, 13, "utf-32")
        assert engine.calls[-1].partition(separator)[:2] == (blocks, separator)
        assert "def other" not in blocks
        # The window moves (far below): the blocks are chosen again, with the new use.
        text += "\n" * 2 + "# filler line of text\n" * 20 + "    "
        lines = split_lines(text)
        await service.complete(DocumentView(uri, 3, lines), len(lines) - 1, 4, "utf-32")
        assert "def other() -> None:" in engine.calls[-1]
        service.project = None
        await service.complete(DocumentView(uri, 4, lines), len(lines) - 1, 4, "utf-32")
        assert not engine.calls[-1].startswith("<|repo_name|>")
    finally:
        service.close()


def test_a_family_served_by_its_auto_template_keeps_its_repository_format() -> None:
    from nearline.completion.engine.templates import detect_template

    served = detect_template(["qwen2.5-coder-0.5b-instruct"])
    assert served.id == "prefix-only"
    assert served.repo == "<|file_sep|>{path}\n{text}\n"
    assert served.repo_file == "<|file_sep|>{path}\n"
    assert get_template("prefix-only").repo == ""  # SmolLM2: no cross-file context
