"""The only package that knows pygls and lsprotocol: the server (``server``), nearline's
protocol extensions (``protocol``), the connection's state (``state``) and what it tells the
person (``notifier``), LSP conversions (``convert``), and one handler module per feature."""

from nearline.lsp.server import create_server

__all__ = ["create_server"]
