"""Download and verify the Things-EEG-2 release into the authors' layout.

Files are listed through the hosts' public APIs (OSF, figshare), which give each file's hash; each file is
fetched with pooch (retries, hash verification, atomic move into place) through a downloader that resumes
a cut transfer from its ``.part`` file with an HTTP Range request. Server errors (5xx), refused connections
and cut transfers are retried a bounded number of times with exponential backoff, then reported in one line
naming the file and URL. Listings are followed page by page with a bound and a cycle check. A file the host
publishes no hash for is placed only with ``allow_unverified`` (``--allow-unverified``), with a warning, and
its computed sha256 recorded. Every pickled ``.npy`` (the release's dicts, ``image_metadata.npy``) is scanned
by the restricted loader's opcode scan before it is placed. Archives are extracted safely (no entry may leave
the target folder, no links, a bound on the total size) and then placed in the layout. Each placed remote
file leaves ``<root>/.downloads/<name>.done`` (JSON: url, published hash, sha256, verified). A part whose
files are already complete is skipped without touching the network.

Hosts are data (``sources.toml``). ``EEGBENCH_OSF_API`` / ``EEGBENCH_FIGSHARE_API`` override the API base
URLs (tests point them at a local server).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eegbench.errors import DataError, first_line
from eegbench.paths import sha256_of_file

from . import layout

OSF_API_ENV = "EEGBENCH_OSF_API"
FIGSHARE_API_ENV = "EEGBENCH_FIGSHARE_API"
DEFAULT_OSF_API = "https://api.osf.io/v2"
DEFAULT_FIGSHARE_API = "https://api.figshare.com/v2"
#: refuse archives that would expand beyond this many bytes (the largest release archive is ~10 GB)
MAX_EXTRACT_BYTES = 64 * 2**30
DOWNLOADS = ".downloads"
PARTS = ("preprocessed", "images", "raw")
#: first wait (seconds) before retrying a failed request; doubled per attempt, capped at MAX_BACKOFF
RETRY_BACKOFF = 1.0
MAX_BACKOFF = 30.0
#: pages of one listing followed at most (OSF pages hold 10-100 files; the release has a few dozen)
MAX_LISTING_PAGES = 1000


class ListingError(DataError):
    """A host's listing that cannot be followed (a page loop, too many pages, a malformed page)."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    known_hash: str | None  # "sha256:…" / "md5:…" (pooch's spelling)
    size: int | None


@dataclass(frozen=True)
class Row:
    """One line of ``eegbench data verify``."""

    status: str  # present | missing | corrupt
    path: str
    fix: str = ""


def sources() -> dict[str, Any]:
    with open(Path(__file__).with_name("sources.toml"), "rb") as fh:
        return tomllib.load(fh)["parts"]


# ------------------------------------------------------------------------------------------ listing
def _retryable(exc: Exception) -> bool:
    """Server errors, dropped connections and cut transfers are worth another try; 4xx answers are not."""
    import requests

    response = getattr(exc, "response", None)
    if isinstance(exc, requests.exceptions.HTTPError) and response is not None:
        return response.status_code >= 500 or response.status_code in (408, 429)
    return isinstance(exc, requests.exceptions.RequestException)


def _backoff(attempt: int) -> None:
    time.sleep(min(RETRY_BACKOFF * 2**attempt, MAX_BACKOFF))


def _get_json(url: str, timeout: float, retries: int = 3) -> Any:
    import requests

    for attempt in range(retries + 1):
        try:
            resp = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
            resp.raise_for_status()
            return resp.json()
        except requests.exceptions.RequestException as exc:
            if attempt == retries or not _retryable(exc):
                raise
            _backoff(attempt)


