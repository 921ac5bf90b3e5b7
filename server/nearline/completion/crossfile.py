"""Cross-file context: the definitions a file imports and uses, from the project index, as
short code stubs for the prompt. Pure functions.

The imports are read from the document's lines with patterns (the file is mid-edit, so it may
not parse); a module is found in the index by its dotted name (relative imports against the
file's own package). From ``from M import a, b`` come ``a`` and ``b`` (a class with its fields,
its constructor and the methods the file calls); from ``import M`` / ``from P import M`` the
names of M the file uses as ``M.name``. The names used most come first, until ``max_chars``.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nearline.index import FileEntry, Symbol, SymbolKind

_FROM = re.compile(r"^from\s+(\.*[\w.]*)\s+import\s+(.*)$")
_IMPORT = re.compile(r"^import\s+(.+)$")
_NAME = re.compile(r"[A-Za-z_]\w*")
MAX_IMPORT_LINES = 400
"""Imports are looked for in the file's first lines only (and top-level ones)."""


@dataclass(frozen=True)
class Import:
    module: str
    """As written: ``pkg.mod`` or ``..mod``."""
    names: tuple[tuple[str, str], ...] = ()
    """``from`` imports: (name, the name it is bound to)."""
    alias: str = ""
    """``import M as X``: X; ``import M``: M."""


@dataclass(frozen=True)
class Block:
    path: str
    text: str
    """Stub code: signatures, docstring first lines, ``...`` bodies."""


def read_imports(lines: Sequence[str]) -> list[Import]:
    """Top-level imports, in order; a parenthesized list may span lines."""
    out: list[Import] = []
    i, n = 0, min(len(lines), MAX_IMPORT_LINES)
    while i < n:
        line = lines[i].rstrip()
        i += 1
        if (m := _FROM.match(line)) is not None:
            names = m.group(2)
            if names.lstrip().startswith("(") and ")" not in names:
                while i < n and ")" not in names:
                    names += " " + lines[i].strip()
                    i += 1
            names = names.split("#", 1)[0].strip().strip("()").rstrip("\\")
            pairs = []
            for part in names.split(","):
                words = part.split()
                if not words or not _NAME.fullmatch(words[0]):
                    continue
                bound = words[2] if len(words) == 3 and words[1] == "as" else words[0]
                pairs.append((words[0], bound))
            out.append(Import(m.group(1), tuple(pairs)))
        elif (m := _IMPORT.match(line)) is not None:
            for part in m.group(1).split("#", 1)[0].split(","):
                words = part.split()
                if not words:
                    continue
                alias = words[2] if len(words) == 3 and words[1] == "as" else words[0]
                out.append(Import(words[0], alias=alias))
    return out


def resolve(module: str, current: str, modules: Mapping[str, FileEntry]) -> FileEntry | None:
    """The index entry of ``module`` imported from the file at ``current`` (a relative
    path); None when it is not part of the project."""
    if module.startswith("."):
        dots = len(module) - len(module.lstrip("."))
        package = current.split("/")[:-1]
        if dots > 1:
            package = package[: len(package) - (dots - 1)] if dots - 1 <= len(package) else []
        rest = module[dots:]
        parts = [*package, *rest.split(".")] if rest else package
        for start in range(len(parts)):  # the root may be above the top package
            found = modules.get(".".join(parts[start:]))
            if found is not None:
                return found
        return None
    return modules.get(module)


def used_names(text: str, alias: str) -> list[tuple[str, int]]:
    """The attributes the text uses on ``alias`` (``alias.name``), with how often, in order
    of first use."""
    found = re.findall(rf"(?<![\w.]){re.escape(alias)}\.([A-Za-z_]\w*)", text)
    return list(collections.Counter(found).items())


