"""Where eegbench keeps caches, data and results.

Order of precedence: an explicit argument (spec or CLI) > environment variable > per-user default
(platformdirs). ``EEGBENCH_CACHE`` holds prepared EEG and image embeddings; ``EEGBENCH_DATA`` datasets
(downloads and the synthetic twin); ``EEGBENCH_RESULTS`` the results database and checkpoints. A file's identity
is the sha256 of its bytes (:func:`file_digest`, memoised under the cache).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path


def _user_dir(kind: str) -> Path:
    import platformdirs

    if kind == "cache":
        return Path(platformdirs.user_cache_dir("eegbench"))
    return Path(platformdirs.user_data_dir("eegbench")) / kind


def cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("EEGBENCH_CACHE")
    return Path(env).expanduser() if env else _user_dir("cache")


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("EEGBENCH_DATA")
    return Path(env).expanduser() if env else _user_dir("data")


def results_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("EEGBENCH_RESULTS")
    return Path(env).expanduser() if env else Path("results")


def writable_dir(path: str | os.PathLike[str], what: str, hint: str) -> Path:
    """``path`` created if needed and checked writable; otherwise one line naming it and how to choose another."""
    from eegbench.errors import EegbenchError

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


DIGESTS = "file-digests"


def sha256_of_file(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (``hashlib.file_digest``), not memoised: :func:`file_digest` memoises it."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_digest(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """sha256 of a file's bytes, memoised under ``<cache>/file-digests/`` by (path, size, mtime, inode).

    A data identity built from it follows the content: touching a file (a new mtime) re-hashes it to the same
    digest, rewriting it with other bytes changes it. The memo makes repeated calls cost a ``stat`` and a small
    read; a cache directory that cannot be written only loses the memo (the digest is still computed).
    """
    import hashlib

    path = Path(path)
    st = path.stat()
    resolved = str(path.resolve())
    stamp = {"path": resolved, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}
    memo = cache_dir(root) / DIGESTS / f"{hashlib.sha256(resolved.encode()).hexdigest()[:32]}.json"
    try:
        record = json.loads(memo.read_text())
        memoised = record.get("sha256")
        if {k: record.get(k) for k in stamp} == stamp and isinstance(memoised, str):
            return memoised
    except (OSError, ValueError, AttributeError):
        pass
    digest = sha256_of_file(path)
    if path.stat().st_mtime_ns != st.st_mtime_ns:  # changed while being read: hash what is there now, unmemoised
        return sha256_of_file(path)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps({**stamp, "sha256": digest}))
        os.replace(tmp, memo)
    except OSError:
        pass
    return digest
