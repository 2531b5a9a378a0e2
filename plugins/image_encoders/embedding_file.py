"""``embedding-file``: embeddings read from a file instead of computed (oracle latents, third-party features).

The file is a ``.npz`` with arrays ``ids`` (strings, ImageSet ids) and ``embeddings`` (float ``[n, d]``); it
may cover several splits. A relative ``path`` resolves against the image set's root, so the encoder binds
to an image set (:meth:`EmbeddingFileEncoder.for_images`) before it has a fingerprint. Rows are served by
id and validated by :func:`eegbench.execution.embedding.load_embedding_file` (count, ids, dim, NaN, normalisation).

fingerprint = sha256 of the file + the file's ids (through the sha) + the normalisation settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import EegbenchError
from eegbench.interfaces import ImageEncoder, stable_hash
from eegbench.paths import file_digest

NORMALIZED_WORDS = {"any": None, "l2": True, "none": False}


class EmbeddingFileEncoder(ImageEncoder):
    def __init__(
        self,
        path: str,
        *,
        normalized: str = "any",
        normalize: bool = False,
        ids_key: str = "ids",
        embeddings_key: str = "embeddings",
        name: str = "embedding-file",
    ):
        if not path:
            raise EegbenchError(
                'image encoder embedding-file needs path = "file.npz" '
                "(relative paths resolve against the image set root)"
            )
        if normalized not in NORMALIZED_WORDS:
            raise EegbenchError(
                f'image encoder embedding-file: normalized must be "any", "l2" or "none", got {normalized!r}'
            )
        self.path = str(path)
        self.normalized = normalized
        self.normalize = bool(normalize)
        self.ids_key, self.embeddings_key = ids_key, embeddings_key
        self.name = name
        self.random_init = False
        self._file: Path | None = Path(path).expanduser() if Path(path).expanduser().is_absolute() else None
        self._dim: int | None = None
        self._sha: str | None = None

    # -- binding -------------------------------------------------------------------------------------------
    def for_images(self, images: Any) -> EmbeddingFileEncoder:
        """This encoder with ``path`` resolved against ``images.root`` (itself when the path is absolute)."""
        if self._file is not None:
            return self
        bound = EmbeddingFileEncoder(
            self.path,
            normalized=self.normalized,
            normalize=self.normalize,
            ids_key=self.ids_key,
            embeddings_key=self.embeddings_key,
            name=self.name,
        )
        root = Path(images.root) if images.root else Path.cwd()
        bound._file = (root / self.path).resolve()
        return bound

    def _require_file(self) -> Path:
        if self._file is None:
            raise EegbenchError(
                f"image encoder embedding-file: path {self.path!r} is relative; bind it to an image set first "
                "(eegbench.execution.embedding.embed_images does this)"
            )
        if not self._file.is_file():
            raise EegbenchError(f"image encoder embedding-file: file {str(self._file)!r} does not exist")
        return self._file

    def _read_header(self) -> None:
        from eegbench.execution.embedding import read_embedding_file

        _, emb = read_embedding_file(self._require_file(), ids_key=self.ids_key, embeddings_key=self.embeddings_key)
        self._dim = int(emb.shape[1])

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._read_header()
        return int(self._dim)

    @property
    def fingerprint(self) -> str:  # type: ignore[override]
        if self._sha is None:
            self._sha = file_digest(self._require_file())
        fields = {
            "sha256": self._sha,
            "normalized": self.normalized,
            "normalize": self.normalize,
            "keys": [self.ids_key, self.embeddings_key],
        }
        return f"embedding-file:{stable_hash(fields)}"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "name": self.name,
            "path": str(self._file or self.path),
            "sha256": self._sha or file_digest(self._require_file()),
            "normalized": self.normalized,
            "normalize": self.normalize,
        }

    def encode(self, images, *, device: str = "cpu", batch_size: int = 64, progress: bool = True) -> np.ndarray:
        from eegbench.execution.embedding import load_embedding_file

        enc = self.for_images(images)
        emb = load_embedding_file(
            enc._require_file(),
            images,
            normalized=NORMALIZED_WORDS[self.normalized],
            ids_key=self.ids_key,
            embeddings_key=self.embeddings_key,
        )
        if self.normalize:
            emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        return emb.astype(np.float32, copy=False)
