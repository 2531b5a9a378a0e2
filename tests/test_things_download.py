"""Download and verify against a local HTTP server serving OSF-API-shaped listings (no internet)."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from eegbench.cli import main
from eegbench.errors import DataError
from eegbench_plugins.things_eeg2 import download as dl
from eegbench_plugins.things_eeg2 import layout
from eegbench_plugins.things_eeg2.safe_pickle import save_pickled_dict


def _npy_bytes(tmp_path, obj) -> bytes:
    path = tmp_path / "tmp.npy"
    save_pickled_dict(path, obj)
    return path.read_bytes()


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


class Server:
    """Files + OSF listings; can cut a transfer, lie about a hash, and records every request."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.nodes: dict[str, list[str]] = {}
        self.bad_hash: set[str] = set()
        self.cut_once: set[str] = set()
        self.cut_always: set[str] = set()
        self.fail_first: dict[str, int] = {}  # name -> how many requests answer 500 first
        self.no_hash: set[str] = set()
        self.looping: set[str] = set()  # nodes whose listing's next page is the page itself
        self.paged: set[str] = set()  # nodes listed one file per page
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                parts = self.path.strip("/").split("/")
                if parts[0] == "v2" and parts[1] == "nodes":
                    node = parts[2]
                    if server.fail_first.get(node, 0) > 0:
                        server.fail_first[node] -= 1
                        return self._send(500, b"busy", {})
                    names = server.nodes.get(node, [])
                    next_url = None
                    if node in server.looping:
                        next_url = server.url + self.path
                    elif node in server.paged:
                        page = int(self.path.split("page=")[1]) if "page=" in self.path else 0
                        names = names[page : page + 1]
                        if page + 1 < len(server.nodes[node]):
                            next_url = f"{server.url}/v2/nodes/{node}/files/osfstorage/?page={page + 1}"
                    body = json.dumps({"data": [server.entry(n) for n in names], "links": {"next": next_url}}).encode()
                    return self._send(200, body, {"Content-Type": "application/json"})
                if parts[0] == "files" and server.fail_first.get(parts[1], 0) > 0:
                    server.fail_first[parts[1]] -= 1
                    return self._send(500, b"internal server error", {})
                if parts[0] == "files" and parts[1] in server.files:
                    data = server.files[parts[1]]
                    start = 0
                    if self.headers.get("Range"):
                        start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    body = data[start:]
                    headers = {"Content-Length": str(len(body))}
                    if start:
                        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    self.send_response(206 if start else 200)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if parts[1] in server.cut_once or parts[1] in server.cut_always:
                        server.cut_once.discard(parts[1])
                        self.wfile.write(body[: len(body) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    self.wfile.write(body)
                    return
                self._send(404, b"not found", {})

            def _send(self, code, body, headers):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def entry(self, name):
        digest = hashlib.sha256(self.files[name]).hexdigest()
        if name in self.bad_hash:
            digest = "0" * 64
        hashes = {} if name in self.no_hash else {"sha256": digest}
        return {
            "attributes": {"kind": "file", "name": name, "size": len(self.files[name]), "extra": {"hashes": hashes}},
            "links": {"download": f"{self.url}/files/{name}"},
        }

    def downloads(self):
        return [p for p, _ in self.requests if p.startswith("/files/")]


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "RETRY_BACKOFF", 0.01)  # retries back off, briefly here
    srv = Server()
    monkeypatch.setenv(dl.OSF_API_ENV, srv.url + "/v2")
    monkeypatch.setenv(dl.FIGSHARE_API_ENV, srv.url + "/figshare")
    rng = np.random.default_rng(0)
    for s in (1, 2):
        # the release's sub-XX.zip: a sub-XX folder with both files
        srv.files[f"sub-{s:02d}.zip"] = _zip(
            {
                f"sub-{s:02d}/preprocessed_eeg_training.npy": _npy_bytes(
                    tmp_path, {"preprocessed_eeg_data": rng.standard_normal((4, 4, 17, 10))}
                ),
                f"sub-{s:02d}/preprocessed_eeg_test.npy": _npy_bytes(
                    tmp_path, {"preprocessed_eeg_data": rng.standard_normal((2, 80, 17, 10))}
                ),
            }
        )
    srv.nodes["anp5v"] = ["sub-01.zip", "sub-02.zip"]
    meta = {
        "train_img_files": ["a_01b.jpg"],
        "train_img_concepts": ["00001_a"],
        "train_img_concepts_THINGS": ["00001_a"],
        "test_img_files": ["b_01s.jpg"],
        "test_img_concepts": ["00001_b"],
        "test_img_concepts_THINGS": ["00002_b"],
    }
    srv.files["image_metadata.npy"] = _npy_bytes(tmp_path, meta)
    srv.files["training_images.zip"] = _zip({"training_images/00001_a/a_01b.jpg": b"\xff\xd8jpeg\xff\xd9"})
    srv.files["test_images.zip"] = _zip({"test_images/00001_b/b_01s.jpg": b"\xff\xd8jpeg\xff\xd9"})
    srv.nodes["y63gw"] = ["image_metadata.npy", "training_images.zip", "test_images.zip"]
    yield srv
    srv.httpd.shutdown()


def test_full_download_then_second_run_downloads_nothing(tmp_path, server):
    root = tmp_path / "data"
    report = dl.download(root, ["preprocessed", "images"], [1, 2], progress=False, retries=0)
    assert sorted(report["downloaded"]) == sorted(
        ["sub-01.zip", "sub-02.zip", "image_metadata.npy", "training_images.zip", "test_images.zip"]
    )
    for s in (1, 2):
        assert (
            layout.preprocessed_file(root, s, "train").is_file() and layout.preprocessed_file(root, s, "test").is_file()
        )
    assert (root / "image_set/training_images/00001_a/a_01b.jpg").is_file()
    assert (root / "image_set/test_images/00001_b/b_01s.jpg").is_file()
    assert not list((root / dl.DOWNLOADS).glob("*.zip")) and not list((root / dl.DOWNLOADS).glob("*.part"))
    assert all(r.status == "present" for r in dl.verify(root, ["preprocessed", "images"], [1, 2]))

    before = len(server.requests)
    again = dl.download(root, ["preprocessed", "images"], [1, 2], progress=False, retries=0)
    assert again["downloaded"] == [] and len(again["skipped"]) == 5
    assert len(server.requests) == before  # not even a listing


def test_resume_after_a_cut_transfer(tmp_path, server):
    server.cut_once.add("sub-01.zip")
    root = tmp_path / "data"
    dl.download(root, ["preprocessed"], [1], progress=False, retries=1)
    ranges = [r for p, r in server.requests if p == "/files/sub-01.zip"]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    assert dl.verify(root, ["preprocessed"], [1])[0].status == "present"


def test_hash_mismatch_is_a_clear_error_and_leaves_nothing(tmp_path, server):
    server.bad_hash.add("sub-02.zip")
    root = tmp_path / "data"
    with pytest.raises(DataError) as err:
        dl.download(root, ["preprocessed"], [2], progress=False, retries=0)
    assert "does not match its published hash" in str(err.value) and "\n" not in str(err.value)
    staged = [p for p in (root / dl.DOWNLOADS).rglob("*") if p.is_file()]
    assert staged == []
    assert not layout.preprocessed_file(root, 2, "train").exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "link"])
