"""Where eegbench keeps caches, data and results.

Order of precedence: an explicit argument (spec or CLI) > environment variable > per-user default
(platformdirs). ``EEGBENCH_CACHE`` holds prepared EEG and image embeddings; ``EEGBENCH_DATA`` datasets
(downloads and the synthetic twin); ``EEGBENCH_RESULTS`` the results database and checkpoints.
"""
from __future__ import annotations

import os
from pathlib import Path


def _user_dir(kind: str) -> Path:
    import platformdirs

    if kind == "cache":
        return Path(platformdirs.user_cache_dir("eegbench"))
    return Path(platformdirs.user_data_dir("eegbench")) / kind


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("EEGBENCH_CACHE")
    return Path(env).expanduser() if env else _user_dir("cache")


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("EEGBENCH_DATA")
    return Path(env).expanduser() if env else _user_dir("data")


def results_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("EEGBENCH_RESULTS")
    return Path(env).expanduser() if env else Path("results")


def writable_dir(path: str | os.PathLike, what: str, hint: str) -> Path:
    """``path`` created if needed and checked writable; otherwise one line naming it and how to choose another."""
    from .errors import EegbenchError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise EegbenchError(f"{what} {path} is a file, not a directory; {hint}") from None
    except OSError as exc:
        raise EegbenchError(f"cannot create {what} {path} ({exc.strerror or exc}); {hint}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise EegbenchError(f"{what} {path} is not writable; {hint}")
    return path
