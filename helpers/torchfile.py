"""Read legacy (pre-zip) PyTorch ``.pth`` state dicts with numpy alone, safely.

A legacy PyTorch file is a run of pickles: a magic number, a protocol version,
a system-info dict, then the state dict, whose tensors point to *storages* by
persistent id; then a pickled list of storage keys and, for each key in that
order, an int64 element count followed by the raw little-endian data.

Unpickling can run arbitrary code, so :class:`RestrictedUnpickler` admits only
the handful of globals a state dict needs and refuses everything else with
:class:`UnsafeWeightsError`. Torch is never imported.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from typing import Any, BinaryIO

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeWeightsError(pickle.UnpicklingError):
    """The weights file names a global that a plain state dict never needs."""


class WeightsFormatError(ValueError):
    """The file is not a legacy PyTorch state dict (or it is damaged)."""


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _Storage:
    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise WeightsFormatError(f"storage {self.storage.key!r} has no data")
        needed = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride)) + 1
        if any(s == 0 for s in self.size):
            return np.zeros(self.size, dtype=data.dtype)
        if needed > data.size:
            raise WeightsFormatError(f"tensor reaches past storage {self.storage.key!r}")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(st * data.itemsize for st in self.stride),
            writeable=False,
        )
        return np.array(view, dtype=data.dtype.newbyteorder("="))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_unused):
    if not isinstance(storage, _Storage):
        raise WeightsFormatError("tensor built from something that is not a storage")
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that admits only what a PyTorch state dict is made of.

    Allowed globals: ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``
    and the typed ``torch.*Storage`` classes. Anything else raises
    :class:`UnsafeWeightsError` before it can be called.
    """

    def __init__(self, file: BinaryIO):
        super().__init__(file, encoding="latin1")
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeWeightsError(
            f"refusing to load {module}.{name}: a weights file may only contain tensors "
            "(this file is damaged or was crafted to run code)"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafeWeightsError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeWeightsError(f"unexpected storage type {storage_type!r:.80}")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self.storages[key]


def _plain_load(f: BinaryIO, what: str) -> Any:
    try:
        return RestrictedUnpickler(f).load()
    except UnsafeWeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
        raise WeightsFormatError(f"could not read the {what}: {exc}") from exc


def load_state_dict(source: str | bytes | BinaryIO) -> dict[str, np.ndarray]:
    """Read a legacy PyTorch state dict into numpy arrays.

    Args:
        source: a path, the file's bytes, or a binary file object.

    Returns:
        An ordered ``{name: array}`` dict, arrays in PyTorch's layout.

    Raises:
        UnsafeWeightsError: the pickle names a global a state dict never needs.
        WeightsFormatError: the file is not a legacy state dict, or is truncated.
    """
    if isinstance(source, (bytes, bytearray)):
        f: BinaryIO = io.BytesIO(source)
    elif isinstance(source, str) or hasattr(source, "__fspath__"):
        with open(source, "rb") as fh:
            return load_state_dict(fh.read())
    else:
        f = source
    if _plain_load(f, "magic number") != MAGIC_NUMBER:
        raise WeightsFormatError("not a legacy PyTorch file (wrong magic number)")
    if _plain_load(f, "protocol version") != PROTOCOL_VERSION:
        raise WeightsFormatError("unsupported PyTorch protocol version")
    sys_info = _plain_load(f, "system info")
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise WeightsFormatError("big-endian PyTorch files are not supported")
    unpickler = RestrictedUnpickler(f)
    try:
        result = unpickler.load()
    except (UnsafeWeightsError, WeightsFormatError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise WeightsFormatError(f"could not read the state dict: {exc}") from exc
    keys = _plain_load(f, "storage keys")
    if not isinstance(keys, list):
        raise WeightsFormatError("storage key list missing")
    for key in keys:
        storage = unpickler.storages.get(str(key))
        if storage is None:
            raise WeightsFormatError(f"storage {key!r} is listed but never used")
        head = f.read(8)
        if len(head) != 8:
            raise WeightsFormatError("file is truncated (storage header)")
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if numel != storage.numel or len(raw) != nbytes:
            raise WeightsFormatError(f"file is truncated or damaged (storage {key!r})")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if not isinstance(result, dict):
        raise WeightsFormatError("the file does not hold a state dict")
    out: dict[str, np.ndarray] = collections.OrderedDict()
    for name, value in result.items():
        if not isinstance(value, _LazyTensor):
            raise WeightsFormatError(f"entry {name!r} is not a tensor")
        out[str(name)] = value.materialize()
    return out
