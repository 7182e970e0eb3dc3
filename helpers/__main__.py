"""Command line: ``python -m helpers predict|gradcam|localize|trust|visualize|grade ...``.

Errors a user can cause (a missing file, a bad option, an unwritable ``--out``)
print one line to stderr and exit with status 2, before any slow work starts
where they can be seen in advance. Nothing prints a traceback: Ctrl-C exits with
one line and status 130; TensorFlow's errors (out of memory, internal) and any
other failure print one line and exit with status 1 (``HELPERS_TRACEBACK=1``
shows their traceback, for debugging).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


class UsageError(ValueError):
    """A command-line value that cannot work (the message says why)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _image(source):
    from . import images

    return images.sample(source) if source in images.SAMPLES else images.load(source)


def _top(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 1000, got {text!r}")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _int_in(lo: int, hi: int | None = None):
    """An argparse type: an integer from ``lo`` to ``hi`` (no upper bound when None)."""

    def parse(text: str) -> int:
        value = int(text) if text.strip().lstrip("+-").isdigit() else None
        if value is None or value < lo or (hi is not None and value > hi):
            bound = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {text!r}")
        return value

    return parse


MAX_SIZE = 512  # visualize --size: memory and time grow with its square (128: the default)
MAX_STEPS = 4096  # visualize --steps: time grows linearly (256: the default)
DATASETS = ("toy_cars", "stanford_cars")


def _class(text: str) -> int:
    """``--class``: an ImageNet class name or index; a refusal names the option."""
    from . import models

    try:
        return models.class_index(text)
    except ValueError as exc:
        raise UsageError(f"--class {text!r}: {exc}") from None


def check_out(out: Path) -> Path:
    """Fail now, not after the work, if ``out`` cannot be written; create nothing.

    ``out`` must end in .png/.jpg, must not be a folder, and its nearest existing
    parent must be a writable folder (missing folders are made when saving).
    """
    out = Path(out).expanduser()
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'heatmap.png'}")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UsageError(f"--out {out}: the file name must end in .png or .jpg")
    if out.exists() and not os.access(out, os.W_OK):
        raise UsageError(f"--out {out} exists and is not writable")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot write in {parent} (permission denied)")
    return out


def predict(args) -> int:
    from . import models

    image = _image(args.source)
    model = models.load(args.model)
    x = models.preprocess(args.model, image)
    top = models.decode(model.predict(x, verbose=0), top=args.top)[0]
    if args.json:
        print(json.dumps([{"index": i, "name": n, "probability": round(p, 4)} for i, n, p in top]))
    else:
        for i, n, p in top:
            print(f"{p:7.2%}  {n} ({i})")
    return 0


def gradcam(args) -> int:
    from . import models

    # everything that can be checked is checked before TensorFlow and the model are loaded
    out = check_out(args.out)
    options = {}
    if args.max_channels is not None:
        if args.method != "scorecam":
            raise UsageError("--max-channels applies to --method scorecam only")
        options["max_channels"] = args.max_channels
    cls = None if args.class_ is None else _class(args.class_)
    image = _image(args.source)
    from . import cam, viz  # imports TensorFlow

    if args.method not in cam.METHODS:
        raise UsageError(f"--method {args.method!r} is not one of {', '.join(cam.METHODS)}")
    model = models.load(args.model)
    x = models.preprocess(args.model, image)
    top = models.decode(model.predict(x, verbose=0), top=3)[0]
    layer = args.layer
    if layer is None and args.method != "cam":
        layer = models.spec(args.model).last_conv_layer
    heat = cam.METHODS[args.method](model, x, class_index=cls, layer=layer, **options)[0]
    path = viz.save(viz.overlay(image, heat), out.name, directory=out.parent)
    for i, n, p in top:
        print(f"{p:7.2%}  {n} ({i})")
    target = models.imagenet_class_names()[cls] if cls is not None else top[0][1]
    print(f"{args.method} heatmap for {target!r} written to {path}")
    return 0