def list_osf(node: str, timeout: float = 30.0, retries: int = 3) -> dict[str, RemoteFile]:
    """Files of a public OSF node's storage (folders followed), keyed by file name."""
    base = os.environ.get(OSF_API_ENV, DEFAULT_OSF_API).rstrip("/")
    out: dict[str, RemoteFile] = {}
    pending = [f"{base}/nodes/{node}/files/osfstorage/"]
    seen: set[str] = set()
    while pending:
        url: str | None = pending.pop()
        while url:
            if url in seen:  # a next page (or folder) pointing back: the listing would never end
                raise ListingError(f"OSF {node}: listing loops (page {url} comes again)")
            if len(seen) >= MAX_LISTING_PAGES:
                raise ListingError(f"OSF {node}: listing has more than {MAX_LISTING_PAGES} pages")
            seen.add(url)
            page = _get_json(url, timeout, retries)
            if not isinstance(page, dict):
                raise ListingError(f"OSF {node}: page {url} is not a JSON object")
            for item in page.get("data", []):
                attrs = item.get("attributes", {})
                if attrs.get("kind") == "folder":
                    pending.append(item["relationships"]["files"]["links"]["related"]["href"])
                    continue
                hashes = (attrs.get("extra") or {}).get("hashes") or {}
                known = (
                    f"sha256:{hashes['sha256']}"
                    if hashes.get("sha256")
                    else (f"md5:{hashes['md5']}" if hashes.get("md5") else None)
                )
                out[attrs["name"]] = RemoteFile(attrs["name"], item["links"]["download"], known, attrs.get("size"))
            url = (page.get("links") or {}).get("next")
    return out


def list_figshare(article: int, timeout: float = 30.0, retries: int = 3) -> dict[str, RemoteFile]:
    """Files of a public figshare article, keyed by file name."""
    base = os.environ.get(FIGSHARE_API_ENV, DEFAULT_FIGSHARE_API).rstrip("/")
    record = _get_json(f"{base}/articles/{article}", timeout, retries)
    return {
        f["name"]: RemoteFile(
            f["name"], f["download_url"], f"md5:{f['computed_md5']}" if f.get("computed_md5") else None, f.get("size")
        )
        for f in record.get("files", [])
    }


def _host_label(host: dict[str, Any]) -> str:
    return f"OSF {host['node']}" if host["kind"] == "osf" else f"figshare {host['article']}"


# ------------------------------------------------------------------------------------------ what each part needs
def wanted(part: str, subjects: Iterable[int]) -> list[str]:
    """Remote file names of ``part``."""
    if part == "images":
        return ["image_metadata.npy", "training_images.zip", "test_images.zip"]
    return [f"{layout.sub(s)}.zip" for s in subjects]


def _npy_status(path: Path) -> str:
    """present / missing / corrupt, from the header and the file's end (cheap: no full read)."""
    import numpy as np

    from .safe_pickle import UnsafePickleError, read_npy_header, scan_pickle

    if not path.is_file():
        return "missing"
    try:
        with open(path, "rb") as fh:
            shape, _, dtype = read_npy_header(fh)
            offset = fh.tell()
            size = path.stat().st_size
            if dtype.hasobject:  # a pickle: it must end with STOP, and name only data globals (scanned, not run)
                fh.seek(-1, os.SEEK_END)
                if size <= offset or fh.read(1) != b".":
                    return "corrupt"
                fh.seek(offset)
                scan_pickle(fh, str(path))
                return "present"
            return "present" if size == offset + int(np.prod(shape)) * dtype.itemsize else "corrupt"
    except UnsafePickleError:
        return "unsafe"
    except (ValueError, OSError, DataError):
        return "corrupt"


def targets(root: Path, name: str) -> list[Path]:
    """The files (or folders) in the layout that remote file ``name`` provides."""
    if name == "image_metadata.npy":
        return [layout.metadata_file(root)]
    if name in ("training_images.zip", "test_images.zip"):
        return [layout.image_set_dir(root) / name[:-4]]
    raise KeyError(name)


