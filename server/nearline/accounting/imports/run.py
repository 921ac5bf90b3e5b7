"""One import: a source's files (its default folders, or the paths given) read from where the
last import stopped, their records priced and written to the ledger, and one summary line per
file read. A file unchanged since it was last read is not opened."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from nearline.accounting.entries import CostSource, Entry, imported_entry
from nearline.accounting.imports.records import ToolDay, Usage
from nearline.accounting.imports.sources import SOURCES, Source
from nearline.accounting.ledger import imported as store
from nearline.accounting.ledger.schema import check_not_a_folder, connect, migrate
from nearline.accounting.prices import Price, PriceTable, Tokens, candidates
from nearline.errors import ConfigError, LedgerError

Guard = Callable[[], AbstractContextManager[object]]
"""Held around each ledger transaction (the background import stops only outside them)."""
BATCH = 5000
OPEN_S = 300.0
"""A log written to this recently may belong to a session still running: its last message
may still grow, so it is left for the next import."""


@dataclass
class ImportResult:
    source: str
    files: int = 0
    """Files found."""
    unchanged: int = 0
    """Files not opened: as they were when last read."""
    records: int = 0
    written: int = 0
    """Rows added or grown (0 when everything was there already)."""
    lines: list[str] = field(default_factory=list)
    """One summary line per file read."""
    unpriced: set[str] = field(default_factory=set)
    """Models the price table does not know (their rows cost 0)."""
    own_requests: int = 0
    """nearline's own requests found in a provider's export, and taken out of it."""

    def summary(self) -> str:
        said = (
            f"{self.source}: {self.records} records in {self.files - self.unchanged} files read "
            f"({self.unchanged} unchanged), {self.written} rows added or updated"
        )
        if self.own_requests:
            said += f"; less {self.own_requests} of nearline's own requests, in the ledger already"
        if self.unpriced:
            said += f"; no price for {', '.join(sorted(self.unpriced))} (cost 0)"
        return said


def source_of(name: str) -> Source:
    found = SOURCES.get(name)
    if found is None:
        raise ConfigError(f"unknown usage source {name!r}: expected {' | '.join(SOURCES)}")
    return found


def files_of(source: Source, paths: Sequence[Path], env: Mapping[str, str]) -> list[Path]:
    """The paths given (folders searched), else the source's default folders; sorted, and
    absolute (how far each was read is kept by its path)."""
    found: set[Path] = set()
    for place in [p.absolute() for p in paths or source.roots(env)]:
        if place.is_dir():
            for pattern in source.patterns:
                found.update(p for p in place.rglob(pattern) if p.is_file())
        elif place.is_file():
            found.add(place)
        elif paths:
            raise ConfigError(f"{place}: no such file or folder")
    return sorted(found)


class Pricer:
    """A record's cost: the tool's own figure, else its tokens at the price table's price."""

    def __init__(self, table: PriceTable) -> None:
        self.table = table
        self._known: dict[str, Price | None] = {}

    def __call__(self, usage: Usage, tokens: Tokens) -> tuple[float, CostSource]:
        if usage.cost_usd is not None:
            return usage.cost_usd, CostSource.TOOL
        if usage.model not in self._known:
            self._known[usage.model] = self.table.get(usage.model)
        price = self._known[usage.model]
        if price is None:
            return 0.0, CostSource.UNPRICED
        return price.cost(tokens), CostSource.PRICE_TABLE


def entry_of(usage: Usage, source: Source, pricer: Pricer) -> Entry:
    tokens = Tokens(
        input=usage.input_tokens,
        cache_read=usage.cache_read_tokens,
        cache_write=usage.cache_write_tokens,
        output=usage.output_tokens,
        cache_write_1h=usage.cache_write_1h_tokens,
    )
    cost, cost_source = pricer(usage, tokens)
    return imported_entry(
        source=source.name,
        key=usage.key,
        ts=usage.ts,
        provider=usage.provider or source.provider,
        model=usage.model,
        tokens=tokens,
        cost_usd=cost,
        cost_source=cost_source,
        project=usage.project,
    )


def without_own(
    usage: Usage, conn: sqlite3.Connection, providers: Sequence[str], result: ImportResult
) -> Usage:
    """A provider export's aggregate less nearline's own requests in the same span and model
    (the ledger holds them already): each token class down to no less than 0."""
    if usage.until is None:
        return usage
    model = candidates(usage.model)[-1] if usage.model else ""
    own = [0, 0, 0, 0]
    for name, requests, *tokens in store.own_usage(conn, providers, usage.ts, usage.until):
        if model and candidates(name)[-1] == model:
            result.own_requests += requests
            own = [a + b for a, b in zip(own, tokens, strict=True)]
    if own == [0, 0, 0, 0]:
        return usage
    return dataclasses.replace(
        usage,
        input_tokens=max(usage.input_tokens - own[0], 0),
        cache_read_tokens=max(usage.cache_read_tokens - own[1], 0),
        cache_write_tokens=max(usage.cache_write_tokens - own[2], 0),
        cache_write_1h_tokens=min(
            usage.cache_write_1h_tokens, max(usage.cache_write_tokens - own[2], 0)
        ),
        output_tokens=max(usage.output_tokens - own[3], 0),
    )


