"""Draw the vehicles of ``toy_cars`` from parts, on real textured backgrounds.

Each class is a list of parts (body, cabin, windows, wheels, cargo bed, ...) laid
out in a unit vehicle frame: ``u`` runs from the rear (0) to the front (1), ``v``
from the roof (0) to the ground (1). Classes differ in shape and parts, not in
colour: every vehicle gets a random paint colour.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CLASS_NAMES = ("sedan", "hatchback", "pickup truck", "van", "bus", "sports car", "SUV", "box truck")

# length / height of each class's box (before jitter)
ASPECT = {
    "sedan": 2.6,
    "hatchback": 2.1,
    "pickup truck": 2.6,
    "van": 1.9,
    "bus": 3.4,
    "sports car": 3.0,
    "SUV": 2.1,
    "box truck": 2.7,
}

WINDOW = (170, 205, 230)
TYRE = (25, 25, 25)
HUB = (190, 190, 190)


def _parts(name: str, rng) -> list[tuple]:
    """Parts as ('poly', [(u, v), ...], colour role) or ('wheel', u, radius) in the unit frame."""
    P = []
    if name == "sedan":
        P += [("poly", [(0, 0.45), (0.25, 0.42), (0.75, 0.42), (1, 0.52), (1, 0.8), (0, 0.8)], "body")]
        P += [("poly", [(0.25, 0.44), (0.36, 0.06), (0.62, 0.06), (0.74, 0.44)], "body")]
        P += [("poly", [(0.3, 0.4), (0.38, 0.12), (0.48, 0.12), (0.48, 0.4)], "window")]
        P += [("poly", [(0.51, 0.4), (0.51, 0.12), (0.6, 0.12), (0.69, 0.4)], "window")]
        P += [("wheel", 0.2, 0.17), ("wheel", 0.8, 0.17)]
    elif name == "hatchback":
        P += [("poly", [(0, 0.42), (0.7, 0.42), (1, 0.5), (1, 0.8), (0, 0.8)], "body")]
        P += [("poly", [(0.02, 0.44), (0.08, 0.05), (0.55, 0.05), (0.72, 0.44)], "body")]
        P += [("poly", [(0.1, 0.38), (0.13, 0.12), (0.32, 0.12), (0.32, 0.38)], "window")]
        P += [("poly", [(0.36, 0.38), (0.36, 0.12), (0.53, 0.12), (0.66, 0.38)], "window")]
        P += [("wheel", 0.2, 0.18), ("wheel", 0.8, 0.18)]
    elif name == "pickup truck":
        P += [("poly", [(0, 0.4), (1, 0.4), (1, 0.8), (0, 0.8)], "body")]
        P += [("poly", [(0.48, 0.42), (0.5, 0.02), (0.7, 0.02), (0.78, 0.42)], "body")]
        P += [("poly", [(0.58, 0.36), (0.58, 0.08), (0.68, 0.08), (0.74, 0.36)], "window")]
        P += [("poly", [(0.0, 0.25), (0.45, 0.25), (0.45, 0.42), (0.0, 0.42)], "dark")]  # cargo bed
        P += [("poly", [(0.03, 0.3), (0.42, 0.3), (0.42, 0.4), (0.03, 0.4)], "bed")]
        P += [("wheel", 0.18, 0.19), ("wheel", 0.82, 0.19)]
    elif name == "van":
        P += [("poly", [(0, 0.03), (0.8, 0.03), (1, 0.42), (1, 0.82), (0, 0.82)], "body")]
        P += [("poly", [(0.8, 0.08), (0.95, 0.4), (0.8, 0.4)], "window")]
        for a in (0.05, 0.3, 0.55):
            P += [("poly", [(a, 0.1), (a + 0.2, 0.1), (a + 0.2, 0.38), (a, 0.38)], "window")]
        P += [("wheel", 0.18, 0.17), ("wheel", 0.82, 0.17)]
    elif name == "bus":
        P += [("poly", [(0, 0.0), (0.98, 0.0), (1, 0.05), (1, 0.86), (0, 0.86)], "body")]
        for k in range(7):
            a = 0.04 + k * 0.135
            P += [("poly", [(a, 0.1), (a + 0.11, 0.1), (a + 0.11, 0.42), (a, 0.42)], "window")]
        P += [("poly", [(0.0, 0.55), (1.0, 0.55), (1.0, 0.6), (0.0, 0.6)], "dark")]
        P += [("wheel", 0.14, 0.14), ("wheel", 0.82, 0.14)]
    elif name == "sports car":
        P += [("poly", [(0, 0.42), (0.05, 0.35), (0.3, 0.35), (0.65, 0.38), (1, 0.62), (1, 0.78), (0, 0.78)], "body")]
        P += [("poly", [(0.3, 0.38), (0.42, 0.12), (0.56, 0.12), (0.7, 0.4)], "body")]
        P += [("poly", [(0.36, 0.36), (0.44, 0.16), (0.55, 0.16), (0.64, 0.38)], "window")]
        P += [("poly", [(0.0, 0.22), (0.1, 0.22), (0.1, 0.36), (0.0, 0.36)], "dark")]  # spoiler
        P += [("wheel", 0.2, 0.22), ("wheel", 0.8, 0.22)]
    elif name == "SUV":
        P += [("poly", [(0, 0.4), (0.8, 0.4), (1, 0.48), (1, 0.8), (0, 0.8)], "body")]
        P += [("poly", [(0.02, 0.42), (0.04, 0.06), (0.66, 0.06), (0.8, 0.42)], "body")]
        P += [("poly", [(0.04, 0.02), (0.64, 0.02), (0.64, 0.06), (0.04, 0.06)], "dark")]  # roof rack
        for a, b in ((0.08, 0.27), (0.3, 0.48), (0.51, 0.66)):
            P += [("poly", [(a, 0.36), (a, 0.12), (b, 0.12), (b + (0.08 if b > 0.6 else 0), 0.36)], "window")]
        P += [("wheel", 0.18, 0.21), ("wheel", 0.82, 0.21)]
    elif name == "box truck":
        P += [("poly", [(0, 0.0), (0.68, 0.0), (0.68, 0.78), (0, 0.78)], "cargo")]
        P += [("poly", [(0.7, 0.25), (0.9, 0.25), (1, 0.45), (1, 0.82), (0.7, 0.82)], "body")]
        P += [("poly", [(0.82, 0.3), (0.9, 0.3), (0.97, 0.45), (0.82, 0.45)], "window")]
        P += [("poly", [(0.0, 0.74), (1.0, 0.74), (1.0, 0.82), (0.0, 0.82)], "dark")]  # chassis
        P += [("wheel", 0.12, 0.16), ("wheel", 0.3, 0.16), ("wheel", 0.86, 0.16)]
    else:
        raise ValueError(f"unknown vehicle class {name!r}")
    return P


@lru_cache(maxsize=1)
def textures() -> tuple[np.ndarray, ...]:
    """Real textured photos from scikit-image, as float32 RGB in [0, 255]."""
    import skimage.data as d

    out = []
    for name in ("grass", "gravel", "brick", "moon", "rocket", "coffee", "hubble_deep_field", "immunohistochemistry"):
        img = np.asarray(getattr(d, name)(), np.float32)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        out.append(img[..., :3])
    return tuple(out)


def background(rng, h: int, w: int) -> np.ndarray:
    """A random crop of a random texture, resized, flipped, tinted."""
    import cv2

    tex = textures()[rng.integers(len(textures()))]
    th, tw = tex.shape[:2]
    s = rng.uniform(0.35, 1.0)
    ch, cw = int(th * s), int(min(tw, th * s * w / h))
    y, x = rng.integers(0, th - ch + 1), rng.integers(0, tw - cw + 1)
    crop = cv2.resize(tex[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    tint = rng.uniform(0.6, 1.2, size=3)
    return np.clip(crop * tint + rng.uniform(-30, 30), 0, 255)


def _paint(rng) -> dict:
    body = rng.uniform(20, 235, size=3)
    return {
        "body": body,
        "dark": body * 0.45,
        "bed": body * 0.3,
        "cargo": rng.uniform(150, 245) * np.ones(3) * rng.uniform(0.85, 1.0, size=3),
        "window": np.array(WINDOW) * rng.uniform(0.8, 1.05),
    }


def draw_vehicle(canvas: np.ndarray, name: str, box_xywh, facing_left: bool, rng) -> np.ndarray:
    """Draw one vehicle into ``canvas`` (float32 RGB) and return its pixel mask."""
    import cv2

    x0, y0, bw, bh = box_xywh
    paint = _paint(rng)
    mask = np.zeros(canvas.shape[:2], np.uint8)

    def to_px(u, v):
        u = 1.0 - u if facing_left else u
        return x0 + u * bw, y0 + v * bh

    shift = 4  # sub-pixel precision for cv2 drawing
    for part in _parts(name, rng):
        if part[0] == "poly":
            pts = np.array([to_px(u, v) for u, v in part[1]]) * (1 << shift)
            pts = np.rint(pts).astype(np.int32)
            cv2.fillPoly(canvas, [pts], paint[part[2]].tolist(), lineType=cv2.LINE_AA, shift=shift)
            cv2.fillPoly(mask, [pts], 1, shift=shift)
        else:
            _, u, r = part
            cx, cy = to_px(u, 1.0 - r)
            rad = r * bh
            c = (int(round(cx * 16)), int(round(cy * 16)))
            cv2.circle(canvas, c, int(round(rad * 16)), TYRE, -1, cv2.LINE_AA, shift)
            cv2.circle(mask, c, int(round(rad * 16)), 1, -1, cv2.LINE_8, shift)
            cv2.circle(canvas, c, int(round(rad * 0.45 * 16)), HUB, -1, cv2.LINE_AA, shift)
    return mask


def _random_shape(canvas, rng, cx, cy, size):
    import cv2

    color = rng.uniform(0, 255, size=3).tolist()
    kind = rng.integers(3)
    if kind == 0:
        cv2.circle(canvas, (int(cx), int(cy)), int(size / 2), color, -1, cv2.LINE_AA)
    elif kind == 1:
        ang = np.sort(rng.uniform(0, 2 * np.pi, size=rng.integers(3, 7)))
        rad = size / 2 * rng.uniform(0.5, 1.0, size=ang.size)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(canvas, [pts], color, cv2.LINE_AA)
    else:
        w, h = size * rng.uniform(0.3, 1.0), size * rng.uniform(0.3, 1.0)
        cv2.rectangle(canvas, (int(cx - w / 2), int(cy - h / 2)), (int(cx + w / 2), int(cy + h / 2)), color, -1)


def render(rng, height: int = 224) -> tuple[np.ndarray, int, np.ndarray]:
    """One example: (uint8 RGB image, label, normalised [ymin, xmin, ymax, xmax] box)."""
    image, label, box, _ = render_with_mask(rng, height)
    return image, label, box


def render_with_mask(rng, height: int = 224) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """One example with its exact object mask: (image, label, box, ``(H, W)`` uint8 0/1 mask).

    The mask holds the vehicle's *visible* pixels: the drawn silhouette (polygons and
    wheels, rasterised without anti-aliasing) minus the pixels an occluder in front of
    it repaints. The box is the whole vehicle's, occluded parts included, so the mask
    always lies inside the box. The random numbers drawn are exactly those of the
    first release: images, labels and boxes are unchanged (toy_cars 1.0.0 -> 1.1.0).
    """
    width = int(rng.choice([224, 256, 288, 320]))
    label = int(rng.integers(len(CLASS_NAMES)))
    name = CLASS_NAMES[label]
    canvas = background(rng, height, width).astype(np.float32)
    aspect = ASPECT[name] * rng.uniform(0.85, 1.15)
    area = rng.uniform(0.05, 0.6) * height * width
    bw, bh = np.sqrt(area * aspect), np.sqrt(area / aspect)
    shrink = min(1.0, 0.96 * width / bw, 0.96 * height / bh)
    bw, bh = bw * shrink, bh * shrink
    x0, y0 = rng.uniform(0, width - bw), rng.uniform(0, height - bh)
    for _ in range(rng.integers(0, 4)):  # distractors, mostly away from the vehicle
        size = rng.uniform(0.08, 0.25) * min(height, width)
        _random_shape(canvas, rng, rng.uniform(0, width), rng.uniform(0, height), size)
    mask = draw_vehicle(canvas, name, (x0, y0, bw, bh), bool(rng.random() < 0.5), rng)
    ys, xs = np.nonzero(mask)
    box = np.array([ys.min() / height, xs.min() / width, (ys.max() + 1) / height, (xs.max() + 1) / width], np.float32)
    if rng.random() < 0.3:  # a partial occluder in front of the vehicle
        before = canvas.copy()
        _random_shape(
            canvas, rng, x0 + rng.uniform(0, bw), y0 + rng.uniform(0, bh), rng.uniform(0.2, 0.4) * min(bw, bh) * 2
        )
        mask = mask & ~np.any(canvas != before, axis=-1)  # the occluder's pixels are not the vehicle's
    noise = rng.normal(0, 3, canvas.shape)
    image = np.clip(canvas + noise, 0, 255).round().astype(np.uint8)
    return image, label, np.clip(box, 0.0, 1.0), mask.astype(np.uint8)
