"""The Things-EEG-2 release's file layout under one root (the dataset authors' layout), and its constants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: The 17 occipital/parietal channels of the preprocessed release, in its order.
OCCIPITO_PARIETAL: tuple[str, ...] = (
    "P7",
    "P5",
    "P3",
    "P1",
    "Pz",
    "P2",
    "P4",
    "P6",
    "P8",
    "PO7",
    "PO3",
    "POz",
    "PO4",
    "PO8",
    "O1",
    "Oz",
    "O2",
)

#: The 63 EEG channels of the raw release (10-10 system, actiCAP 64 montage without the reference FCz).
ALL_63: tuple[str, ...] = (
    "Fp1",
    "Fp2",
    "AF7",
    "AF3",
    "AFz",
    "AF4",
    "AF8",
    "F7",
    "F5",
    "F3",
    "F1",
    "Fz",
    "F2",
    "F4",
    "F6",
    "F8",
    "FT9",
    "FT7",
    "FC5",
    "FC3",
    "FC1",
    "FC2",
    "FC4",
    "FC6",
    "FT8",
    "FT10",
    "T7",
    "C5",
    "C3",
    "C1",
    "Cz",
    "C2",
    "C4",
    "C6",
    "T8",
    "TP9",
    "TP7",
    "CP5",
    "CP3",
    "CP1",
    "CPz",
    "CP2",
    "CP4",
    "CP6",
    "TP8",
    "TP10",
    *OCCIPITO_PARIETAL,  # the last 17 are the occipito-parietal ones, in the same order
)

N_SUBJECTS = 10
#: images per split of the release: 1,654 training concepts x 10 images, 200 test concepts x 1 image
N_IMAGES = {"train": 16540, "test": 200}
N_SESSIONS = 4
CATCH_CODE = 99999
RAW_SFREQ = 1000.0
SPLIT_FILE = {"train": "training", "test": "test"}
IMAGE_DIR = {"train": "training_images", "test": "test_images"}
#: metadata keys of image_metadata.npy, per split: (files, concepts, THINGS concepts)
META_KEYS = {
    "train": ("train_img_files", "train_img_concepts", "train_img_concepts_THINGS"),
    "test": ("test_img_files", "test_img_concepts", "test_img_concepts_THINGS"),
}


def sub(subject: int) -> str:
    return f"sub-{int(subject):02d}"


def preprocessed_dir(root: Path) -> Path:
    return Path(root) / "eeg_dataset" / "preprocessed_data"


def preprocessed_file(root: Path, subject: int, split: str) -> Path:
    return preprocessed_dir(root) / sub(subject) / f"preprocessed_eeg_{SPLIT_FILE[split]}.npy"


def raw_file(root: Path, subject: int, session: int, split: str) -> Path:
    return (
        Path(root)
        / "eeg_dataset"
        / "raw_data"
        / sub(subject)
        / f"ses-{int(session):02d}"
        / f"raw_eeg_{SPLIT_FILE[split]}.npy"
    )


def image_set_dir(root: Path) -> Path:
    return Path(root) / "image_set"


def metadata_file(root: Path) -> Path:
    return image_set_dir(root) / "image_metadata.npy"


def latents_file(root: Path) -> Path:
    """The synthetic twin's oracle embeddings (the embedding-file format)."""
    return image_set_dir(root) / "synthetic_latents.npz"


def synth_params_file(root: Path) -> Path:
    return Path(root) / "synthetic.json"


def subjects_on_disk(root: Path) -> list[int]:
    """Subjects with a preprocessed folder under ``root`` (sorted)."""
    found = []
    base = preprocessed_dir(root)
    if base.is_dir():
        for p in base.iterdir():
            if p.is_dir() and p.name.startswith("sub-") and p.name[4:].isdigit():
                found.append(int(p.name[4:]))
    return sorted(found)


@contextmanager
def generation_lock(root: Path, progress: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the file lock guarding the generation of the dataset at ``root`` (``<parent>/.<name>.lock``).

    Two processes generating the same root (two first runs of the synthetic twin, two ``preprocess`` into
    one ``--out``) take turns: the second waits, says so through ``progress`` (stderr by default), and then
    finds the first's output instead of replacing it.
    """
    import sys

    from filelock import FileLock, Timeout

    root = Path(root).absolute()
    root.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root.parent / f".{root.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
        say(f"waiting for another process that is writing {root}")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
