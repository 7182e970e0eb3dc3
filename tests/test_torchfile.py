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


def test_real_weights_file_has_the_documented_layout():
    from helpers import models

    sd = torchfile.load_state_dict(models.weights_file())
    assert len(sd) == 296
    assert sum(v.size for v in sd.values()) == 4_694_073
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