def test_unsafe_archives_are_refused(tmp_path, server, kind):
    entries = {"sub-01/preprocessed_eeg_training.npy": b"x"}
    links = None
    if kind == "dotdot":
        entries["../../escaped.txt"] = b"owned"
    elif kind == "absolute":
        entries[str(tmp_path / "abs.txt")] = b"owned"
    else:
        links = {"sub-01/preprocessed_eeg_test.npy": "/etc/passwd"}
    server.files["sub-01.zip"] = _zip(entries, links)
    root = tmp_path / "data"
    with pytest.raises(DataError, match="refused"):
        dl.download(root, ["preprocessed"], [1], progress=False, retries=0)
    assert not (tmp_path / "escaped.txt").exists() and not (root / "escaped.txt").exists()
    assert not layout.preprocessed_file(root, 1, "train").exists()


def test_size_bound(tmp_path):
    archive = tmp_path / "big.zip"
    archive.write_bytes(_zip({"a.bin": b"\0" * 10_000}))
    with pytest.raises(DataError, match="bound"):
        dl.safe_extract(archive, tmp_path / "out", max_bytes=1000)


def test_offline_is_one_message_with_manual_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "RETRY_BACKOFF", 0.01)
    monkeypatch.setenv(dl.OSF_API_ENV, "http://127.0.0.1:9/v2")  # nothing listens on the discard port
    with pytest.raises(DataError) as err:
        dl.download(tmp_path / "d", ["preprocessed"], [1], progress=False, retries=0, timeout=2)
    msg = str(err.value)
    assert "\n" not in msg and "https://osf.io/anp5v/" in msg and "--root" in msg


