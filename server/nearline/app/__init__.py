"""Use cases without LSP, shared by the server, the CLI and the benchmarks: a completion and its
ledger row (``completions``), an escalation and its ledger row and alerts (``escalations``), the
usage report (``usage``), the project a request belongs to (``project``), install checks
(``doctor``), the workspace's index and its build in a child process (``indexing``,
``index_build``)."""