def _status(root: Path, part: str, name: str) -> list[tuple[str, Path]]:
    if part == "preprocessed":
        s = int(name[4:6])
        return [(_npy_status(p), p) for p in (layout.preprocessed_file(root, s, sp) for sp in ("train", "test"))]
    if part == "raw":
        s = int(name[4:6])
        files = [
            layout.raw_file(root, s, ses, sp) for ses in range(1, layout.N_SESSIONS + 1) for sp in ("train", "test")
        ]
        return [(_npy_status(p), p) for p in files]
    if name == "image_metadata.npy":
        p = layout.metadata_file(root)
        if not p.is_file():
            return [("missing", p)]
        from .safe_pickle import UnsafePickleError, load_pickled_npy

        try:
            load_pickled_npy(p)
            return [("present", p)]
        except UnsafePickleError:
            return [("unsafe", p)]
        except DataError:
            return [("corrupt", p)]
    folder = targets(root, name)[0]
    marker = root / DOWNLOADS / f"{name}.done"
    if not folder.is_dir():
        return [("missing", folder)]
    return [("present" if marker.is_file() or _images_complete(root, name) else "corrupt", folder)]


def _images_complete(root: Path, name: str) -> bool:
    """A folder put there by hand is complete when every image the metadata lists exists."""
    from .safe_pickle import load_pickled_npy

    split = "train" if name.startswith("training") else "test"
    try:
        meta = load_pickled_npy(layout.metadata_file(root))
        files_key, concepts_key, _ = layout.META_KEYS[split]
        base = layout.image_set_dir(root) / layout.IMAGE_DIR[split]
        # strict=False: lists of different lengths are the loader's one-line DataError, not this check's
        pairs = zip(meta[concepts_key], meta[files_key], strict=False)
        return all((base / str(c) / str(f)).is_file() for c, f in pairs)
    except (DataError, KeyError, TypeError):
        return False


def _fix(root: Path, part: str, name: str, status: str = "missing", twin: Any = None) -> str:
    if twin is not None:
        from .synth import twin_advice

        subject = None if part == "images" else int(name[4:6])
        return twin_advice(root, twin, subjects=[subject] if subject else None, raw=part == "raw")
    cmd = f"eegbench download things-eeg-2 --root {root} --parts {part}"
    if part != "images":
        cmd += f" --subjects {int(name[4:6])}"
    if status == "unsafe":  # its pickle would run code: never load it, replace it
        return f"its pickle references code, not data (nothing was run); delete it, then `{cmd}`"
    return cmd


def check_subjects(subjects: Iterable[int] | None, option: str = "--subjects") -> list[int] | None:
    """``subjects`` as a sorted list, each within the release's 1–10; one-line DataError otherwise."""
    if subjects is None:
        return None
    out = sorted(set(int(s) for s in subjects))
    bad = [s for s in out if not 1 <= s <= layout.N_SUBJECTS]
    if bad:
        raise DataError(
            f"{option} {bad[0]}: Things-EEG-2 has subjects 1-{layout.N_SUBJECTS}; pick numbers in that range"
        )
    return out


def verify(
    root: str | os.PathLike, parts: Iterable[str] = ("preprocessed", "images"), subjects: Iterable[int] | None = None
) -> list[Row]:
    """Every expected file of ``parts``: present, missing, corrupt or unsafe, with the command that fixes it.

    A synthetic twin's root (``synthetic.json``) is checked for the twin's own subjects by default, and its
    fixes say how to get a twin with what is missing instead of pointing at the release's download.
    """
    from .synth import read_params

    root = Path(root)
    twin = read_params(root)
    subjects = check_subjects(subjects)
    if subjects is None:
        subjects = list(range(1, (twin.subjects if twin is not None else layout.N_SUBJECTS) + 1))
    rows = []
    for part in parts:
        for name in wanted(part, subjects):
            for status, path in _status(root, part, name):
                rows.append(Row(status, str(path), "" if status == "present" else _fix(root, part, name, status, twin)))
    return rows