def test_raw_falls_back_to_the_figshare_mirror(tmp_path, server, monkeypatch):
    raw = _npy_bytes(tmp_path, {"raw_eeg_data": np.zeros((64, 10)), "sfreq": 1000})
    server.files["sub-01.zip"] = _zip(
        {f"sub-01/ses-{k:02d}/raw_eeg_{sp}.npy": raw for k in range(1, 5) for sp in ("training", "test")}
    )
    md5 = hashlib.md5(server.files["sub-01.zip"]).hexdigest()
    figshare = {
        "files": [
            {"name": "sub-01.zip", "download_url": f"{server.url}/files/sub-01.zip", "computed_md5": md5, "size": 1}
        ]
    }
    # the OSF raw node is not listed (404): the mirror serves
    original = dl._get_json
    monkeypatch.setattr(
        dl,
        "_get_json",
        lambda url, timeout, retries=0: figshare if "/figshare/" in url else original(url, timeout, retries),
    )
    server.nodes.pop("crxs4", None)
    monkeypatch.setitem(server.nodes, "crxs4", [])
    monkeypatch.setattr(dl, "list_osf", lambda node, timeout=30, retries=3: (_ for _ in ()).throw(ValueError("down")))
    dl.download(tmp_path / "d", ["raw"], [1], progress=False, retries=0)
    assert layout.raw_file(tmp_path / "d", 1, 4, "test").is_file()


def test_verify_cli_reports_missing_and_corrupt_with_fixes(tmp_path, server, capsys):
    root = tmp_path / "data"
    dl.download(root, ["preprocessed"], [1], progress=False, retries=0)
    path = layout.preprocessed_file(root, 1, "test")
    path.write_bytes(path.read_bytes()[:-50])  # truncated
    code = main(
        ["data", "verify", "things-eeg-2", "--root", str(root), "--subjects", "1", "2", "--parts", "preprocessed"]
    )
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert any(line.startswith("present") and "sub-01" in line and "training" in line for line in lines)
    assert any(line.startswith("corrupt") and "sub-01" in line and "--subjects 1" in line for line in lines)
    assert any(
        line.startswith("missing") and "sub-02" in line and "--parts preprocessed --subjects 2" in line
        for line in lines
    )
    # the fixing command fixes it
    assert (
        main(["download", "things-eeg-2", "--root", str(root), "--parts", "preprocessed", "--subjects", "1", "2"]) == 0
    )
    assert (
        main(["data", "verify", "things-eeg-2", "--root", str(root), "--subjects", "1", "2", "--parts", "preprocessed"])
        == 0
    )


