"""A bare JSON-RPC client over stdio: sends bytes pygls' own client would refuse to build."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any


class RawLsp:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nearline", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=env,
        )
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Condition()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert length is not None
            body = json.loads(out.read(length))
            with self._lock:
                self.messages.append(body)
                self._lock.notify_all()

    def send_bytes(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(json.dumps(message).encode())

    def request(self, method: str, params: Any, timeout: float = 30) -> dict[str, Any]:
        self._next += 1
        msg_id = self._next
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait(self, match: Any, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for m in self.messages:
                    if match(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching message from the server")
                self._lock.wait(left)

    def initialize(self, options: Any = None) -> dict[str, Any]:
        result = self.request(
            "initialize",
            {"processId": None, "capabilities": {}, "initializationOptions": options},
        )
        self.notify("initialized", {})
        return result

    def close(self) -> int:
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