def _stub_lines(symbol: Symbol, indent: str) -> list[str]:
    if symbol.kind in (SymbolKind.CONSTANT, SymbolKind.FIELD):
        return [indent + symbol.signature]
    if symbol.kind is SymbolKind.CLASS:
        head = [f"{indent}{symbol.signature}:"]
        return head + ([f'{indent}    """{symbol.doc}"""'] if symbol.doc else [])
    body = f'"""{symbol.doc}"""' if symbol.doc else "..."
    return [f"{indent}{symbol.signature}:", f"{indent}    {body}"]


@dataclass(frozen=True)
class _Wanted:
    entry: FileEntry
    name: str
    uses: int
    order: int


def _pieces(wanted: _Wanted, text: str) -> tuple[list[Symbol], list[Symbol]]:
    """What to show of one imported name: first its head (a function's signature; a class's
    header, fields and constructor), then the methods the text calls by name."""
    head: list[Symbol] = []
    methods: list[Symbol] = []
    for symbol in wanted.entry.symbols:
        owner, _, member = symbol.name.partition(".")
        if symbol.name == wanted.name:
            head.append(symbol)
        elif owner == wanted.name and member:
            if symbol.kind is SymbolKind.FIELD or member == "__init__":
                head.append(symbol)
            elif re.search(rf"\.{re.escape(member)}\b", text):
                methods.append(symbol)
    return head, methods


def _indent(symbol: Symbol) -> str:
    return "    " if "." in symbol.name else ""


def _render(entry: FileEntry, chosen: set[str]) -> str:
    lines: list[str] = []
    for symbol in entry.symbols:  # the file's own order
        if symbol.name in chosen:
            lines.extend(_stub_lines(symbol, _indent(symbol)))
    return "\n".join(lines)


def blocks_for(
    current: str,
    lines: Sequence[str],
    modules: Mapping[str, FileEntry],
    max_chars: int,
) -> list[Block]:
    """Cross-file blocks for the file at ``current`` (relative path) with these ``lines``,
    within ``max_chars``: the imported names the text uses most come first (each one's head,
    then the methods it calls), each file's stubs in the file's order, the files in the order
    their first name was chosen."""
    if max_chars <= 0:
        return []
    text = "".join(lines)
    wanted: list[_Wanted] = []

    def want(entry: FileEntry | None, names: Sequence[tuple[str, int]]) -> None:
        if entry is None or entry.path == current or not entry.symbols:
            return
        defined = {s.name for s in entry.symbols}
        for name, uses in names:
            if name in defined:
                wanted.append(_Wanted(entry, name, uses, len(wanted)))

    for imp in read_imports(lines):
        if imp.names:
            base = resolve(imp.module, current, modules)
            defined = {s.name for s in base.symbols} if base is not None else set()
            want(base, [(name, _count(text, bound)) for name, bound in imp.names])
            for name, bound in imp.names:
                if name not in defined:  # ``from pkg import module``
                    sub = f"{imp.module}.{name}" if imp.module.strip(".") else imp.module + name
                    want(resolve(sub, current, modules), used_names(text, bound))
        else:
            want(resolve(imp.module, current, modules), used_names(text, imp.alias))
    wanted.sort(key=lambda w: (-w.uses, w.order))
    chosen: dict[str, set[str]] = {}
    entries: dict[str, FileEntry] = {}
    room = max_chars
    pieces = [_pieces(w, text) for w in wanted]
    for stage in (0, 1):
        for w, parts in zip(wanted, pieces, strict=True):
            symbols = parts[stage]
            cost = sum(len("\n".join(_stub_lines(s, _indent(s)))) + 1 for s in symbols)
            if not symbols or cost > room:
                continue
            if w.entry.path not in chosen:
                cost += len(w.entry.path) + 2
                if cost > room:
                    continue
                chosen[w.entry.path] = set()
                entries[w.entry.path] = w.entry
            chosen[w.entry.path].update(s.name for s in symbols)
            room -= cost
    return [Block(path, _render(entries[path], names)) for path, names in chosen.items()]


def _count(text: str, name: str) -> int:
    """How often ``name`` occurs in the text as a word (its import included)."""
    return len(re.findall(rf"(?<![\w.]){re.escape(name)}\b", text))
