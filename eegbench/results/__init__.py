"""What came out: the results store (``store``: one SQLite database per results directory, cells and their
rows), the leaderboard built from it (``leaderboard``) with its statistics (``stats``), rendered as tables and
a report (``report``) with figures (``plots``), the raw rows as one tidy table (``export``) and each cell's
status (``status``)."""
