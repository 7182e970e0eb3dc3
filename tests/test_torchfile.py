import io
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from helpers import torchfile


class _FakeStorage:
    def __init__(self, key, data):
        self.key, self.data = key, data


def _make_fake_torch(monkeypatch):
    """Fake `torch` modules so the pickler can name torch globals (no torch installed)."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while pickling")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"
    torch.FloatStorage = FloatStorage
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch, utils


def _legacy_bytes(monkeypatch, tensors: dict, extra=None) -> bytes:
    """Write a legacy .pth by hand: the format described in shared/REFERENCE.md."""
    torch, utils = _make_fake_torch(monkeypatch)
    storages = {}

    class T:
        def __init__(self, key, arr):
            self.key, self.arr = key, arr

        def __reduce__(self):
            st = _FakeStorage(self.key, self.arr.ravel())
            storages[self.key] = st
            strides = tuple(s // self.arr.itemsize for s in self.arr.strides)
            return (utils._rebuild_tensor_v2, (st, 0, self.arr.shape, strides, False, {}))

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _FakeStorage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.data.size)
            return None

    import collections

    state = collections.OrderedDict(
        (k, T(str(i), np.ascontiguousarray(v, np.float32))) for i, (k, v) in enumerate(tensors.items())
    )
    if extra is not None:
        state["evil"] = extra
    buf = io.BytesIO()
    for obj in (torchfile.MAGIC_NUMBER, torchfile.PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(obj, buf, protocol=2)
    P(buf, protocol=2).dump(state)
    keys = sorted(storages)
    pickle.dump(keys, buf, protocol=2)
    for k in keys:
        data = storages[k].data.astype("<f4")
        buf.write(struct.pack("<q", data.size))
        buf.write(data.tobytes())
    return buf.getvalue()


def test_reads_a_hand_written_legacy_file(monkeypatch):
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    b = np.array([0.5, -1.5], np.float32)
    out = torchfile.load_state_dict(_legacy_bytes(monkeypatch, {"conv.weight": w, "conv.bias": b}))
    assert list(out) == ["conv.weight", "conv.bias"]
    np.testing.assert_array_equal(out["conv.weight"], w)
    np.testing.assert_array_equal(out["conv.bias"], b)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/course_pwned",))


def test_refuses_a_pickle_that_would_run_code(monkeypatch, tmp_path):
    data = _legacy_bytes(monkeypatch, {"w": np.ones(2)}, extra=_Evil())
    with pytest.raises(torchfile.UnsafeWeightsError, match="refusing to load (posix|os).system"):
        torchfile.load_state_dict(data)


def test_refuses_code_even_in_the_header():
    buf = io.BytesIO()
    pickle.dump(_Evil(), buf, protocol=2)
    with pytest.raises(torchfile.UnsafeWeightsError):
        torchfile.load_state_dict(buf.getvalue())


def test_truncated_file_is_a_format_error(monkeypatch):
    data = _legacy_bytes(monkeypatch, {"w": np.ones((3, 3))})
    with pytest.raises(torchfile.WeightsFormatError, match="truncated"):
        torchfile.load_state_dict(data[:-5])


def test_not_a_torch_file():
    with pytest.raises(torchfile.WeightsFormatError):
        torchfile.load_state_dict(b"PK\x03\x04 not a legacy pickle")
    buf = io.BytesIO()
    pickle.dump(12345, buf)
    with pytest.raises(torchfile.WeightsFormatError, match="magic"):
        torchfile.load_state_dict(buf.getvalue())


def _crafted(monkeypatch, size, stride, offset=0, numel=4, header_numel=None, payload=None) -> bytes:
    """A legacy file whose one tensor has the given geometry over a float32 storage of ``numel`` elements."""
    torch, utils = _make_fake_torch(monkeypatch)
    st = _FakeStorage("0", None)

    class T:
        def __reduce__(self):
            return (utils._rebuild_tensor_v2, (st, offset, size, stride, False, {}))

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if obj is st else None

    buf = io.BytesIO()
    for obj in (torchfile.MAGIC_NUMBER, torchfile.PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(obj, buf, protocol=2)
    P(buf, protocol=2).dump({"w": T()})
    pickle.dump(["0"], buf, protocol=2)
    buf.write(struct.pack("<q", numel if header_numel is None else header_numel))
    buf.write(np.arange(numel, dtype="<f4").tobytes() if payload is None else payload)
    return buf.getvalue()


def test_a_crafted_geometry_that_fits_reads_exactly(monkeypatch):
    # a transposed 2x2 view: the oracle is the storage [0, 1, 2, 3] read column-first
    out = torchfile.load_state_dict(_crafted(monkeypatch, (2, 2), (1, 2)))
    np.testing.assert_array_equal(out["w"], [[0, 2], [1, 3]])


@pytest.mark.parametrize(
    "geometry, message",
    [
        # each of these once crashed Python, read outside the buffer or asked for gigabytes
        (dict(size=(4,), stride=(-1,), offset=3), "negative stride"),
        (dict(size=(1 << 30,), stride=(0,)), "holds only 4"),
        (dict(size=(1 << 16, 1 << 16), stride=(0, 0)), "holds only 4"),
        (dict(size=(2, 2), stride=(0, 1)), "overlap"),
        (dict(size=(1 << 62, 1 << 62), stride=(1, 1)), "holds only 4"),
        (dict(size=(-1,), stride=(1,)), "negative size"),
        (dict(size=(4,), stride=(1,), offset=1), "past storage"),
        (dict(size=(2,), stride=(1,), offset=-1), "offset"),
        (dict(size=(2,), stride=(1, 1)), "not int tuples"),
        (dict(size=(2,), stride=("1",)), "not int tuples"),
    ],
)
def test_crafted_geometry_is_refused_before_any_view(monkeypatch, geometry, message):
    data = _crafted(monkeypatch, **geometry)
    assert len(data) < 500
    with pytest.raises(torchfile.WeightsFormatError, match=message):
        torchfile.load_state_dict(data)


@pytest.mark.parametrize(
    "storage, message",
    [
        (dict(numel=1 << 61, payload=b""), "truncated"),  # declares 16 EiB, holds nothing
        (dict(numel=4, header_numel=1 << 62), "data header says"),
        (dict(numel=4, header_numel=-1), "data header says"),
        (dict(numel=-4, payload=b""), "element count"),
        (dict(numel=4, payload=b"\0" * 8), "truncated"),
    ],
)
def test_storage_counts_are_checked_against_the_bytes_present(monkeypatch, storage, message):
    data = _crafted(monkeypatch, size=(0,), stride=(1,), **storage)
    with pytest.raises(torchfile.WeightsFormatError, match=message):
        torchfile.load_state_dict(data)


def test_zip_format_file_says_how_to_resave_it():
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(torchfile.WeightsFormatError, match="zip-format.*_use_new_zipfile_serialization=False"):
        torchfile.load_state_dict(buf.getvalue())


def test_real_weights_file_has_the_documented_layout():
    from helpers import models

    sd = torchfile.load_state_dict(models.weights_file())
    assert len(sd) == 296
    assert sum(v.size for v in sd.values()) == 4_694_073
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