# ------------------------------------------------------------------------------------------ fetching
class ResumableDownloader:
    """A pooch downloader that resumes from ``<dir>/<name>.part`` with an HTTP Range request."""

    def __init__(self, part_dir: Path, progress: bool = True, timeout: float = 60.0, chunk: int = 1 << 16):
        self.part_dir, self.progress, self.timeout, self.chunk = part_dir, progress, timeout, chunk

    def part_file(self, url: str) -> Path:
        return self.part_dir / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".part")

    def __call__(self, url: str, output_file: Any, pooch_obj: Any = None, check_only: bool = False) -> Any:
        import requests
        from tqdm import tqdm

        if check_only:
            return True
        part = self.part_file(url)
        start = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as resp:
            if resp.status_code == 416:  # the .part is already whole (or stale): start over next attempt
                part.unlink()
                raise requests.exceptions.RequestException(f"range not satisfiable for {url}")
            resp.raise_for_status()
            resumed = bool(start) and resp.status_code == 206
            length = int(resp.headers.get("Content-Length", 0) or 0)
            total = length + (start if resumed else 0)
            with (
                open(part, "ab" if resumed else "wb") as fh,
                tqdm(
                    total=total or None,
                    initial=start if resumed else 0,
                    unit="B",
                    unit_scale=True,
                    desc=Path(url).name[:40],
                    disable=not self.progress,
                    file=sys.stderr,
                    leave=False,
                ) as bar,
            ):
                for block in resp.iter_content(self.chunk):
                    fh.write(block)
                    bar.update(len(block))
        got = part.stat().st_size
        if total and got < total:  # the server closed early without an error: resume on the next attempt
            raise requests.exceptions.ChunkedEncodingError(f"transfer cut at {got} of {total} bytes")
        # pooch checks the hash of output_file and moves it into place (or deletes it on a mismatch)
        shutil.move(str(part), str(output_file))
        return None


def _fetch(remote: RemoteFile, dest_dir: Path, retries: int, progress: bool, manual: str = "") -> Path:
    """Fetch one file into ``dest_dir`` (its hash checked when published), retrying server errors and cut
    transfers ``retries`` times with backoff (each retry resumes the ``.part``); then one line."""
    import pooch
    import requests

    dest_dir.mkdir(parents=True, exist_ok=True)
    fetcher = pooch.create(
        path=dest_dir,
        base_url="",
        registry={remote.name: remote.known_hash},
        urls={remote.name: remote.url},
        retry_if_failed=0,  # retried here, with backoff and a one-line error at the end
    )
    downloader = ResumableDownloader(dest_dir, progress=progress)
    try:
        for attempt in range(retries + 1):
            try:
                return Path(fetcher.fetch(remote.name, downloader=downloader))
            except requests.exceptions.RequestException as exc:
                if attempt < retries and _retryable(exc):
                    _backoff(attempt)
                    continue
                reason = first_line(exc, 160) or type(exc).__name__
                raise DataError(
                    f"{remote.name}: download from {remote.url} failed after {attempt + 1} attempt(s) "
                    f"({type(exc).__name__}: {reason}); run the same command again later (a partial file is resumed)"
                    + (f", or download it by hand from {manual}" if manual else "")
                ) from None
        raise AssertionError("unreachable")
    except ValueError as exc:  # pooch: hash mismatch (the temporary file is already deleted)
        part = downloader.part_file(remote.url)
        if part.exists():
            part.unlink()
        raise DataError(
            f"{remote.name}: downloaded file does not match its published hash {remote.known_hash} ({exc}); "
            "nothing was kept; try again later or download it by hand"
        ) from None