def visualize(args) -> int:
    """Feature visualisation (Olah et al. 2017) of a channel or an ImageNet class, written as an image."""
    from . import models

    out = check_out(args.out)
    if args.class_ is not None and args.layer is not None:
        raise UsageError("--layer goes with --channel; a --class image needs no layer")
    if args.channel is not None and args.layer is None:
        raise UsageError("--channel needs --layer (e.g. --layer block6a_expand_bn)")
    cls = None if args.class_ is None else _class(args.class_)
    from . import featureviz, viz  # imports TensorFlow

    model = models.load(args.model)
    objective = featureviz.class_logit(cls) if cls is not None else featureviz.channel(args.layer, args.channel)
    vis = featureviz.visualize(
        model,
        objective,
        steps=args.steps,
        size=args.size,
        seed=args.seed,
        param="pixel" if args.plain else "fourier",
        transforms=not args.plain,
        progress=sys.stderr.isatty(),
    )
    path = viz.save(vis.images[0], out.name, directory=out.parent)
    what = (
        f"class {models.imagenet_class_names()[cls]!r}" if cls is not None else f"{args.layer} channel {args.channel}"
    )
    line = f"{what}: objective {vis.values[0]:.3f} after {args.steps} steps"
    if cls is not None:
        rate = featureviz.recognition_rate(model, vis.images, [cls], views=20, seed=args.seed)[0]
        line += f"; recognised in {rate:.0%} of 20 random views"
    print(line)
    print(f"written to {path}")
    return 0


def localize(args) -> int:
    if args.dataset.split("/")[0].split(":")[0] not in DATASETS:
        raise UsageError(f"--dataset {args.dataset!r} is not one of toy_cars, toy_cars/small, stanford_cars")
    if args.manual_dir is not None and not Path(args.manual_dir).expanduser().is_dir():
        raise UsageError(f"--manual-dir {args.manual_dir} is not a folder (it holds the Stanford Cars files)")
    from . import datasets, localization, training

    model, _ = training.train_cam_model(dataset=args.dataset, backbone=args.backbone, manual_dir=args.manual_dir)
    (val, test), _ = datasets.load(args.dataset, split=("validation", "test"), manual_dir=args.manual_dir)
    size = int(model.input_shape[1])
    result = localization.evaluate(model, val, test, args.backbone, size, progress=not args.json)
    table = localization.report(result["methods"])  # the paper's figures and the deployable ones
    print(f"test accuracy {result['accuracy']:.3f} ({args.dataset}, {args.backbone})")
    print(localization.format_table(table))
    out = {"methods": table, "accuracy": result["accuracy"]}
    if "mask" in test.element_spec and args.trust_subset:  # toy_cars >= 1.1.0: exact masks
        subset = localization.masked_subset(test, args.backbone, size, args.trust_subset)
        methods = localization.trust_methods(model)
        out["trust"] = localization.trust_scores(model, subset, methods, faithfulness_subset=args.faithfulness_subset)
        out["trust_subset"] = len(subset["images"])  # first N test images: box/mask metrics
        out["faithfulness_subset"] = min(args.faithfulness_subset, out["trust_subset"])  # deletion/insertion
        print(f"on the first {out['trust_subset']} test images (deletion/insertion: {out['faithfulness_subset']}):")
        for name, r in out["trust"].items():
            print(f"{name:22s} " + "  ".join(f"{k} {v:.3f}" for k, v in r.items()))
    if args.json:
        print(json.dumps(out))
    return 0


def trust(args) -> int:
    """Cascading randomisation (Adebayo et al. 2018) on one photo: method x stage -> Spearman correlation."""
    from . import models

    image = _image(args.source)
    from . import attribution, cam, faithfulness  # imports TensorFlow

    model = models.load(args.model)
    x = models.preprocess(args.model, image)
    methods = {
        "gradcam": lambda m, x, c: cam.grad_cam(m, x, c),
        "saliency": attribution.saliency,
        "guided_backprop": attribution.guided_backprop,
        "guided_gradcam": attribution.guided_grad_cam,
    }
    rows = {}
    for name, fn in methods.items():
        s = faithfulness.cascading_randomization(model, x, fn, seed=args.seed)
        rows[name] = {stage: round(float(r), 4) for stage, r in zip(s.stages, s.spearman[:, 0])}
    stages = list(next(iter(rows.values())))
    if args.json:
        print(json.dumps({"source": str(args.source), "stages": stages, "spearman": rows}))
    else:
        print("Spearman rank correlation with the original map, weights randomised from the top down to:")
        print(f"{'stage':10s} " + " ".join(f"{n:>15s}" for n in rows))
        for st in stages:
            print(f"{st:10s} " + " ".join(f"{rows[n][st]:15.2f}" for n in rows))
    return 0


