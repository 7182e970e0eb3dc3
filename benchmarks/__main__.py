"""``python -m benchmarks [--smoke]``: times and ratios of the course's hot paths.

Every figure is the per-image (or per-filter) time of one call after a warm-up,
minimum and median over repeats, all measured in this one run, so the ratios
compare like with like. Targets (README) are ratios; absolute times are context.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from helpers import cam, filters, images, localization, localization_metrics, models, training
from helpers._quiet import import_tensorflow
from helpers.graph import find_layer, tap_model

tf = import_tensorflow()

ROOT = Path(__file__).resolve().parent.parent


def timeit(fn, repeats: int, per: int, warmup: bool = True) -> dict:
    """Warm up once, then time ``repeats`` calls; seconds per item (min and median)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) / per)
    return {"min": min(times), "median": statistics.median(times)}


def batch_of(n: int) -> np.ndarray:
    photos = [images.sample(s) for s in ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "grace_hopper")]
    x = models.preprocess("efficientnet_lite0", [images.load(p, size=224) for p in photos])
    return np.concatenate([x] * (n // len(x) + 1))[:n]


# ------------------------------------------------------------------ references in the seeds' style
def reference_grad_cam(model, x, layer="top_activation"):
    """The seed lesson's ``generate_grad_cam``, one image at a time.

    As written there: a new model per call, and a Python loop over channels that
    adds ``w * output[:, :, k]`` with ``output`` still a TensorFlow tensor.
    """
    out = []
    for img in x:
        grad_model = tf.keras.Model(model.input, [model.get_layer(layer).output, model.get_layer("logits").output])
        with tf.GradientTape() as tape:
            conv_output, pred = grad_model(img[None])
            loss = pred[:, int(np.argmax(pred[0]))]
            output = conv_output[0]
        grad_val = tape.gradient(loss, conv_output)[0]
        weights = np.mean(grad_val, axis=(0, 1))
        grad_cam_image = np.zeros(dtype=np.float32, shape=output.shape[0:2])
        for k, w in enumerate(weights):
            grad_cam_image += w * output[:, :, k]
        grad_cam_image = np.maximum(grad_cam_image, 0)
        out.append(grad_cam_image / (grad_cam_image.max() + 1e-7))
    return out


def reference_cam(model, x, layer="top_activation"):
    """The seed lesson's ``generate_cam``, one image at a time (same style as above)."""
    out = []
    for img in x:
        cam_model = tf.keras.Model(model.input, [model.get_layer(layer).output, model.output])
        conv_outputs, predictions = cam_model(img[None])
        conv_outputs = conv_outputs[0, :, :, :]
        class_weights = model.get_layer("logits").get_weights()[0]
        class_idx = int(np.argmax(predictions[0]))
        cam_image = np.zeros(dtype=np.float32, shape=conv_outputs.shape[0:2])
        for i, w in enumerate(class_weights[:, class_idx]):
            cam_image += w * conv_outputs[:, :, i]
        cam_image = np.maximum(cam_image, 0)
        out.append(cam_image / (cam_image.max() + 1e-7))
    return out


# ------------------------------------------------------------------ the benchmark
def run(smoke: bool) -> dict:
    big, reps = (2, 1) if smoke else (32, 5)
    model = models.load("efficientnet_lite0")
    x1, xb = batch_of(1), batch_of(big)
    fwd = tf.function(lambda x: model(x, training=False))
    taps_in = tf.function(lambda x: _input_grad(model, x))
    r: dict = {}
    r["forward, batch 1"] = timeit(lambda: fwd(x1).numpy(), reps, 1)
    r[f"forward, batch {big}"] = timeit(lambda: fwd(xb).numpy(), reps, big)
    r[f"forward+backward to input, batch {big}"] = timeit(lambda: taps_in(xb).numpy(), reps, big)
    methods = {
        "cam": cam.cam,
        "grad_cam": cam.grad_cam,
        "grad_cam_plus_plus": cam.grad_cam_plus_plus,
        "layer_cam": cam.layer_cam,
        "score_cam (64 channels)": lambda m, x: cam.score_cam(m, x, max_channels=8 if smoke else 64),
    }
    for name, fn in methods.items():
        slow = name.startswith("score_cam")  # B x 64 masked forward passes: once is enough (compiled at batch 1)
        for n, x in ((1, x1), (big, xb)):
            count = 1 if slow and n > 1 else (reps if n > 1 else reps * 2)
            r[f"{name}, batch {n}"] = timeit(lambda fn=fn, x=x: fn(model, x), count, n, warmup=not (slow and n > 1))
    nref = 1 if smoke else 4
    r["reference grad_cam (loop), per image"] = timeit(
        lambda: reference_grad_cam(model, xb[:nref]), 1 if smoke else 2, nref
    )
    r["reference cam (loop), per image"] = timeit(lambda: reference_cam(model, xb[:nref]), 1 if smoke else 2, nref)

    # filter patterns: batched vs one filter at a time, and the forward+backward floor
    layer, size, steps = "block4a_expand_conv", (64 if smoke else 200), (2 if smoke else 30)
    nf, nsingle = (4, 2) if smoke else (64, 8)
    kw = dict(steps=steps, size=size, progress=False)
    r[f"filter_patterns, {nf} filters batched, per filter"] = timeit(
        lambda: filters.filter_patterns(model, layer, range(nf), **kw), 1, nf
    )
    r["filter_patterns, one filter at a time, per filter"] = timeit(
        lambda: [filters.filter_patterns(model, layer, [f], **kw) for f in range(nsingle)], 1, nsingle
    )
    trunk = tap_model(model, [find_layer(model, layer)], logits=False, input_shape=(size, size, 3))
    probe = tf.function(lambda z: _input_grad_trunk(trunk, z))
    z = tf.random.uniform((nf, size, size, 3))
    r[f"{steps} forward+backward passes to {layer}, per filter"] = timeit(
        lambda: [probe(z).numpy() for _ in range(steps)], 1, nf
    )
    featureviz_bench(model, smoke, r)

    # localisation evaluation throughput on the toy_cars test split (weights do not change the speed)
    from helpers import datasets

    name = "toy_cars/tiny" if smoke else "toy_cars"
    (test_ds,), _ = datasets.load(name, split=("test",))
    cam_model = training.build_cam_model(feature_layer="block6a_expand_activation")
    pipe = localization.eval_pipeline(test_ds, "efficientnet_lite0", 224, batch_size=big)
    n_test = sum(int(b[0].shape[0]) for b in pipe)  # also fills the cache: decoding is not timed
    cam_fwd = tf.function(lambda x: cam_model(x, training=False))
    r["CAM-model forward over the test split, per image"] = timeit(
        lambda: [cam_fwd(b[0]).numpy() for b in pipe], 1 if smoke else 3, n_test
    )
    one = {"CAM": lambda m, x, c: cam.cam(m, x, c)}
    taus = {"CAM": np.array([0.3, 0.5])}  # the test split is scored at the validation-chosen taus only
    r["localisation evaluation (CAM), per image"] = timeit(
        lambda: localization.collect(cam_model, pipe, one, taus, progress=False), 1 if smoke else 3, n_test
    )
    trust(model, smoke, r)
    boxes_bench(smoke, r)
    return {"smoke": smoke, "batch": big, "results": r, "notebooks": _notebook_times()}


def featureviz_bench(model, smoke: bool, r: dict) -> dict:
    """Notebook 02's hot paths against their floors (``helpers.featureviz``).

    ``visualize`` (transformations, Fourier parametrisation, Adam included) vs ``steps`` forward+backward
    passes of the same batch at the size the network sees; ``dataset_examples`` vs one forward pass of the
    whole model over the images searched (and, for context, the forward pass to the layer alone).
    """
    from helpers import featureviz

    layer, size, steps, n = "block6a_expand_bn", (48 if smoke else 128), (2 if smoke else 16), (2 if smoke else 8)
    reps = 1 if smoke else 3
    obj = featureviz.channel(layer, list(range(n)))
    r[f"featureviz.visualize ({n} channels, {steps} steps), per channel"] = timeit(
        lambda: featureviz.visualize(model, obj, steps=steps, size=size, progress=False), reps, n
    )
    trunk = tap_model(model, [find_layer(model, layer)], logits=False, input_shape=(None, None, 3))
    probe = tf.function(lambda z: _input_grad_trunk(trunk, z))
    z = tf.random.uniform((n, size + 2 * featureviz.PAD, size + 2 * featureviz.PAD, 3))
    r[f"{steps} forward+backward passes to {layer} (transformed size), per channel"] = timeit(
        lambda: [probe(z).numpy() for _ in range(steps)], reps, n
    )
    m = 4 if smoke else 64
    photos = np.stack([images.load(images.sample(s), size=224) for s in images.SAMPLES])
    pool = np.concatenate([photos] * (m // len(photos) + 1))[:m]
    r["dataset_examples (64 channels), per image searched"] = timeit(
        lambda: featureviz.dataset_examples(model, layer, range(64), pool), reps, m
    )
    fwd = tf.function(lambda x: model(x, training=False))
    trunk_fwd = tf.function(lambda x: trunk(x, training=False))
    xs = [tf.constant(pool[i : i + 32].astype(np.float32) / 127.5 - 1) for i in range(0, m, 32)]
    r["forward over the images searched, per image"] = timeit(lambda: [fwd(x).numpy() for x in xs], reps, m)
    r[f"forward to {layer} over the images searched, per image"] = timeit(
        lambda: [trunk_fwd(x).numpy() for x in xs], reps, m
    )
    return r


def interleaved(cases: dict, repeats: int) -> dict:
    """Like :func:`timeit` for several calls, run in turn within each repeat (fair under a varying load)."""
    for fn, _ in cases.values():
        fn()
    times: dict = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (fn, per) in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) / per)
    return {name: {"min": min(t), "median": statistics.median(t)} for name, t in times.items()}


def trust(model, smoke: bool, r: dict) -> dict:
    """Notebook 07's hot paths against their floors, all at batch 64 (``helpers.attribution``/``faithfulness``).

    Deletion+insertion over N images x (S + 1) fractions vs the forward pass over as many images;
    Integrated Gradients with S steps vs N x S forward+backward passes; one stage of the cascading
    randomisation (weights re-drawn in place, Grad-CAM, Spearman, SSIM) vs one Grad-CAM batch.
    """
    from helpers import attribution, faithfulness

    n, steps, ig_steps, bs = (2, 4, 4, 64) if smoke else (4, 31, 32, 64)
    x = batch_of(n)
    sal = cam.grad_cam(model, x)
    fwd = tf.function(lambda z: model(z, training=False))
    grad = tf.function(lambda z: _input_grad(model, z))
    chunk = tf.constant(batch_of(bs))

    def floor(fn, count):
        for i in range(0, count, bs):
            fn(chunk[: min(bs, count - i)]).numpy()

    evals = 2 * n * (steps + 1)
    stages = faithfulness.layer_stages(model)
    stages = [[lay.name for lay in layers] for _, layers in (stages[:3] if smoke else stages)]
    cases = {  # name: (call, items per call); each pair is timed alternately, so both see the same machine load
        "deletion+insertion (RISE), per perturbed image": (
            lambda: faithfulness.causal_curves(model, x, sal, steps=steps, batch_size=bs),
            evals,
        ),
        "forward at batch 64, per image": (lambda: floor(fwd, evals), evals),
        "integrated_gradients, per (image, step)": (
            lambda: attribution.integrated_gradients(model, x, steps=ig_steps, batch_size=bs),
            n * ig_steps,
        ),
        "forward+backward to input at batch 64, per image": (lambda: floor(grad, n * ig_steps), n * ig_steps),
        "randomisation cascade (grad_cam), per stage": (
            lambda: faithfulness.cascading_randomization(model, x, cam.grad_cam, stages=stages),
            len(stages),
        ),
        "grad_cam heatmap batch (same images), per batch": (
            lambda: [cam.grad_cam(model, x) for _ in stages],
            len(stages),
        ),
    }
    r.update(interleaved(cases, 1 if smoke else 3))
    return r


def reference_image_ious(scoremap, gt_px, thresholds):
    """The box loop before ``level_boxes``: one ``_pixel_boxes_above_level`` per level, Python calls per contour.

    (``boundingRect`` and ``contourArea`` per contour, as wsolevaluation's
    ``compute_bboxes_from_scoremaps`` does; cropped and once per distinct level, as before.)
    """
    image = localization_metrics._quantize(scoremap)
    uniq, inverse = np.unique(localization_metrics._levels(image, thresholds), return_inverse=True)
    found = [
        localization_metrics._pixel_boxes_above_level(image, k, e)
        for k, e in zip(uniq, localization_metrics._extent(image, uniq))
    ]
    counts = np.array([len(b) for b, _ in found])
    ious = localization_metrics.pixel_iou(np.concatenate([b for b, _ in found]), gt_px)[:, 0]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    largest = ious[starts + np.array([k for _, k in found])]
    return largest[inverse], np.maximum.reduceat(ious, starts)[inverse]


def contour_floor(scoremap, thresholds):
    """The C calls the box loop cannot avoid: ``threshold`` + ``findContours`` once per distinct region."""
    import cv2

    image = localization_metrics._quantize(scoremap)
    levels = np.unique(localization_metrics._mask_keys(image, localization_metrics._levels(image, thresholds)))
    for level, (y0, y1, x0, x1) in zip(levels, localization_metrics._extent(image, levels)):
        if y1 > y0 and x1 > x0:
            binary = cv2.threshold(image[y0:y1, x0:x1], int(level), 255, cv2.THRESH_BINARY)[1]
            cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)


def boxes_bench(smoke: bool, r: dict) -> dict:
    """MaxBoxAcc's boxes on the 0.001 tau grid, per 224 x 224 map, one thread (``helpers.localization_metrics``).

    The one-pass :func:`helpers.localization_metrics.level_boxes` (through ``_image_ious``) vs the loop it
    replaced (:func:`reference_image_ious`) vs the ``threshold`` + ``findContours`` calls alone, on
    CAM-like maps (7 x 7 grids upsampled bicubically) and on noise (a pixel attribution's many contours).
    """
    rng = np.random.default_rng(0)
    sets = {
        "CAM-like maps": localization_metrics.normalize_scoremaps(rng.random((2 if smoke else 8, 7, 7)) ** 3, 224),
        "noisy maps": localization_metrics.normalize_scoremaps(rng.random((1 if smoke else 2, 56, 56)), 224),
    }
    gt = np.array([40, 40, 150, 150])
    t = localization_metrics.THRESHOLDS
    for name, maps in sets.items():
        n = len(maps)
        cases = {
            f"box IoUs, reference loop, {name}, per map": (
                lambda maps=maps: [reference_image_ious(m, gt, t) for m in maps],
                n,
            ),
            f"box IoUs, one pass (level_boxes), {name}, per map": (
                lambda maps=maps: [localization_metrics._image_ious(m, gt, t) for m in maps],
                n,
            ),
            f"threshold + findContours per region, {name}, per map": (
                lambda maps=maps: [contour_floor(m, t) for m in maps],
                n,
            ),
        }
        r.update(interleaved(cases, 1 if smoke else 5))
    return r


def _input_grad(model, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = tf.reduce_sum(model(x, training=False))
    return tape.gradient(s, x)


def _input_grad_trunk(trunk, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        s = tf.reduce_sum(trunk(x, training=False))
    return tape.gradient(s, x)


def _notebook_times() -> dict:
    path = ROOT / "build" / "course_times.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def ratios(res: dict) -> list[tuple[str, float, str]]:
    r, b = res["results"], res["batch"]
    f = r[f"forward, batch {b}"]["min"]
    rows = []
    for name in ("cam", "grad_cam", "grad_cam_plus_plus", "layer_cam", "score_cam (64 channels)"):
        target = "<= 1.3" if name in ("cam", "grad_cam") else "(context)"
        rows.append((f"{name} / forward (batch {b})", r[f"{name}, batch {b}"]["min"] / f, target))
    rows.append(
        (
            "reference grad_cam / grad_cam",
            r["reference grad_cam (loop), per image"]["min"] / r[f"grad_cam, batch {b}"]["min"],
            ">= 30",
        )
    )
    rows.append(
        ("reference cam / cam", r["reference cam (loop), per image"]["min"] / r[f"cam, batch {b}"]["min"], ">= 30")
    )
    batched = next(v for k, v in r.items() if k.startswith("filter_patterns") and "batched" in k)["min"]
    single = r["filter_patterns, one filter at a time, per filter"]["min"]
    floor = next(v for k, v in r.items() if "forward+backward passes" in k)["min"]
    rows.append(("filter patterns: one at a time / batched", single / batched, "(context: ~1 on 2 CPU cores)"))
    rows.append(("filter patterns: batched / fwd+bwd floor", batched / floor, "<= 1.5"))
    fv_run = next((v for k, v in r.items() if k.startswith("featureviz.visualize")), None)
    if fv_run is not None:  # helpers.featureviz (notebook 02)
        fv_floor = next(v for k, v in r.items() if "(transformed size)" in k)["min"]
        rows.append(("featureviz per channel / steps x fwd+bwd floor", fv_run["min"] / fv_floor, "<= 1.2"))
        dx = r["dataset_examples (64 channels), per image searched"]["min"]
        rows.append(
            ("dataset_examples / forward pass", dx / r["forward over the images searched, per image"]["min"], "<= 1.2")
        )
        to_layer = [v for k, v in r.items() if k.startswith("forward to ") and "images searched" in k][0]["min"]
        rows.append(("dataset_examples / forward to its layer", dx / to_layer, "(context)"))
    ev = r["localisation evaluation (CAM), per image"]["min"]
    fw = r["CAM-model forward over the test split, per image"]["min"]
    rows.append(("evaluation throughput / forward throughput", fw / ev, ">= 0.7"))
    for name in ("CAM-like maps", "noisy maps"):  # helpers.localization_metrics: MaxBoxAcc's boxes
        one_pass = r.get(f"box IoUs, one pass (level_boxes), {name}, per map")
        if one_pass is None:
            continue
        loop = r[f"box IoUs, reference loop, {name}, per map"]["min"]
        floor = r[f"threshold + findContours per region, {name}, per map"]["min"]
        rows.append((f"box IoUs, {name}: reference loop / one pass", loop / one_pass["min"], "(context: >= 1)"))
        rows.append((f"box IoUs, {name}: one pass / findContours floor", one_pass["min"] / floor, "<= 1.5"))
    if "deletion+insertion (RISE), per perturbed image" in r:  # helpers.attribution / helpers.faithfulness
        rows.append(
            (
                "deletion+insertion / forward (batch 64)",
                r["deletion+insertion (RISE), per perturbed image"]["min"] / r["forward at batch 64, per image"]["min"],
                "<= 1.3",
            )
        )
        rows.append(
            (
                "integrated_gradients / forward+backward (batch 64)",
                r["integrated_gradients, per (image, step)"]["min"]
                / r["forward+backward to input at batch 64, per image"]["min"],
                "<= 1.3",
            )
        )
        rows.append(
            (
                "randomisation cascade per stage / grad_cam batch",
                r["randomisation cascade (grad_cam), per stage"]["min"]
                / r["grad_cam heatmap batch (same images), per batch"]["min"],
                "<= 1.5",
            )
        )
    return rows


def markdown(res: dict) -> str:
    lines = [f"Machine: {machine()}", "", "| measurement | min ms | median ms |", "|---|---:|---:|"]
    for name, t in res["results"].items():
        lines.append(f"| {name} | {t['min'] * 1e3:.1f} | {t['median'] * 1e3:.1f} |")
    lines += ["", "| ratio | value | target |", "|---|---:|---|"]
    for name, v, target in ratios(res):
        lines.append(f"| {name} | {v:.2f} | {target} |")
    if res["notebooks"]:
        lines += ["", "| notebook (`make course`) | seconds |", "|---|---:|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in res["notebooks"].items()]
    return "\n".join(lines)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the benchmark still runs")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks.json")
    args = p.parse_args(argv)
    res = run(args.smoke)
    res["machine"] = machine()
    res["ratios"] = {name: v for name, v, _ in ratios(res)}
    print(markdown(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