def scan_npy(path: Path, source: str) -> None:
    """Refuse an ``.npy`` whose pickle names anything but data (opcode scan: nothing is built or run) or that
    is not a valid ``.npy`` at all; plain arrays pass after their header is read."""
    from .safe_pickle import read_npy_header, scan_pickle

    with open(path, "rb") as fh:
        try:
            _, _, dtype = read_npy_header(fh)
        except (ValueError, OSError) as exc:
            raise DataError(f"{source}: not a valid .npy file ({exc}); nothing was placed") from None
        if dtype.hasobject:
            scan_pickle(fh, source)


def safe_extract(archive: Path, dest: Path, max_bytes: int = MAX_EXTRACT_BYTES) -> None:
    """Extract a zip into ``dest``, refusing escaping entries, links, and more than ``max_bytes`` in all."""
    dest = dest.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a valid zip archive ({exc}); delete it and download again") from None
    with zf:
        infos = zf.infolist()
        for info in infos:
            name = info.filename
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DataError(f"{archive}: refused: entry {name!r} is a link (archives may hold plain files only)")
            target = (dest / name).resolve()
            if Path(name).is_absolute() or ".." in Path(name).parts or (target != dest and dest not in target.parents):
                raise DataError(f"{archive}: refused: entry {name!r} would be written outside {dest}")
        declared = sum(i.file_size for i in infos)
        if declared > max_bytes:
            raise DataError(f"{archive}: refused: it expands to {declared} bytes, more than the bound {max_bytes}")
        written = 0
        for info in infos:
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while block := src.read(1 << 20):
                    written += len(block)
                    if written > max_bytes:  # entries that lie about their size
                        raise DataError(f"{archive}: refused: more than {max_bytes} bytes when extracted")
                    out.write(block)


def _place(root: Path, part: str, name: str, extracted: Path) -> None:
    """Move extracted files into the authors' layout (archives differ in their top folders)."""
    if part in ("preprocessed", "raw"):
        s = int(name[4:6])
        pattern = "preprocessed_eeg_*.npy" if part == "preprocessed" else "raw_eeg_*.npy"
        found = sorted(extracted.rglob(pattern))
        if not found:
            raise DataError(f"{name}: no {pattern} inside the archive; the release's layout may have changed")
        for f in found:
            if part == "preprocessed":
                dest = layout.preprocessed_file(root, s, "train").parent / f.name
            else:
                ses = next((p for p in f.parents if p.name.startswith("ses-")), None)
                if ses is None:
                    raise DataError(f"{name}: {f.name} is not inside a ses-XX folder")
                dest = layout.raw_file(root, s, int(ses.name[4:]), "train").parent / f.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dest)
        return
    folder_name = name[:-4]
    found = [p for p in extracted.rglob(folder_name) if p.is_dir()]
    src = found[0] if found else extracted
    dest = layout.image_set_dir(root) / folder_name
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dest))


def _listing(part: str, timeout: float, retries: int = 3) -> tuple[dict[str, RemoteFile], list[str]]:
    import requests

    errors = []
    for host in sources()[part]["hosts"]:
        try:
            files = (
                list_osf(host["node"], timeout, retries)
                if host["kind"] == "osf"
                else list_figshare(host["article"], timeout, retries)
            )
            return files, errors
        except ListingError as exc:
            errors.append(str(exc))
        except (requests.exceptions.RequestException, ValueError, KeyError, TypeError, AttributeError) as exc:
            errors.append(f"{_host_label(host)}: {type(exc).__name__}")
    return {}, errors


