"""The restricted unpickler: release-style pickled dicts load; a pickle that would run a command is refused."""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest
from numpy.lib import format as npy_format

from eegbench.errors import DataError
from eegbench_plugins.things_eeg2.safe_pickle import UnsafePickleError, load_pickled_npy, save_pickled_dict


def test_release_style_dict_round_trips(tmp_path):
    data = {
        "preprocessed_eeg_data": np.random.default_rng(0).standard_normal((3, 2, 17, 5)),
        "ch_names": ["P7", "Oz"],
        "times": np.arange(-20, 80) * 0.01,
        "sfreq": np.float64(1000.0),
        "highpass": 0.01,
        "n": 3,
        "nested": {"t": (1, 2.5, "x")},
    }
    path = tmp_path / "d.npy"
    save_pickled_dict(path, data)
    out = load_pickled_npy(path)
    assert set(out) == set(data)
    np.testing.assert_array_equal(out["preprocessed_eeg_data"], data["preprocessed_eeg_data"])
    assert out["ch_names"] == ["P7", "Oz"] and out["nested"] == {"t": (1, 2.5, "x")}
    # a file written by numpy itself (what the release is) loads the same way
    np.save(tmp_path / "np.npy", np.array(data, dtype=object), allow_pickle=True)
    assert set(load_pickled_npy(tmp_path / "np.npy")) == set(data)


def test_plain_array_npy_loads_without_pickle(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(load_pickled_npy(tmp_path / "a.npy"), np.arange(6.0).reshape(2, 3))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"{sys.executable} -c \"open(r'{self.marker}', 'w').write('ran')\"",))


def _write_object_npy(path, obj):
    with open(path, "wb") as fh:
        npy_format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(obj, fh, protocol=3)


def test_malicious_pickle_is_refused_and_its_command_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "preprocessed_eeg_training.npy"
    _write_object_npy(path, {"preprocessed_eeg_data": _Exploit(marker)})
    # sanity: an unrestricted load would really run the command
    os.system(_Exploit(tmp_path / "control").__reduce__()[1][0])
    assert (tmp_path / "control").exists()

    with pytest.raises(UnsafePickleError) as err:
        load_pickled_npy(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "system" in message
    assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
    path = tmp_path / "x.npy"
    _write_object_npy(path, {"f": np.random.default_rng})  # a function reference: not data
    with pytest.raises(UnsafePickleError, match="refused"):
        load_pickled_npy(path)


@pytest.mark.parametrize("content", [b"", b"not an npy file at all", b"\x93NUMPY\x01\x00"])
def test_garbage_is_a_one_line_data_error(tmp_path, content):
    path = tmp_path / "bad.npy"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_pickled_npy(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_truncated_pickle_is_a_data_error(tmp_path):
    path = tmp_path / "t.npy"
    save_pickled_dict(path, {"a": np.zeros((50, 50))})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_pickled_npy(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_pickled_npy(tmp_path / "nope.npy")
