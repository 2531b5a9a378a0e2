"""eegbench's built-in plugins (imported as ``eegbench_plugins``).

Each module listed under ``[project.entry-points.eegbench]`` in ``pyproject.toml`` is a pluggy plugin,
registered exactly like a third-party package's: no built-in is registered by a direct call.
"""