def download(
    root: str | os.PathLike,
    parts: Iterable[str] = ("preprocessed", "images"),
    subjects: Iterable[int] | None = None,
    *,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    max_bytes: int = MAX_EXTRACT_BYTES,
    allow_unverified: bool = False,
) -> dict[str, list[str]]:
    """Fetch ``parts`` for ``subjects`` into ``root``; complete files are skipped.

    A file its host publishes no hash for is refused unless ``allow_unverified`` (then placed with a warning
    on stderr and its sha256 recorded in ``<root>/.downloads/<name>.done``).

    Returns ``{"downloaded": [names], "skipped": [names], "unverified": [names]}``.

    Raises:
        DataError: no host reachable (with the manual steps), a download failing after its retries, a hash
            mismatch, a file without a published hash (without ``allow_unverified``), an unsafe archive or
            pickle (``UnsafePickleError``; nothing of it is placed).
    """
    root = Path(root).expanduser()
    subjects = check_subjects(subjects) or list(range(1, layout.N_SUBJECTS + 1))
    from .synth import read_params, twin_advice

    twin = read_params(root)
    if twin is not None:  # the release's files would be mixed into generated ones
        raise DataError(
            f"download into a synthetic twin refused: {twin_advice(root, twin, subjects=subjects, raw='raw' in parts)}"
        )
    report: dict[str, list[str]] = {"downloaded": [], "skipped": [], "unverified": []}
    for part in parts:
        if part not in PARTS:
            raise DataError(f"unknown part {part!r} (parts: {', '.join(PARTS)})")
        todo = [n for n in wanted(part, subjects) if any(s != "present" for s, _ in _status(root, part, n))]
        report["skipped"] += [n for n in wanted(part, subjects) if n not in todo]
        if not todo:
            continue
        files, errors = _listing(part, timeout, retries)
        if not files:
            src = sources()[part]
            raise DataError(
                f"cannot list Things-EEG-2 {part} files ({'; '.join(errors)}): offline, or the host is down or "
                "broken. Manual steps: "
                f"download {', '.join(todo[:3])}{' …' if len(todo) > 3 else ''} from {src['manual']}, "
                f"unzip into {root} "
                f"in the authors' layout, then run `eegbench data verify things-eeg-2 --root {root}`; or pass --root "
                "to a copy that already exists"
            )
        staging = root / DOWNLOADS
        for name in todo:
            if name not in files:
                raise DataError(
                    f"{name}: not listed by the host (found {', '.join(sorted(files)[:5])} …); "
                    "the release may have moved"
                )
            remote = files[name]
            if remote.known_hash is None and not allow_unverified:
                raise DataError(
                    f"{name}: {remote.url} publishes no hash, so the download cannot be verified; nothing was "
                    "fetched. Pass --allow-unverified to place it anyway (its sha256 is recorded), or download it "
                    f"by hand from {sources()[part]['manual']}"
                )
            if progress:
                print(f"things-eeg-2 {part}: {name}", file=sys.stderr, flush=True)
            fetched = _fetch(remote, staging, retries, progress, sources()[part]["manual"])
            digest = (
                sha256_of_file(fetched)
                if remote.known_hash is None or not remote.known_hash.startswith("sha256:")
                else remote.known_hash[7:]
            )
            if remote.known_hash is None:
                print(
                    f"warning: {name}: no published hash; placed unverified (--allow-unverified), sha256 {digest} "
                    f"recorded in {staging / (name + '.done')}",
                    file=sys.stderr,
                    flush=True,
                )
                report["unverified"].append(name)
            try:
                if name.endswith(".zip"):
                    tmp = Path(tempfile.mkdtemp(prefix="extract-", dir=staging))
                    try:
                        safe_extract(fetched, tmp, max_bytes)
                        for npy in sorted(tmp.rglob("*.npy")):  # scanned before anything is placed
                            scan_npy(npy, f"{name}:{npy.relative_to(tmp).as_posix()}")
                        _place(root, part, name, tmp)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                else:
                    if name.endswith(".npy"):
                        scan_npy(fetched, name)
                    dest = targets(root, name)[0]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(fetched, dest)
            finally:
                fetched.unlink(missing_ok=True)  # what is kept is placed; a refused file is not kept
            record = {
                "name": name,
                "url": remote.url,
                "published_hash": remote.known_hash,
                "sha256": digest,
                "verified": remote.known_hash is not None,
            }
            (staging / f"{name}.done").write_text(json.dumps(record, indent=2))
            report["downloaded"].append(name)
    return report
