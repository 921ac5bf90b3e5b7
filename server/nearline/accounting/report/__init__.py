"""The usage reports: ``model`` (the ledger's report) and its formats (``text``, ``export``,
``html``); ``team_*`` the team's report over the team database."""
