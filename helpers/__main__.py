"""Command line: ``python -m helpers predict|gradcam ...``."""

from __future__ import annotations

import argparse
import json
import sys


def _image(source):
    from . import images

    return images.sample(source) if source in images.SAMPLES else images.load(source)


def predict(args) -> int:
    from . import models

    model = models.load(args.model)
    x = models.preprocess(args.model, _image(args.source))
    top = models.decode(model.predict(x, verbose=0), top=args.top)[0]
    if args.json:
        print(json.dumps([{"index": i, "name": n, "probability": round(p, 4)} for i, n, p in top]))
    else:
        for i, n, p in top:
            print(f"{p:7.2%}  {n} ({i})")
    return 0


def gradcam(args) -> int:
    from . import cam, models, viz

    model = models.load(args.model)
    image = _image(args.source)
    x = models.preprocess(args.model, image)
    top = models.decode(model.predict(x, verbose=0), top=3)[0]
    cls = None if args.class_ is None else models.class_index(args.class_)
    layer = args.layer
    if layer is None and args.method != "cam":
        layer = models.spec(args.model).last_conv_layer
    heat = cam.METHODS[args.method](model, x, class_index=cls, layer=layer)[0]
    path = viz.save(viz.overlay(image, heat), args.out.name, directory=args.out.parent)
    for i, n, p in top:
        print(f"{p:7.2%}  {n} ({i})")
    target = models.imagenet_class_names()[cls] if cls is not None else top[0][1]
    print(f"{args.method} heatmap for {target!r} written to {path}")
    return 0


def localize(args) -> int:
    from . import datasets, localization, training

    model, _ = training.train_cam_model(dataset=args.dataset, backbone=args.backbone, manual_dir=args.manual_dir)
    (val, test), _ = datasets.load(args.dataset, split=("validation", "test"), manual_dir=args.manual_dir)
    size = int(model.input_shape[1])
    result = localization.evaluate(model, val, test, args.backbone, size, progress=not args.json)
    table = {
        k: {m: v[m] for m in ("max_box_acc", "max_box_acc_v2", "mean_iou", "tau")} for k, v in result["methods"].items()
    }
    print(f"test accuracy {result['accuracy']:.3f} ({args.dataset}, {args.backbone})")
    print(localization.format_table(table))
    if args.json:
        print(json.dumps({"methods": table, "accuracy": result["accuracy"]}))
    return 0


def main(argv=None) -> int:
    from pathlib import Path

    from . import models

    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="top-K ImageNet classes of a photo")
    p.add_argument("source", help="sample name (chelsea, coffee, ...), file path or URL")
    p.add_argument("--model", default="efficientnet_lite0", choices=sorted(models.SPECS))
    p.add_argument("--top", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=predict)
    g = sub.add_parser("gradcam", help="write a heatmap overlay of a photo")
    g.add_argument("source")
    g.add_argument("--model", default="efficientnet_lite0", choices=sorted(models.SPECS))
    g.add_argument("--method", default="gradcam", choices=["cam", "gradcam", "gradcam++", "scorecam", "layercam"])
    g.add_argument("--layer", default=None)
    g.add_argument("--class", dest="class_", default=None, help="class name or index (default: top-1)")
    g.add_argument("--out", type=Path, required=True)
    g.set_defaults(func=gradcam)
    loc = sub.add_parser("localize", help="train (or reuse) a CAM model and measure its boxes")
    loc.add_argument("--dataset", default="toy_cars", help="toy_cars, toy_cars/small or stanford_cars")
    loc.add_argument("--backbone", default="efficientnet_lite0", choices=["efficientnet_lite0", "resnet50"])
    loc.add_argument("--manual-dir", default=None, help="folder with the Stanford Cars files")
    loc.add_argument("--json", action="store_true", help="end with one JSON line")
    loc.set_defaults(func=localize)
    args = parser.parse_args(argv)
    from .datasets import MissingFilesError
    from .images import ImageLoadError
    from .models import WeightsUnavailableError

    try:
        return args.func(args)
    except (ImageLoadError, WeightsUnavailableError, MissingFilesError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
