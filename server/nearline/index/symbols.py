"""What the index keeps of one file: its top-level symbols (with signatures and the first line
of their docstrings) and its imports. Pure functions; Python is read with ``ast``.

No value is kept: a constant is its name (and annotation), a function its signature with
defaults shortened, so a secret assigned in a file does not reach the index.
"""

from __future__ import annotations

import ast
import enum
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

MAX_SIGNATURE = 240
"""Characters of a signature kept: a function's last parameters give way to ``...`` (its
return annotation stays); other lines end in an ellipsis."""
MAX_DEFAULT = 24
"""A default value longer than this is written ``...``."""
MAX_SYMBOLS = 200
WHOLE_PARSE_CHARS = 64 * 1024
"""An edit that leaves a chunk of a larger file unparseable is not parsed again whole (that
would cost ~2 ms per KB, and the chunk split is right but for a column-0 line inside a
multi-line string)."""
"""Top-level symbols kept per file (classes' methods included)."""


class SymbolKind(enum.Enum):
    FUNCTION = "function"
    CLASS = "class"
    METHOD = "method"
    FIELD = "field"
    """A class's annotated attribute (a dataclass's field)."""
    CONSTANT = "constant"


@dataclass(frozen=True)
class Symbol:
    name: str
    """A method's is ``Class.method``."""
    kind: SymbolKind
    signature: str
    """One line of source as a reader would write it: ``def f(a: int) -> str``."""
    doc: str
    """The docstring's first line, or ""."""
    line: int
    """0-based."""


@dataclass(frozen=True)
class FileEntry:
    path: str
    """POSIX, relative to the project root."""
    digest: str
    """sha256 of the file's bytes (hex, 16 characters)."""
    language: str
    symbols: tuple[Symbol, ...] = ()
    imports: tuple[str, ...] = ()
    """Modules imported, as written (``nearline.config``, ``.prompts``)."""
    import_lines: tuple[int, ...] = ()
    """The 0-based line of each import."""
    error: str = ""
    """Why (some of) the symbols could not be read: a syntax error."""
    chunks: bytes = b""
    """The file's top-level chunks (see ``chunk_starts``), 12 bytes each: a hash of the
    chunk's text and its line count. An edit parses only the chunks it changed."""

    @property
    def module(self) -> str:
        """The dotted module name a Python import would use (``pkg/mod.py`` → ``pkg.mod``)."""
        return module_name(self.path)


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def module_name(path: str) -> str:
    stem = re.sub(r"\.[^./]+$", "", path)
    parts = [p for p in stem.split("/") if p]
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_CHUNK = struct.Struct("<QI")
_NOT_A_START = frozenset(" \t\r\n#)]}'\"")
_CLAUSES = ("else", "elif", "except", "finally")
_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError)


def chunk_starts(lines: Sequence[str]) -> list[int]:
    """Where top-level chunks start: lines with code at column 0, except a compound
    statement's clauses (``else:``, ``except``) and what follows a decorator. The first chunk
    starts at 0. A start inside a multi-line string makes chunks that do not parse alone;
    ``scan_text`` then parses the whole file."""
    starts = [0]
    decorated = False
    for i, line in enumerate(lines):
        if not line or line[0] in _NOT_A_START:
            continue
        if decorated:
            decorated = line.startswith("@")
            continue
        if line.startswith(_CLAUSES) and not line[4:5].isidentifier():
            continue
        if i:
            starts.append(i)
        decorated = line.startswith("@")
    return starts


