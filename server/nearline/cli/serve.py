"""``nearline serve``: the language server over stdio (``--tcp`` for debugging)."""

from __future__ import annotations

import argparse
import os
import sys

from nearline.cli.common import overrides


def run(args: argparse.Namespace) -> int:
    from nearline.lsp import create_server
    from nearline.lsp.server import serve_stdio

    server = create_server(overrides(args))
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
        return 0
    # LSP owns the real stdout; anything else that writes to fd 1 (C libraries) goes to stderr.
    lsp_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    serve_stdio(server, sys.stdin.buffer, lsp_out)
