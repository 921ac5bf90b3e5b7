"""The usage dashboard in the browser (``nearline dashboard``): an adapter like ``lsp/`` and
``cli/``, and the only code that knows the web library (Starlette, served by uvicorn)."""