def _chunk_hash(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def scan_text(
    path: str,
    text: str,
    language: str,
    digest: str | None = None,
    previous: FileEntry | None = None,
) -> FileEntry:
    """The entry of a file whose (decoded) ``text`` is given. With the file's ``previous``
    entry, only the top-level chunks that changed are parsed again (an edit of a large file
    costs what its changed chunks cost)."""
    digest = digest or digest_of(text.encode("utf-8", "surrogatepass"))
    if language != "python":
        return FileEntry(path, digest, language)
    lines = text.splitlines(keepends=True)
    starts = chunk_starts(lines)
    bounds = list(zip(starts, [*starts[1:], len(lines)], strict=True))
    texts = ["".join(lines[a:b]) for a, b in bounds]
    chunks = b"".join(
        _CHUNK.pack(_chunk_hash(t), b - a) for t, (a, b) in zip(texts, bounds, strict=True)
    )
    found = _Found()
    if previous is not None and previous.chunks and not previous.error:
        failed = _scan_changed(found, previous, texts, bounds)
        if not failed:
            return found.entry(path, digest, language, chunks)
        if len(text) > WHOLE_PARSE_CHARS:  # mid-edit in a large file: the rest stays
            where = ", ".join(f"{a + 1}-{b}" for a, b in failed)
            return found.entry(path, digest, language, chunks, f"SyntaxError in lines {where}")
        found = _Found()
    try:
        tree = ast.parse(text, filename=path)
    except _PARSE_ERRORS as exc:  # mid-edit: what the chunks that parse give
        found = _Found()
        for t, (a, _) in zip(texts, bounds, strict=True):
            _scan_chunk(found, t, a)
        error = f"{type(exc).__name__}: {exc}"[:200]
        return found.entry(path, digest, language, chunks, error)
    for node in tree.body:
        _top_level(node, found)
    return found.entry(path, digest, language, chunks)


@dataclass
class _Found:
    """Symbols and imports as they are found, in file order."""

    symbols: list[Symbol] = field(default_factory=list)
    imports: list[tuple[int, str]] = field(default_factory=list)

    def entry(
        self, path: str, digest: str, language: str, chunks: bytes, error: str = ""
    ) -> FileEntry:
        return FileEntry(
            path,
            digest,
            language,
            tuple(self.symbols[:MAX_SYMBOLS]),
            tuple(m for _, m in self.imports),
            tuple(line for line, _ in self.imports),
            error,
            chunks,
        )


def _scan_chunk(found: _Found, text: str, start: int) -> bool:
    """Parse one chunk alone (its lines shifted by ``start``); False if it does not parse."""
    try:
        tree = ast.parse(text)
    except _PARSE_ERRORS:
        return False
    if start:
        ast.increment_lineno(tree, start)
    for node in tree.body:
        _top_level(node, found)
    return True


def _scan_changed(
    found: _Found, previous: FileEntry, texts: list[str], bounds: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The symbols of unchanged chunks from ``previous`` (lines shifted), changed chunks
    parsed alone; the line ranges of those that do not parse."""
    old: dict[tuple[int, int], int] = {}
    line = 0
    for key in _CHUNK.iter_unpack(previous.chunks):
        old.setdefault(key, line)
        line += key[1]
    failed = []
    for t, (a, b) in zip(texts, bounds, strict=True):
        was = old.get((_chunk_hash(t), b - a))
        if was is None:
            if not _scan_chunk(found, t, a):
                failed.append((a, b))
            continue
        shift = a - was
        found.symbols.extend(
            replace(s, line=s.line + shift) for s in previous.symbols if was <= s.line < was + b - a
        )
        found.imports.extend(
            (n + shift, m)
            for n, m in zip(previous.import_lines, previous.imports, strict=True)
            if was <= n < was + b - a
        )
    return failed


def _top_level(node: ast.stmt, found: _Found) -> None:
    symbols, line = found.symbols, node.lineno - 1
    if isinstance(node, ast.Import):
        found.imports.extend((line, alias.name) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        found.imports.append((line, "." * node.level + (node.module or "")))
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        symbols.append(_function(node, node.name, SymbolKind.FUNCTION))
    elif isinstance(node, ast.ClassDef):
        symbols.append(_class(node))
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                not item.name.startswith("_") or item.name == "__init__"
            ):
                symbols.append(_function(item, f"{node.name}.{item.name}", SymbolKind.METHOD))
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                name = f"{node.name}.{item.target.id}"
                signature = _clip(f"{item.target.id}: {ast.unparse(item.annotation)}")
                symbols.append(Symbol(name, SymbolKind.FIELD, signature, "", item.lineno - 1))
    elif isinstance(node, (ast.Assign, ast.AnnAssign)):
        symbols.extend(_constants(node))
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
        for inner in node.body:
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                _top_level(inner, found)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _doc(node: ast.AST) -> str:
    doc = ast.get_docstring(node, clean=True) if isinstance(node, _DOCUMENTED) else None
    return doc.strip().split("\n", 1)[0][:MAX_SIGNATURE] if doc else ""


_DOCUMENTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)


def _short(node: ast.expr | None) -> str:
    if node is None:
        return ""
    text = ast.unparse(node)
    return text if len(text) <= MAX_DEFAULT else "..."


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_SIGNATURE else text[: MAX_SIGNATURE - 3] + "..."


def _arguments(args: ast.arguments) -> list[str]:
    parts: list[str] = []
    positional = [*args.posonlyargs, *args.args]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for i, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        parts.append(_arg(arg, default))
        if args.posonlyargs and i == len(args.posonlyargs) - 1:
            parts.append("/")
    if args.vararg is not None:
        parts.append("*" + _arg(args.vararg, None))
    elif args.kwonlyargs:
        parts.append("*")
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        parts.append(_arg(arg, default))
    if args.kwarg is not None:
        parts.append("**" + _arg(args.kwarg, None))
    return parts


def _arg(arg: ast.arg, default: ast.expr | None) -> str:
    text = arg.arg
    if arg.annotation is not None:
        text += ": " + ast.unparse(arg.annotation)
        if default is not None:
            text += " = " + _short(default)
    elif default is not None:
        text += "=" + _short(default)
    return text


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef, name: str, kind: SymbolKind) -> Symbol:
    head = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {_clip(ast.unparse(node.returns))}" if node.returns is not None else ""
    params = [" ".join(p.split()) for p in _arguments(node.args)]

    def shown(n: int) -> str:
        kept = params[:n] + (["..."] if n < len(params) else [])
        return f"{head} {node.name}({', '.join(kept)}){returns}"

    n = len(params)
    while n > 0 and len(shown(n)) > MAX_SIGNATURE:
        n -= 1
    signature = shown(n)
    return Symbol(name, kind, signature, _doc(node), node.lineno - 1)


def _class(node: ast.ClassDef) -> Symbol:
    bases = [ast.unparse(b) for b in node.bases] + [
        f"{k.arg}={_short(k.value)}" if k.arg else "**" + _short(k.value) for k in node.keywords
    ]
    signature = f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}"
    return Symbol(node.name, SymbolKind.CLASS, _clip(signature), _doc(node), node.lineno - 1)


def _constants(node: ast.Assign | ast.AnnAssign) -> list[Symbol]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    annotation = ": " + ast.unparse(node.annotation) if isinstance(node, ast.AnnAssign) else ""
    out = []
    for target in targets:
        if isinstance(target, ast.Name) and not target.id.startswith("__"):
            signature = _clip(target.id + annotation)
            out.append(Symbol(target.id, SymbolKind.CONSTANT, signature, "", node.lineno - 1))
    return out
