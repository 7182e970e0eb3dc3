import errno

import pytest

from helpers import _files


def _full_disk(tmp, data=b"partial"):
    tmp.write_bytes(data)  # the writer got part of the way
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(OSError, match="No space left"), _files.atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".json" and tmp.name.startswith(".")
        _full_disk(tmp)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_successful_write_replaces_the_file_and_ctrl_c_cleans_up(tmp_path):
    target = tmp_path / "report.json"
    _files.write_text(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with pytest.raises(KeyboardInterrupt), _files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
