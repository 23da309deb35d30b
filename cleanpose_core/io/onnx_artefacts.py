"""ONNX Runtime exports of network parts: where they live, the metadata that ties one to its weights, checks.

An export is an ONNX file next to the weights file it was made from, named `<weights stem>.<part>.onnx`
(`cleanpose export` writes them; `inference/runtime.py` makes and loads them). Its ONNX metadata holds the
format tag `ONNX_FORMAT`, the part's name and the sha256 of the weights file, so a file left over from other
weights is recognised and not used. This module imports nothing of the project but `artefacts`; it needs the
`onnx` package only to write metadata into an export.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from .artefacts import FORMATS, ONNX_FORMAT, WeightsError

__all__ = ["onnx_artefact_path", "file_sha256", "onnx_metadata", "write_onnx_artefact", "check_onnx_metadata"]


def onnx_artefact_path(weights: str | Path, part: str) -> Path:
    """Where the export of `part` made from `weights` lives: beside it, `<stem>.<part>.onnx`."""
    weights = Path(weights)
    return weights.with_name(f"{weights.stem}.{part}.onnx")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, cached per (path, size, mtime): an Estimator's construction asks for it per part."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def onnx_metadata(part: str, source: str | Path | None) -> dict[str, str]:
    """The metadata an export of `part` made from the weights file `source` (None: random weights) carries."""
    return {
        "format": ONNX_FORMAT,
        "part": part,
        "source_sha256": file_sha256(source) if source is not None else "random",
        "source_name": Path(source).name if source is not None else "",
    }


def write_onnx_artefact(model_bytes: bytes, path: str | Path, metadata: dict[str, str]) -> Path:
    """Write the ONNX model `model_bytes` with `metadata` added, atomically (temporary file + rename)."""
    import onnx

    model = onnx.load_model_from_string(model_bytes)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(model.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def check_onnx_metadata(found: dict[str, str], path: str | Path, expected: dict[str, str]) -> None:
    """Raise WeightsError naming `path` when the export's metadata `found` is not `expected` (another kind of
    file, another part, or made from other weights)."""
    if found.get("format") != ONNX_FORMAT:
        raise WeightsError(
            f"{path}: not a {FORMATS[ONNX_FORMAT].what} (format {found.get('format')!r}); "
            f"write one with {FORMATS[ONNX_FORMAT].written_by}"
        )
    for key in ("part", "source_sha256"):
        if found.get(key) != expected[key]:
            raise WeightsError(
                f"{path}: {key} is {found.get(key)!r}, expected {expected[key]!r} (made from other "
                f"weights? re-run `cleanpose export`)"
            )