def start_of(kept: store.Position | None, st: os.stat_result, whole: bool) -> int | None:
    """Where to read from: None when the file is as it was; 0 for a new, replaced or
    shrunk file (its records are read again, and counted once); else where it was left."""
    if kept is None or (kept.device, kept.inode) != (st.st_dev, st.st_ino):
        return 0
    same = kept.size == st.st_size and kept.mtime_ns == st.st_mtime_ns
    if same and kept.end >= kept.size:
        return None  # read to its end, and unchanged since
    if same and whole:
        return None
    if whole or st.st_size < kept.end:
        return 0
    return kept.end


def import_source(
    name: str,
    paths: Sequence[Path],
    conn: sqlite3.Connection,
    table: PriceTable,
    *,
    env: Mapping[str, str] = os.environ,
    now: float | None = None,
    own: Sequence[str] = (),
    guard: Guard = contextlib.nullcontext,
) -> ImportResult:
    """Import ``name``'s records from ``paths`` (default: where the tool keeps them).
    ``own``: nearline's providers (their ledger names) whose traffic a provider's export of
    this source holds too."""
    source = source_of(name)
    now = time.time() if now is None else now
    files = files_of(source, paths, env)
    result = ImportResult(source.name, files=len(files))
    kept = store.positions(conn, source.name)
    pricer = Pricer(table)
    pending = Pending(conn, result, guard)
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        key = store.file_key(str(path))
        start = start_of(kept.get(key), st, source.whole_file)
        if start is None:
            result.unchanged += 1
            continue
        hold = now - st.st_mtime < OPEN_S
        records, read = source.read(path, start, hold_last=hold)
        try:
            count = _read_file(source, records, (pricer, own), pending)
        except OSError as exc:
            result.lines.append(f"{path.name}: cannot read ({exc.strerror or exc}); skipped")
            continue
        pending.done(
            store.Position(
                key, source.name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, read.end
            )
        )
        result.records += count
        result.lines.append(read.summary(count))
    pending.flush()
    return result


class Pending:
    """Rows on their way to the ledger, a transaction per ``BATCH`` (many small files' rows
    in one), each file's position with or after its last rows."""

    def __init__(
        self, conn: sqlite3.Connection, result: ImportResult, guard: Guard = contextlib.nullcontext
    ) -> None:
        self.conn, self.result, self.guard = conn, result, guard
        self.entries: list[Entry] = []
        self.positions: list[store.Position] = []

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        if len(self.entries) >= BATCH:
            self.flush()

    def done(self, position: store.Position) -> None:
        self.positions.append(position)
        if len(self.positions) >= BATCH:
            self.flush()

    def flush(self) -> None:
        with self.guard():
            self.result.written += store.write(self.conn, self.entries, self.positions)
        self.entries, self.positions = [], []


def _read_file(
    source: Source,
    records: Iterator[Usage | ToolDay],
    pricing: tuple[Pricer, Sequence[str]],
    pending: Pending,
) -> int:
    """The file's records priced and on their way (a report's days written at once)."""
    pricer, own = pricing
    conn, result = pending.conn, pending.result
    count = 0
    days: list[ToolDay] = []
    for record in records:
        count += 1
        if isinstance(record, ToolDay):
            days.append(record)
            continue
        if source.provider_kind:
            record = without_own(record, conn, own, result)
        entry = entry_of(record, source, pricer)
        if entry.cost_source == CostSource.UNPRICED:
            result.unpriced.add(record.model or "(no model)")
        pending.add(entry)
    if days:
        with pending.guard():
            result.written += store.write_tool_days(conn, [d.row() for d in days])
    return count


def run_imports(
    names: Iterable[str],
    paths: Sequence[Path],
    ledger: Path,
    table: PriceTable,
    *,
    env: Mapping[str, str] = os.environ,
    timeout: float = 30.0,
    own: Mapping[str, Sequence[str]] | None = None,
    guard: Guard | None = None,
) -> list[ImportResult]:
    """Each source in turn into the ledger at ``ledger`` (made and migrated when needed);
    ``own``: provider kind → nearline's providers of that kind (their ledger names)."""
    check_not_a_folder(ledger)
    try:
        ledger.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(ledger, timeout=timeout)
    except (OSError, sqlite3.Error) as exc:
        raise LedgerError(f"cannot open the usage ledger {ledger}: {exc}") from None
    try:
        migrate(conn)
        return [
            import_source(
                n,
                paths,
                conn,
                table,
                env=env,
                own=(own or {}).get(source_of(n).provider_kind, ()),
                guard=guard or contextlib.nullcontext,
            )
            for n in names
        ]
    except sqlite3.Error as exc:
        raise LedgerError(
            f"cannot write the usage ledger {ledger}: {exc} (nothing is lost: what was not "
            "written is read again next time)"
        ) from None
    finally:
        conn.close()