def _parameter(text: str) -> tuple[str, object]:
    import ast

    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name.strip(), value  # a bare word is a string: --param DATASET=toy_cars/tiny


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"expected seconds from 1 to 86400, got {text!r}")
    return value


def grade(args) -> int:
    from . import grading

    try:
        rows = grading.grade(
            args.submissions, args.out, timeout=args.timeout, cell_timeout=args.cell_timeout,
            memory_mb=args.memory, jobs=args.jobs, force=args.force, parameters=dict(args.param), keep=args.keep,
        )  # fmt: skip
    except KeyboardInterrupt:
        print(f"interrupted: the rows graded so far are in {args.out / 'grades.csv'}", file=sys.stderr)
        return 130
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"{len(rows)} submissions, {ok} ok; mean {sum(r['total'] for r in rows) / len(rows):.2f} points")
    return 0


def main(argv=None) -> int:
    from . import models

    parser = _Parser(prog="python -m helpers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="top-K ImageNet classes of a photo")
    p.add_argument("source", help="sample name (chelsea, coffee, ...), file path or URL")
    p.add_argument("--model", default="efficientnet_lite0", choices=sorted(models.SPECS))
    p.add_argument("--top", type=_top, default=3, help="how many classes to print (1 to 1000)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=predict)
    g = sub.add_parser("gradcam", help="write a heatmap overlay of a photo")
    g.add_argument("source")
    g.add_argument("--model", default="efficientnet_lite0", choices=sorted(models.SPECS))
    g.add_argument("--method", default="gradcam", help="a name in helpers.cam.METHODS (default: gradcam)")
    g.add_argument(
        "--max-channels", type=_positive, default=None, help="scorecam: score only this many channels (faster)"
    )
    g.add_argument("--layer", default=None)
    g.add_argument(
        "--class", dest="class_", metavar="CLASS", default=None, help="ImageNet class name or index (default: top-1)"
    )
    g.add_argument("--out", type=Path, required=True)
    g.set_defaults(func=gradcam)
    loc = sub.add_parser("localize", help="train (or reuse) a CAM model and measure its boxes")
    loc.add_argument("--dataset", default="toy_cars", help="toy_cars, toy_cars/small or stanford_cars")
    loc.add_argument("--backbone", default="efficientnet_lite0", choices=["efficientnet_lite0", "resnet50"])
    loc.add_argument("--manual-dir", default=None, help="folder with the Stanford Cars files")
    loc.add_argument("--json", action="store_true", help="end with one JSON line")
    loc.add_argument(
        "--trust-subset",
        type=_int_in(0),
        default=64,
        help="test images for PxAP, pointing game and the attributions (0: skip)",
    )
    loc.add_argument(
        "--faithfulness-subset", type=_int_in(0), default=16, help="of those, images for deletion/insertion (>= 0)"
    )
    loc.set_defaults(func=localize)
    t = sub.add_parser("trust", help="sanity check of heatmaps on a photo: randomise the weights, compare the maps")
    t.add_argument("source", help="sample name (chelsea, coffee, ...), file path or URL")
    t.add_argument("--model", default="efficientnet_lite0", choices=sorted(models.SPECS))
    t.add_argument("--seed", type=_int_in(0), default=0, help="seeds the random weights (>= 0)")
    t.add_argument("--json", action="store_true", help="print JSON")
    t.set_defaults(func=trust)
    v = sub.add_parser("visualize", help="optimise an image that excites a channel or a class (Olah et al. 2017)")
    what = v.add_mutually_exclusive_group(required=True)
    what.add_argument("--channel", type=_int_in(0), default=None, help="channel index at --layer (>= 0)")
    what.add_argument("--class", dest="class_", metavar="CLASS", default=None, help="ImageNet class name or index")
    v.add_argument("--layer", default=None, help="layer of --channel (e.g. block6a_expand_bn)")
    v.add_argument("--model", default="efficientnet_lite0", choices=sorted(models.SPECS))
    v.add_argument(
        "--steps",
        type=_int_in(1, MAX_STEPS),
        default=256,
        help=f"optimisation steps, 1 to {MAX_STEPS} (time grows linearly; default 256)",
    )
    v.add_argument(
        "--size",
        type=_int_in(8, MAX_SIZE),
        default=128,
        help=f"image side in pixels, 8 to {MAX_SIZE} (memory and time grow with its square; default 128)",
    )
    v.add_argument("--seed", type=_int_in(0), default=0, help="seeds the start image (>= 0)")
    v.add_argument("--plain", action="store_true", help="raw pixels, no transformations (the unregularised method)")
    v.add_argument("--out", type=Path, required=True)
    v.set_defaults(func=visualize)
    gr = sub.add_parser(
        "grade",
        help="grade a folder of returned project notebooks (06): grades.csv, feedback pages, summary.png",
        description="Grade every *.ipynb under SUBMISSIONS (one student per file, named by its stem) on hidden "
        "cases, each notebook in its own sandboxed process (bubblewrap where installed; the first lines say what "
        "isolation is in force). Writes OUT/grades.csv, OUT/feedback/<student>.html and OUT/summary.png.",
    )
    gr.add_argument("submissions", type=Path, help="folder of returned notebooks")
    gr.add_argument("--out", type=Path, required=True, help="folder for the results (must not contain SUBMISSIONS)")
    gr.add_argument("--timeout", type=_seconds, default=300, help="seconds per submission (default 300)")
    gr.add_argument("--cell-timeout", type=_seconds, default=120, help="seconds per code cell (default 120)")
    gr.add_argument("--memory", type=_positive, default=4096, help="MB of memory per submission (default 4096)")
    gr.add_argument("--jobs", type=_positive, default=1, help="submissions graded at once (default 1)")
    gr.add_argument("--force", action="store_true", help="re-grade submissions that did not change")
    gr.add_argument(
        "--param", type=_parameter, action="append", default=[], metavar="NAME=VALUE",
        help="override a notebook parameter, e.g. --param DATASET=toy_cars/tiny (see helpers.grading.PARAMETERS)",
    )  # fmt: skip
    gr.add_argument("--keep", action="store_true", help="keep each submission's working folder in OUT/.work")
    gr.set_defaults(func=grade)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    return run_command(args.func, args)


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[: limit - 1] + "…"


def run_command(func, args) -> int:
    """``func(args)`` with every failure turned into one line on stderr and an exit status.

    2: a usage error (a bad value, a missing file, a disk that refuses); 130: Ctrl-C;
    1: TensorFlow's errors (out of memory, internal) and anything else.
    ``HELPERS_TRACEBACK=1`` re-raises Ctrl-C and the unexpected errors instead, for debugging.
    """
    from .images import ImageLoadError
    from .models import WeightsUnavailableError

    debug = os.environ.get("HELPERS_TRACEBACK", "") not in ("", "0")
    try:
        return func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted (Ctrl-C): stopped; files already written are complete", file=sys.stderr)
        return 130
    except (ImageLoadError, WeightsUnavailableError, ValueError, OSError) as exc:
        # OSError covers MissingFilesError and a disk that fills or refuses mid-way
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the command line prints one line, never a traceback
        if debug:
            raise
        name = type(exc).__name__
        if type(exc).__module__.startswith("tensorflow"):  # tf.errors.*: ResourceExhaustedError, InternalError, ...
            hint = " (out of memory: try a smaller --size or batch)" if name == "ResourceExhaustedError" else ""
            print(f"error: TensorFlow {name}{hint}: {_first_line(exc)}", file=sys.stderr)
        else:
            print(f"error: {name}: {_first_line(exc)} (HELPERS_TRACEBACK=1 shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
