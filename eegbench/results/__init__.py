"""What came out: the SQLite results store (``store``), the leaderboard grouped on recipe keys
(``leaderboard``) with its statistics (``stats``), its rendering (``report``, ``plots``), exports and the
status of a results directory."""
