"""What to run: a benchmark spec (TOML) is read and validated (``spec``), expanded into typed recipes and
placements (``recipe``), and planned into cells over folds, seeds, stages and ratios (``plan``)."""
