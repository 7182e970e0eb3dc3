"""``toy_cars``: a generated localisation data set with the features of TFDS ``cars196``.

``tfds.load("toy_cars")`` works offline once :mod:`helpers.datasets` is imported:
the images are drawn, not downloaded (see :mod:`helpers.datasets.render`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from . import render

SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


@dataclasses.dataclass
class ToyCarsConfig(tfds.core.BuilderConfig):
    """Split sizes and seed of one variant of the data set."""

    sizes: tuple = (3000, 500, 1000)
    seed: int = 0


class ToyCars(tfds.core.GeneratorBasedBuilder):
    """Vehicles drawn from parts on real textures, with class labels and boxes."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "Adds `mask`: each vehicle's exact visible pixels (H, W, 1) uint8 0/1, for PxAP and the "
        "pointing game. Images, labels and boxes are byte-identical to 1.0.0.",
    }
    BUILDER_CONFIGS = [
        ToyCarsConfig(name="default", description="3000 / 500 / 1000 images", sizes=(3000, 500, 1000)),
        ToyCarsConfig(name="small", description="600 / 200 / 200 images, for quick runs", sizes=(600, 200, 200)),
        ToyCarsConfig(name="tiny", description="24 / 8 / 8 images, for tests", sizes=(24, 8, 8)),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=(
                "Vehicles of 8 classes drawn from parts (body, cabin, windows, wheels, cargo bed) in random "
                "colours, sizes (5-60% of the image), aspects, positions and facing, with occluders and "
                "distractor shapes, on real textures from scikit-image. Same features as cars196, plus `mask`: "
                "the exact visible pixels of the vehicle (1 inside, 0 outside)."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                    "label": tfds.features.ClassLabel(names=list(render.CLASS_NAMES)),
                    "bbox": tfds.features.BBoxFeature(),
                    "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                    "id": tfds.features.Text(),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://github.com/",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        sizes = dict(zip(SPLIT_IDS, self.builder_config.sizes))
        return {split: self._generate_examples(split, n) for split, n in sizes.items()}

    def _generate_examples(self, split: str, n: int):
        for i in range(n):
            rng = np.random.default_rng([self.builder_config.seed, SPLIT_IDS[split], i])
            image, label, box, mask = render.render_with_mask(rng)
            key = f"{split}_{i:05d}"
            bbox = tfds.features.BBox(*box.tolist())
            yield key, {"image": image, "label": label, "bbox": bbox, "mask": mask[..., None], "id": key}
