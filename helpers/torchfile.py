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
import math
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


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _Storage:
    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    """A tensor's geometry, checked against its storage before any view is made."""

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    @property
    def numel(self) -> int:
        return math.prod(self.size)

    def check(self, name: str) -> None:
        """Raise :class:`WeightsFormatError` unless the view lies inside the storage without overlap.

        Python integers throughout, so no check can overflow. Overlapping views
        (a zero stride, as ``Tensor.expand`` makes) are refused: they would let a
        few bytes of file stand for gigabytes of array.
        """
        st, size, stride, offset = self.storage, self.size, self.stride, self.offset
        if not all(_is_int(s) for s in size) or not all(_is_int(s) for s in stride) or len(size) != len(stride):
            raise WeightsFormatError(f"tensor {name!r}: size {size!r:.80} and stride {stride!r:.80} are not int tuples")
        if any(s < 0 for s in size):
            raise WeightsFormatError(f"tensor {name!r}: negative size {size}")
        if any(s < 0 for s in stride):
            raise WeightsFormatError(f"tensor {name!r}: negative stride {stride}")
        if not 0 <= offset <= st.numel:
            raise WeightsFormatError(f"tensor {name!r}: offset {offset} outside storage {st.key!r} of {st.numel}")
        if self.numel == 0:
            return
        if self.numel > st.numel:
            raise WeightsFormatError(
                f"tensor {name!r}: {self.numel} elements but storage {st.key!r} holds only {st.numel} "
                "(zero or overlapping strides are not allowed in a weights file)"
            )
        last = offset + sum((s - 1) * t for s, t in zip(size, stride))
        if last >= st.numel:
            raise WeightsFormatError(f"tensor {name!r}: reaches element {last}, past storage {st.key!r} of {st.numel}")
        dims = sorted((t, s) for s, t in zip(size, stride) if s > 1)
        reach = 1  # elements spanned by the faster dims: a dim must step past them, or views overlap
        for t, s in dims:
            if t < reach:
                raise WeightsFormatError(f"tensor {name!r}: stride {stride} makes elements overlap")
            reach = t * (s - 1) + reach

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise WeightsFormatError(f"storage {self.storage.key!r} has no data")
        if self.numel == 0:
            return np.zeros(self.size, dtype=data.dtype.newbyteorder("="))
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
    if not _is_int(storage_offset) or not isinstance(size, tuple) or not isinstance(stride, tuple):
        raise WeightsFormatError("tensor with a malformed offset, size or stride")
    return _LazyTensor(storage, storage_offset, size, stride)


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
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise WeightsFormatError(f"malformed storage id (key {key!r:.40}, element count {numel!r:.40})")
        known = self.storages.get(key)
        if known is None:
            self.storages[key] = known = _Storage(key, storage_type.dtype, numel)
        elif (known.dtype, known.numel) != (storage_type.dtype, numel):
            raise WeightsFormatError(f"storage {key!r} is declared twice with different types or sizes")
        return known


def _plain_load(f: BinaryIO, what: str) -> Any:
    try:
        return RestrictedUnpickler(f).load()
    except (UnsafeWeightsError, WeightsFormatError):
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad file
        raise WeightsFormatError(f"could not read the {what}: {type(exc).__name__}: {str(exc)[:200]}") from None


#: The arrays returned may together take at most this many times the file's size
#: (a margin for tensors that legitimately share a storage, e.g. tied weights).
MAX_EXPANSION = 4


def load_state_dict(source: str | bytes | BinaryIO) -> dict[str, np.ndarray]:
    """Read a legacy PyTorch state dict into numpy arrays.

    Every size, stride, offset and element count is checked against the storage
    (and every storage against the bytes actually in the file) before any view
    is made, so a crafted file ends in one of this module's errors, never in a
    crash, an out-of-bounds read or an allocation larger than
    :data:`MAX_EXPANSION` times the file.

    Args:
        source: a path, the file's bytes, or a binary file object.

    Returns:
        An ordered ``{name: array}`` dict, arrays in PyTorch's layout.

    Raises:
        UnsafeWeightsError: the pickle names a global a state dict never needs.
        WeightsFormatError: the file is not a legacy state dict, is truncated, or
            describes a tensor its storage cannot hold (the message says which).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, str) or hasattr(source, "__fspath__"):
        with open(source, "rb") as fh:
            data = fh.read()
    else:
        data = source.read()
    if data[:4] == b"PK\x03\x04":
        raise WeightsFormatError(
            "this is a zip-format PyTorch file (torch.save since PyTorch 1.6); this reader reads only the "
            "legacy format: re-save it with torch.save(state_dict, path, _use_new_zipfile_serialization=False)"
        )
    f = io.BytesIO(data)
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
        raise WeightsFormatError(f"could not read the state dict: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(result, dict):
        raise WeightsFormatError("the file does not hold a state dict")
    for name, value in result.items():
        if not isinstance(value, _LazyTensor):
            raise WeightsFormatError(f"entry {name!r:.80} is not a tensor")
        value.check(str(name))
    total = sum(v.numel * v.storage.dtype.itemsize for v in result.values())
    if total > MAX_EXPANSION * len(data):
        raise WeightsFormatError(
            f"the tensors would take {total:,} bytes from a {len(data):,}-byte file: they overlap (crafted file?)"
        )
    keys = _plain_load(f, "storage keys")
    if not isinstance(keys, list):
        raise WeightsFormatError("storage key list missing")
    for key in keys:
        storage = unpickler.storages.get(key) if isinstance(key, str) else None
        if storage is None:
            raise WeightsFormatError(f"storage {key!r:.80} is listed but never used")
        if storage.data is not None:
            raise WeightsFormatError(f"storage {key!r} is listed twice")
        head = f.read(8)
        if len(head) != 8:
            raise WeightsFormatError(f"file is truncated (header of storage {key!r})")
        (numel,) = struct.unpack("<q", head)
        if numel != storage.numel:
            raise WeightsFormatError(
                f"storage {key!r} declares {storage.numel} elements but its data header says {numel}: file is damaged"
            )
        nbytes = numel * storage.dtype.itemsize
        if nbytes > len(data) - f.tell():
            raise WeightsFormatError(
                f"file is truncated: storage {key!r} needs {nbytes:,} bytes, {len(data) - f.tell():,} remain"
            )
        storage.data = np.frombuffer(f.read(nbytes), dtype=storage.dtype)
    out: dict[str, np.ndarray] = collections.OrderedDict()
    for name, value in result.items():
        out[str(name)] = value.materialize()
    return out
