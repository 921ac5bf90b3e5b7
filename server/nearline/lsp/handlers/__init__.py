"""One module per feature; each function takes the ``Connection`` and the LSP params, and
delegates to the state and the ``app`` use cases."""
