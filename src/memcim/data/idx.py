"""Reader and writer for the IDX format of the original MNIST / Fashion-MNIST files.

An IDX file is a 4-byte magic number, one big-endian ``uint32`` per dimension, then the array
in C order, big-endian::

    magic = 0x00 0x00 <type code> <number of dims>
    type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64

MNIST images are ``0x00000803`` (2051: uint8, 3 dims ``[N, 28, 28]``) and labels ``0x00000801``
(2049: uint8, 1 dim ``[N]``). Files may be gzip-compressed (detected from the gzip signature,
not from the file name). Parsed with numpy alone; no torchvision needed.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from memcim._errors import ConfigError

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

# IDX type code -> big-endian numpy dtype.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str: code for code, dt in _DTYPES.items()}
_GZIP_SIGNATURE = b"\x1f\x8b"
_FORMAT = (
    "an IDX file (optionally gzip-compressed): magic 0x0000<type><ndim>, e.g. 2051 for "
    "uint8 images [N, H, W] or 2049 for uint8 labels [N], then big-endian uint32 sizes and data"
)


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_SIGNATURE:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ConfigError(
            f"IDX file {str(path)!r} is unreadable ({err}): expected {_FORMAT}"
        ) from err
    return raw


def read_idx(path: str | os.PathLike[str], *, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (raw or gzip) into a native-endian numpy array.

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte`` or ``t10k-labels-idx1-ubyte.gz``.
        expected_magic: when given, the magic number the file must carry (2051 for MNIST images,
            2049 for labels).

    Returns:
        The array with the shape stored in the header (e.g. ``[N, 28, 28]`` uint8).

    Raises:
        ConfigError: the file is missing, not gzip-decodable, has a bad or unexpected magic
            number, or its payload is shorter or longer than the header's dimensions imply.
            The message names the path and the expected format.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"IDX file {str(path)!r} not found: expected {_FORMAT}")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ConfigError(
            f"IDX file {str(path)!r} is truncated ({len(raw)} bytes, no magic number): "
            f"expected {_FORMAT}"
        )
    magic = int.from_bytes(raw[:4], "big")
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or code not in _DTYPES or ndim == 0:
        raise ConfigError(
            f"IDX file {str(path)!r} has bad magic number {magic} (0x{magic:08X}): "
            f"expected {_FORMAT}"
        )
    if expected_magic is not None and magic != expected_magic:
        raise ConfigError(
            f"IDX file {str(path)!r} has magic number {magic}, expected {expected_magic}: "
            f"expected {_FORMAT}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(
            f"IDX file {str(path)!r} is truncated inside its {ndim}-dimension header: "
            f"expected {_FORMAT}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != n_bytes:
        raise ConfigError(
            f"IDX file {str(path)!r} holds {len(raw) - header} data bytes but its header "
            f"{list(shape)} ({dtype.name}) implies {n_bytes}: the file is truncated or "
            f"corrupt; expected {_FORMAT}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write an array as an IDX file; gzip-compressed when the name ends in ``.gz``.

    Args:
        path: destination file.
        array: at least 1-D, dtype uint8, int8, int16, int32, float32 or float64.

    Returns:
        The path written.

    Raises:
        ConfigError: ``array`` has an unsupported dtype or no dimensions.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("=").str)
    if code is None or array.ndim == 0 or array.ndim > 255:
        raise ConfigError(
            f"array={array.dtype} {array.shape} is invalid: write_idx needs a 1..255-dimensional "
            f"array of dtype {sorted(dt.name for dt in _DTYPES.values())}"
        )
    payload = (
        bytes([0, 0, code, array.ndim])
        + np.asarray(array.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()
    )
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path
