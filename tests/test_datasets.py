import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from helpers import datasets
from helpers.datasets import render


def test_render_is_deterministic_and_the_box_fits_the_vehicle():
    a = render.render(np.random.default_rng([0, 0, 5]))
    b = render.render(np.random.default_rng([0, 0, 5]))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and np.array_equal(a[2], b[2])
    img, label, box = a
    assert img.dtype == np.uint8 and img.shape[0] == 224 and img.shape[2] == 3
    assert 0 <= label < len(render.CLASS_NAMES)
    assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1


def test_sizes_and_classes_vary():
    boxes, labels, widths = [], [], set()
    for i in range(60):
        img, label, box = render.render(np.random.default_rng([1, 0, i]))
        boxes.append(box)
        labels.append(label)
        widths.add(img.shape[1])
    b = np.array(boxes)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    assert area.min() < 0.12 and area.max() > 0.4, "vehicles cover about 5-60% of the image"
    assert len(set(labels)) == len(render.CLASS_NAMES)
    assert len(widths) > 1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return datasets.load("toy_cars/tiny", data_dir=tmp_path_factory.mktemp("tfds"))


def test_toy_cars_has_the_cars196_features(tiny):
    (train, val, test), info = tiny
    feats = info.features
    assert set(feats.keys()) == {"image", "label", "bbox", "mask", "id"}
    assert isinstance(feats["bbox"], tfds.features.BBoxFeature)
    assert isinstance(feats["label"], tfds.features.ClassLabel) and feats["label"].num_classes == 8
    assert feats["label"].names[0] == "sedan"
    assert info.splits["train"].num_examples == 24 and info.splits["test"].num_examples == 8
    ex = next(iter(test))
    assert ex["image"].dtype == np.uint8 and ex["bbox"].shape == (4,)


def test_toy_cars_is_the_same_bytes_every_run(tiny, tmp_path):
    (_, _, test), _ = tiny
    (_, _, again), _ = datasets.load("toy_cars/tiny", data_dir=tmp_path)
    a = sorted((e["id"].numpy(), e["image"].numpy().tobytes()) for e in test)
    b = sorted((e["id"].numpy(), e["image"].numpy().tobytes()) for e in again)
    assert a == b


def test_tfds_load_finds_the_builder(tmp_path):
    ds = tfds.load("toy_cars/tiny", split="validation", data_dir=str(tmp_path))
    assert sum(1 for _ in ds) == 8


def _fake_stanford_cars(root, n_train=3, n_test=2):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    dtype = [(k, "O") for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")]

    def split(name, n):
        folder = root / name
        folder.mkdir()
        recs = np.zeros((1, n), dtype=dtype)
        for i in range(n):
            fname = f"{i + 1:05d}.jpg"
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / fname)
            recs[0, i] = (
                np.array([[11]]),
                np.array([[5]]),
                np.array([[60]]),
                np.array([[40]]),
                np.array([[i + 1]]),
                np.array([fname]),
            )
        with tarfile.open(root / f"{name}.tgz", "w:gz") as tar:
            tar.add(folder, arcname=name)
        return recs

    train = split("cars_train", n_train)
    test = split("cars_test", n_test)
    (root / "devkit").mkdir()
    savemat(root / "devkit" / "cars_train_annos.mat", {"annotations": train})
    with tarfile.open(root / "car_devkit.tgz", "w:gz") as tar:
        tar.add(root / "devkit", arcname="devkit")
    savemat(root / "cars_test_annos_withlabels.mat", {"annotations": test})


def test_stanford_cars_reads_the_original_files(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    _fake_stanford_cars(manual)
    (train, test), info = datasets.load(
        "stanford_cars", split=("train", "test"), data_dir=tmp_path / "tfds", manual_dir=manual
    )
    assert info.features["label"].num_classes == 196
    assert info.splits["train"].num_examples == 3 and info.splits["test"].num_examples == 2
    ex = sorted(tfds.as_numpy(test), key=lambda e: e["id"])[1]
    assert ex["label"] == 1 and ex["image"].shape == (40, 60, 3)
    np.testing.assert_allclose(ex["bbox"], [4 / 40, 10 / 60, 1.0, 1.0], atol=1e-6)


def test_stanford_cars_missing_files_say_what_to_put_where(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "cars_train.tgz").write_bytes(b"")
    with pytest.raises(datasets.MissingFilesError) as err:
        datasets.load("stanford_cars", data_dir=tmp_path / "tfds", manual_dir=manual)
    msg = str(err.value)
    assert "cars_test.tgz" in msg and "car_devkit.tgz" in msg and "cars_test_annos_withlabels.mat" in msg
    assert "cars_train.tgz, " not in msg.split("\n")[0]
    assert str(manual) in msg


@pytest.mark.parametrize("damaged", ["cars_train.tgz", "cars_test_annos_withlabels.mat"])
def test_stanford_cars_truncated_file_is_named_with_the_fix(tmp_path, damaged):
    manual = tmp_path / "manual"
    manual.mkdir()
    _fake_stanford_cars(manual)
    path = manual / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(datasets.DamagedFileError) as err:
        datasets.load("stanford_cars", split="test", data_dir=tmp_path / "tfds", manual_dir=manual)
    msg = str(err.value)
    assert msg.startswith(f"{path} is damaged or truncated") and "download it again" in msg
    assert "\n" not in msg


def test_quiet_load_prints_nothing_while_preparing(tmp_path, capfd):
    from helpers import datasets

    (ds,), _ = datasets.load("toy_cars/tiny", split=("test",), data_dir=tmp_path, quiet=True)
    assert len(list(ds)) == 8
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out[-300:], err[-300:])


def test_a_second_process_preparing_the_same_data_set_at_once_is_harmless(tmp_path, monkeypatch):
    # Two notebooks opened at once on a fresh clone both prepare toy_cars: the one that finishes
    # second finds the folder already there (TFDS's final rename fails); it must read that copy.
    from helpers.datasets import toy_cars

    original, raced = toy_cars.ToyCars._split_generators, []

    def split_generators(self, dl_manager):
        if not raced:  # "the other process" prepares the same data set while this one is generating
            raced.append(True)
            tfds.builder("toy_cars/tiny", data_dir=str(tmp_path)).download_and_prepare()
        return original(self, dl_manager)

    monkeypatch.setattr(toy_cars.ToyCars, "_split_generators", split_generators)
    (ds,), _ = datasets.load("toy_cars/tiny", split=("test",), data_dir=tmp_path, quiet=True)
    assert raced and len(list(ds)) == 8
