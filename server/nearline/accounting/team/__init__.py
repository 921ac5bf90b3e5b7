"""The team ledger on PostgreSQL: the only code that knows psycopg. ``connection`` (the
address, from the environment; errors without secrets), ``schema`` (tables, migrations, the
columns that leave a machine), ``sync`` (the outbox sender), ``figures`` (team spend for
budgets, the anomaly rule) and ``report`` (the team's usage report)."""
