"""How large is JPEG q75 noise next to an FGSM step of eps = 0.01?

The offline CIFAR-10 copy (``../shared/data``) holds the images as baseline JPEG, quality 75;
the official pixels are not on this machine, so the copy's own error cannot be measured.
This script measures two stand-ins, in grey levels (0-255; eps = 0.01 is 2.55 levels):

1. first-generation q75 error on CIFAR-like thumbnails: lossless colour photographs (the PNG
   sample images that ship inside the scikit-image wheel) cut into square tiles, each
   shrunk to 32x32 with a box filter (as CIFAR-10's images were shrunk from photos), then
   JPEG-encoded at quality 75 with Pillow and decoded (the copy's files use the same
   quantisation tables and 4:2:0 chroma subsampling as Pillow's quality 75);
2. second-generation error of the copy itself: its test images re-encoded at quality 75.
   A second pass at the same quality changes far less than the first, so this is only a
   floor for the copy's own error.

    pip download --no-deps scikit-image==0.26.0 -d /tmp/skimage-wheel
    python docs/reproduction/jpeg_noise.py --photos /tmp/skimage-wheel/scikit_image-*.whl \\
        --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import io
import zipfile

import numpy as np
from PIL import Image

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png")
EPS_LEVELS = 0.01 * 255


def q75(img: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=75)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def thumbnails(wheel: str, tile: int = 128, stride: int = 64) -> np.ndarray:
    """32x32 box-filtered thumbnails of ``tile``-pixel squares of the photographs, every
    ``stride`` pixels."""
    out = []
    with zipfile.ZipFile(wheel) as z:
        for name in PHOTOS:
            img = Image.open(io.BytesIO(z.read(f"skimage/data/{name}"))).convert("RGB")
            a = np.asarray(img)
            for y in range(0, a.shape[0] - tile + 1, stride):
                for x in range(0, a.shape[1] - tile + 1, stride):
                    t = Image.fromarray(a[y : y + tile, x : x + tile]).resize((32, 32), Image.BOX)
                    out.append(np.asarray(t))
    return np.stack(out)


def stats(before: np.ndarray, after: np.ndarray) -> str:
    d = np.abs(after.astype(np.int16) - before.astype(np.int16))
    per_image_max = d.reshape(len(d), -1).max(1)
    return (
        f"{len(d)} images: mean |delta| {d.mean():.2f} levels, RMS {np.sqrt((d.astype(float) ** 2).mean()):.2f}, "
        f"median per-image max {np.median(per_image_max):.0f}, pixels with |delta| > eps (2.55 levels): "
        f"{100 * (d > EPS_LEVELS).mean():.1f}%"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", required=True, help="the scikit-image wheel (its PNG sample photographs)")
    ap.add_argument("--data-dir", help="the offline CIFAR-10 copy (second-generation error of its test images)")
    args = ap.parse_args()
    thumbs = thumbnails(args.photos)
    print(
        "first generation, q75, 32x32 thumbnails of lossless photographs:",
        stats(thumbs, np.stack([q75(t) for t in thumbs])),
    )
    if args.data_dir:
        from advimb.config.sections import DataConfig
        from advimb.data.sources import load_dataset

        x = load_dataset(DataConfig(source="cifar10", dir=args.data_dir)).x_test
        print("second generation, q75, the copy's 10,000 test images:", stats(x, np.stack([q75(t) for t in x])))


if __name__ == "__main__":
    main()