def test_subjects_outside_the_release_are_one_line_errors(tmp_path, capsys):
    assert main(["download", "things-eeg-2", "--root", str(tmp_path / "d"), "--subjects", "11"]) == 2
    err = capsys.readouterr().err
    assert "--subjects 11" in err and "1-10" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
    with pytest.raises(DataError, match="--subjects 0"):
        dl.verify(tmp_path, subjects=[0])


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_verify_reports_a_pickle_that_would_run_code_as_unsafe_without_running_it(tmp_path, capsys, monkeypatch):
    import pickle

    from numpy.lib import format as npy_format

    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    good = layout.preprocessed_file(root, 1, "test")
    save_pickled_dict(good, {"preprocessed_eeg_data": np.zeros((2, 2, 3, 4)), "ch_names": ["a"] * 3})
    for target in (layout.preprocessed_file(root, 1, "train"), layout.metadata_file(root)):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fh:  # a release-shaped file whose pickle calls os.system
            npy_format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
            pickle.dump({"preprocessed_eeg_data": _Evil()}, fh, protocol=3)
    code = main(["data", "verify", "things-eeg-2", "--root", str(root), "--subjects", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert not (tmp_path / "PWNED").exists()
    lines = out.splitlines()
    assert any(line.startswith("present") and "preprocessed_eeg_test" in line for line in lines)
    assert any(
        line.startswith("unsafe") and "preprocessed_eeg_training" in line and "delete it" in line for line in lines
    )
    assert any(line.startswith("unsafe") and "image_metadata.npy" in line for line in lines)
    assert "2 unsafe" in lines[-1]


def test_verify_a_twin_checks_its_own_subjects_with_twin_advice(tmp_path, capsys):
    from eegbench_plugins.things_eeg2.synth import SynthParams, write_twin

    root = write_twin(
        tmp_path / "twin",
        SynthParams(subjects=2, train_concepts=3, images_per_concept=2, test_images=3, test_repetitions=4),
    )
    assert main(["data", "verify", "things-eeg-2", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "sub-02" in out and "sub-03" not in out and "0 missing" in out
    assert (
        main(["data", "verify", "things-eeg-2", "--root", str(root), "--subjects", "3", "--parts", "preprocessed,raw"])
        == 1
    )
    out = capsys.readouterr().out
    assert "download" not in out and "dataset.params.subjects=3" in out and "synthetic twin (subjects 1-2" in out
    assert main(["data", "verify", "things-eeg-2", "--root", str(root), "--subjects", "1", "--parts", "raw"]) == 1
    out = capsys.readouterr().out
    assert "download" not in out and f"eegbench synth --root {root}" in out and "--raw" in out
    # and the release's download refuses to mix its files into a twin
    assert main(["download", "things-eeg-2", "--root", str(root), "--subjects", "3"]) == 2
    assert "synthetic twin" in capsys.readouterr().err


def test_a_listing_whose_next_page_is_itself_ends_in_one_line(tmp_path, server):
    server.looping.add("anp5v")
    with pytest.raises(DataError) as err:
        dl.download(tmp_path / "d", ["preprocessed"], [1], progress=False, retries=0)
    msg = str(err.value)
    assert "\n" not in msg and "loops" in msg and "anp5v" in msg and "https://osf.io/anp5v/" in msg
    assert len([p for p, _ in server.requests if p.startswith("/v2/")]) == 1  # not followed a second time


def test_a_paged_listing_is_followed_to_its_end(tmp_path, server):
    server.paged.add("anp5v")
    dl.download(tmp_path / "d", ["preprocessed"], [2], progress=False, retries=0)
    assert layout.preprocessed_file(tmp_path / "d", 2, "test").is_file()
    assert len([p for p, _ in server.requests if p.startswith("/v2/")]) == 2


def test_a_file_without_a_published_hash_needs_the_flag_and_its_hash_is_recorded(tmp_path, server, capsys):
    server.no_hash.add("sub-01.zip")
    root = tmp_path / "data"
    code = main(["download", "things-eeg-2", "--root", str(root), "--parts", "preprocessed", "--subjects", "1"])
    err = capsys.readouterr().err
    assert (
        code == 2 and "publishes no hash" in err and "--allow-unverified" in err and len(err.strip().splitlines()) == 1
    )
    assert server.downloads() == [] and not layout.preprocessed_file(root, 1, "train").exists()
    assert (
        main(
            [
                "download",
                "things-eeg-2",
                "--root",
                str(root),
                "--parts",
                "preprocessed",
                "--subjects",
                "1",
                "--allow-unverified",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    digest = hashlib.sha256(server.files["sub-01.zip"]).hexdigest()
    assert "warning: sub-01.zip: no published hash" in err and digest in err
    record = json.loads((root / dl.DOWNLOADS / "sub-01.zip.done").read_text())
    assert record["sha256"] == digest and record["verified"] is False and record["published_hash"] is None
    assert layout.preprocessed_file(root, 1, "train").is_file()
    # a verified file records its published hash
    dl.download(root, ["preprocessed"], [2], progress=False, retries=0)
    record = json.loads((root / dl.DOWNLOADS / "sub-02.zip.done").read_text())
    assert record["verified"] is True and record["sha256"] == hashlib.sha256(server.files["sub-02.zip"]).hexdigest()


def _evil_npy() -> bytes:
    import pickle

    from numpy.lib import format as npy_format

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    pickle.dump({"preprocessed_eeg_data": _Evil()}, buf, protocol=3)
    return buf.getvalue()


@pytest.mark.parametrize("where", ["metadata", "archive"])
def test_a_pickle_that_would_run_code_is_refused_before_it_is_placed(tmp_path, server, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    if where == "metadata":
        server.files["image_metadata.npy"] = _evil_npy()
        part, subjects, placed = "images", None, layout.metadata_file(root)
    else:
        server.files["sub-01.zip"] = _zip(
            {
                "sub-01/preprocessed_eeg_training.npy": _evil_npy(),
                "sub-01/preprocessed_eeg_test.npy": _npy_bytes(tmp_path, {"x": np.zeros(2)}),
            }
        )
        part, subjects, placed = "preprocessed", [1], layout.preprocessed_file(root, 1, "train")
    from eegbench_plugins.things_eeg2.safe_pickle import UnsafePickleError

    with pytest.raises(UnsafePickleError) as err:
        dl.download(root, [part], subjects, progress=False, retries=0)
    msg = str(err.value)
    assert "\n" not in msg and "os" in msg and "refused" in msg
    assert (
        ("image_metadata.npy" in msg)
        if where == "metadata"
        else ("sub-01.zip:sub-01/preprocessed_eeg_training.npy" in msg)
    )
    assert not placed.exists() and not (tmp_path / "PWNED").exists()
    assert not layout.preprocessed_file(root, 1, "test").exists()  # nothing of a refused archive is placed
    assert [p for p in (root / dl.DOWNLOADS).rglob("*") if p.is_file()] == []


def test_server_errors_are_retried_then_one_line(tmp_path, server, capsys):
    root = tmp_path / "data"
    server.fail_first["sub-01.zip"] = 2
    server.fail_first["anp5v"] = 1  # the listing too
    dl.download(root, ["preprocessed"], [1], progress=False, retries=2)
    assert layout.preprocessed_file(root, 1, "train").is_file()
    assert server.downloads().count("/files/sub-01.zip") == 3
    # a server that keeps failing: bounded, then one line naming the file, its URL and what to do
    server.fail_first["sub-02.zip"] = 100
    code = main(["download", "things-eeg-2", "--root", str(root), "--parts", "preprocessed", "--subjects", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    err = err.strip().splitlines()[-1]  # after the progress line, the error in one line
    assert (
        err.startswith("eegbench: error: ")
        and "sub-02.zip" in err
        and f"{server.url}/files/sub-02.zip" in err
        and "4 attempt" in err
        and "again later" in err
    )
    assert server.downloads().count("/files/sub-02.zip") == 4  # 1 + the default 3 retries


def test_a_transfer_cut_every_time_is_retried_with_resume_then_one_line(tmp_path, server):
    server.cut_always.add("sub-01.zip")
    with pytest.raises(DataError) as err:
        dl.download(tmp_path / "d", ["preprocessed"], [1], progress=False, retries=2)
    msg = str(err.value)
    assert "\n" not in msg and "sub-01.zip" in msg and "3 attempt" in msg
    ranges = [r for p, r in server.requests if p == "/files/sub-01.zip"]
    assert len(ranges) == 3 and ranges[0] is None and all(r and r != "bytes=0-" for r in ranges[1:])
    assert not layout.preprocessed_file(tmp_path / "d", 1, "train").exists()
