"""segcount demo: draw a few boxes around one kind of object and count only that kind.

Run it from a checkout with `segcount demo` (or `python demo/app.py`); on Hugging Face Spaces this
file is the Space's `app_file`. The app uses only segcount's public API (names in each module's
`__all__`: the paper's constants and `SegcountError` from `segcount.core`, `load_image` from
`segcount.data`, `Predictor` from `segcount.pipeline`, the K sweep's steps from `segcount.pseudolabel`);
everything else here is user interface.

Coordinates: the annotator shows the photo scaled to at most `DISPLAY_MAX_SIDE` pixels; boxes are
kept in those display pixels while the user edits them, listed in the photo's own pixels, and
handed to the model in the pixels of the image the model receives (the photo itself, or a reduced
copy when the photo has more than `MODEL_MAX_PIXELS`).

State: what every session shares (the photo store, the predictor) lives in one `Handlers` object,
whose methods are the event handlers; what is per session is typed (`Photo`: the registered photo,
`Counted`: both methods' results for it) and goes in and out of the handlers through two `gr.State`s.
"""
import argparse
import atexit
import hashlib
import html
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")   # before gradio is imported

import matplotlib
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

import gradio as gr
from gradio_image_annotation import image_annotator

from segcount.core import KS, MODEL_HEIGHT, THRESHOLD, SegcountError, one_line
from segcount.data import Sample, image_size, load_image
from segcount.pipeline import Predictor
from segcount.pseudolabel import counts_with_masks, embedder_for, kmeans_masks, prepare_sample

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"

DISPLAY_MAX_SIDE = 1600          # the annotator and the overlays show the photo at most this big
MODEL_MAX_PIXELS = 16_000_000    # larger photos are reduced (integer factor) before counting
PHOTO_MAX_PIXELS = 150_000_000   # larger photos are refused with a clear message
MAX_BOXES = 20
SEG_MAP_LABEL = "Seg-then-count: density, outside the mask dimmed"
METHODS = ("count", "seg-then-count")
QUEUE_MAX_SIZE = 32
CONCURRENCY = 2
K_RANGE = f"K = {min(KS)}..{max(KS)}"
NO_PHOTO_YET = "No photo yet: upload one or pick an example below."
NO_IMAGE = "Upload a photo or pick an example first"
PRESS_COUNT = "press Count"

# Example photos: (file, exemplar boxes in the photo's pixels, caption). Copied from
# segcount/assets/examples (boxes and counts from its examples.json); sources and licences in
# examples/LICENSES.md.
EXAMPLES = [
    ("coins.png", [[336, 248, 382, 289], [80, 175, 124, 217], [93, 245, 136, 287]],
     "Coins: 24 in the photo (scikit-image)"),
    ("trees.jpg", [[256, 99, 288, 140], [177, 308, 214, 343], [179, 359, 214, 398]],
     "Tree crowns: 61 annotated (DeepForest OSBS_029)"),
    ("forest.jpg", [[115, 301, 141, 330], [146, 315, 173, 342], [243, 171, 271, 203]],
     "Two kinds: boxes on dead trees, 28 of them (and 9 living) (DeepForest SOAP_061)"),
    ("forest.jpg", [[147, 277, 187, 318], [275, 335, 307, 368], [179, 184, 225, 234]],
     "Same forest, boxes on the 9 living trees"),
    ("coins-and-trees.jpg", [[336, 248, 382, 289], [80, 175, 124, 217], [93, 245, 136, 287]],
     "Two kinds side by side: 24 coins | tree crowns, boxes on coins"),
]

CSS = """
.sc-count {text-align:center; padding:6px 4px; border-radius:10px; background:var(--block-background-fill);}
.sc-count .sc-label {font-size:0.95rem; opacity:0.8;}
.sc-count .sc-num {font-size:3.4rem; font-weight:700; line-height:1.1; font-variant-numeric:tabular-nums;}
.sc-count .sc-sub {font-size:0.85rem; opacity:0.75; min-height:1.2em;}
.sc-count.sc-off .sc-num {font-size:1.4rem; font-weight:600; opacity:0.6; padding:0.9rem 0;}
"""

INTRO = """# segcount: count only what your boxes show
Draw boxes around **2–3 examples** of the thing you want counted (or switch to *Click objects* and
click them), then press **Count**. *Count everything* is the plain exemplar counter; *seg-then-count*
first segments the region holding objects like your examples and counts only there (the paper's method),
so other kinds of objects in the photo are left out."""


def UserError(msg: str) -> gr.Error:
    """A one-line message for the user (toast in the UI, exception on the API client), no traceback in the log."""
    return gr.Error(msg, print_exception=False)


# --------------------------------------------------------------------------------------------
# Pure helpers (tested in tests/test_demo.py)
# --------------------------------------------------------------------------------------------
def fingerprint(arr: np.ndarray) -> str:
    """A cheap identity for a displayed image: shape plus a hash of a strided subsample."""
    a = np.ascontiguousarray(arr[::7, ::7])
    return f"{arr.shape[1]}x{arr.shape[0]}-" + hashlib.md5(a.tobytes()).hexdigest()[:16]


def parse_boxes(boxes) -> list[list[float]]:
    """Boxes from the API or a text box: a JSON string or a list of [x1, y1, x2, y2] (or dicts
    with xmin/ymin/xmax/ymax). Raises ValueError with a one-line message."""
    if boxes is None or (isinstance(boxes, str) and not boxes.strip()):
        return []
    if isinstance(boxes, str):
        try:
            boxes = json.loads(boxes)
        except json.JSONDecodeError as e:
            raise ValueError(f"boxes: not valid JSON ({e.msg}); expected [[x1, y1, x2, y2], ...]") from None
    if isinstance(boxes, dict) and "boxes" in boxes:
        boxes = boxes["boxes"]
    if not isinstance(boxes, (list, tuple)):
        raise ValueError(f"boxes: expected a list [[x1, y1, x2, y2], ...], got {type(boxes).__name__}")
    if len(boxes) and isinstance(boxes[0], (int, float)) and len(boxes) == 4:
        boxes = [boxes]  # one box given flat
    out = []
    for i, b in enumerate(boxes):
        if isinstance(b, dict):
            try:
                b = [b["xmin"], b["ymin"], b["xmax"], b["ymax"]]
            except KeyError:
                raise ValueError(f"boxes: box {i + 1} needs xmin, ymin, xmax, ymax ({b})") from None
        if not isinstance(b, (list, tuple)) or len(b) != 4:
            raise ValueError(f"boxes: box {i + 1} is not [x1, y1, x2, y2] ({b!r})")
        try:
            vals = [float(v) for v in b]
        except (TypeError, ValueError):
            raise ValueError(f"boxes: box {i + 1} has a non-number ({b!r})") from None
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"boxes: box {i + 1} has a non-finite number ({b!r})")
        out.append(vals)
    return out


def scale_boxes(boxes, sx: float, sy: float) -> list[list[float]]:
    """Multiply x by sx and y by sy."""
    return [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes]


def annot_boxes(value) -> list[list[float]]:
    """[[x1, y1, x2, y2], ...] from an annotator value (pixels of the image it shows)."""
    if not value:
        return []
    return [[float(b["xmin"]), float(b["ymin"]), float(b["xmax"]), float(b["ymax"])]
            for b in (value.get("boxes") or [])]


def annot_array(value) -> np.ndarray:
    """The annotator's image as shown: its `orientation` counts clockwise quarter turns."""
    arr = np.asarray(value["image"])
    k = int(value.get("orientation") or 0) % 4
    return np.ascontiguousarray(np.rot90(arr, -k)) if k else arr


def to_annot_boxes(boxes) -> list[dict]:
    """Boxes [[x1, y1, x2, y2], ...] as the annotator's numbered box dicts."""
    return [dict(xmin=int(round(b[0])), ymin=int(round(b[1])), xmax=int(round(b[2])), ymax=int(round(b[3])),
                 label=f"{i + 1}", color=(255, 200, 0)) for i, b in enumerate(boxes)]


def estimate_box_size(gray: np.ndarray, x: float, y: float, boxes=(), lo: float = 6.0, hi: float | None = None) -> float:
    """Side (pixels of `gray`) of an exemplar box for a click at (x, y).

    With boxes already drawn, their mean side. Otherwise the characteristic scale of the clicked
    blob: the sigma maximising the scale-normalised Laplacian of Gaussian |sigma^2 LoG| at the
    click (Lindeberg), converted to a diameter 2*sqrt(2)*sigma."""
    if len(boxes):
        b = np.asarray(boxes, dtype=float)
        return float(np.mean(np.sqrt((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))))
    H, W = gray.shape
    hi = hi or max(lo * 2, min(H, W) / 3)
    sigmas = np.geomspace(lo / (2 * math.sqrt(2)), hi / (2 * math.sqrt(2)), 18)
    r = int(math.ceil(4 * sigmas[-1]))
    xi, yi = int(round(min(max(x, 0), W - 1))), int(round(min(max(y, 0), H - 1)))
    y0, y1, x0, x1 = max(0, yi - r), min(H, yi + r + 1), max(0, xi - r), min(W, xi + r + 1)
    crop = gray[y0:y1, x0:x1].astype(np.float32)
    cy, cx = yi - y0, xi - x0
    resp = []
    for s in sigmas:
        L = ndimage.gaussian_laplace(crop, s, mode="reflect") * s * s
        win = L[max(0, cy - 1):cy + 2, max(0, cx - 1):cx + 2]
        resp.append(abs(float(win.mean())))
    s = sigmas[int(np.argmax(resp))]
    return float(np.clip(2 * math.sqrt(2) * s, lo, hi))


def box_at(x: float, y: float, side: float, W: int, H: int) -> list[float]:
    """A side x side box centred on (x, y), shifted to stay inside a W x H image."""
    side = float(min(side, W, H))
    x1 = min(max(x - side / 2, 0), W - side)
    y1 = min(max(y - side / 2, 0), H - side)
    return [x1, y1, x1 + side, y1 + side]


def colorize(a: np.ndarray, cmap: str = "turbo") -> np.ndarray:
    """HxW in [0, 1] -> HxWx3 uint8 through a matplotlib colour map."""
    return (matplotlib.colormaps[cmap](np.clip(a, 0, 1))[..., :3] * 255).astype(np.uint8)


def _resize_map(m: np.ndarray, size, resample=Image.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(np.asarray(m, dtype=np.float32), mode="F").resize(size, resample))


def overlay(photo: Image.Image, density=None, mask=None, threshold: float = THRESHOLD,
            opacity: float = 0.6, boxes=()) -> Image.Image:
    """The photo with a density heat map (transparent where the density is ~0), the region where
    `mask < threshold` dimmed with its border outlined, and the exemplar boxes drawn."""
    base = np.asarray(photo.convert("RGB"), dtype=np.float32)
    H, W = base.shape[:2]
    out = base.copy()
    if mask is not None:
        m = _resize_map(mask, (W, H)) >= threshold
        out[~m] *= 1 - 0.65 * opacity
    if density is not None:
        d = _resize_map(np.maximum(density, 0), (W, H))
        top = float(np.percentile(d, 99.5)) if d.size else 0.0
        top = top if top > 1e-12 else float(d.max())
        if top > 1e-12:
            a = np.clip(d / top, 0, 1)
            alpha = (opacity * np.sqrt(a))[..., None]
            out = out * (1 - alpha) + colorize(a).astype(np.float32) * alpha
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    if mask is not None:
        m = _resize_map(mask, (W, H)) >= threshold
        edge = m ^ np.roll(m, 1, 0) | m ^ np.roll(m, 1, 1)
        edge[0, :] = edge[:, 0] = False
        ys, xs = np.nonzero(edge)
        px = img.load()
        for yy, xx in zip(ys.tolist(), xs.tolist()):
            px[xx, yy] = (255, 255, 255)
    lw = max(2, round(max(W, H) / 400))
    for b in boxes:
        draw.rectangle([b[0], b[1], b[2], b[3]], outline=(255, 200, 0), width=lw)
    return img


def count_html(title: str, value: float | None = None, sub: str = "", off: str | None = None) -> str:
    """The big number, or a short reason when there is none."""
    t = html.escape(title)
    if off is not None:
        return (f"<div class='sc-count sc-off'><div class='sc-label'>{t}</div>"
                f"<div class='sc-num'>{html.escape(off)}</div><div class='sc-sub'>{html.escape(sub)}</div></div>")
    if value is None:
        return (f"<div class='sc-count'><div class='sc-label'>{t}</div><div class='sc-num'>–</div>"
                f"<div class='sc-sub'>{html.escape(sub)}</div></div>")
    return (f"<div class='sc-count'><div class='sc-label'>{t}</div>"
            f"<div class='sc-num' data-count='{value:.4f}'>{value:.1f}</div>"
            f"<div class='sc-sub'>{html.escape(sub)}</div></div>")


# --------------------------------------------------------------------------------------------
# Photos: open, reduce for the model and for display, remember them on disk per fingerprint
# --------------------------------------------------------------------------------------------
def _too_big(name: str, W: int, H: int) -> gr.Error:
    return UserError(f"{name}: the photo is {W}x{H} ({W * H / 1e6:.0f} megapixels); "
                     f"the demo accepts up to {PHOTO_MAX_PIXELS / 1e6:.0f} megapixels")


def model_factor(W: int, H: int) -> int:
    """The integer factor a W x H photo is reduced by before counting (1 up to MODEL_MAX_PIXELS)."""
    return max(1, math.ceil(math.sqrt(W * H / MODEL_MAX_PIXELS)))


@dataclass
class Photo:
    """A photo registered in the `PhotoStore`: its size, the copy counted on and the copy shown (sizes [w, h])."""
    key: str
    name: str
    size: list[int]            # the photo's own pixels
    model_size: list[int]      # the copy the model counts on: the photo reduced by `model_reduced`
    model_path: str            # that copy, as a .npy array
    display_size: list[int]    # the copy shown (at most DISPLAY_MAX_SIDE)
    display_path: str          # that copy, as a PNG
    fp: str                    # fingerprint of the copy shown
    model_reduced: int
    fp_src: str = ""           # fingerprint of the array the annotator held when the photo was registered

    def shows(self, arr: np.ndarray) -> bool:
        """Whether the annotator array `arr` is this photo (as uploaded, or its display copy)."""
        return fingerprint(arr) in (self.fp, self.fp_src)

    def display_to_model(self, boxes) -> list[list[float]]:
        (dw, dh), (mw, mh) = self.display_size, self.model_size
        return scale_boxes(boxes, mw / dw, mh / dh)

    def display_to_photo(self, boxes) -> list[list[float]]:
        (dw, dh), (w, h) = self.display_size, self.size
        return scale_boxes(boxes, w / dw, h / dh)


class PhotoStore:
    """Working copies of photos under a temporary folder (served by Gradio: it is under the
    system temp dir). Keeps the newest `keep` photos."""

    def __init__(self, keep: int = 64):
        self.dir = Path(tempfile.mkdtemp(prefix="segcount-demo-"))
        self.keep = keep
        atexit.register(shutil.rmtree, self.dir, True)
        self.lock = threading.Lock()

    def _prune(self):
        files = sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for meta in files[:-self.keep] if len(files) > self.keep else []:
            for p in self.dir.glob(meta.stem + ".*"):
                p.unlink(missing_ok=True)

    def add(self, arr: np.ndarray, name: str = "photo") -> Photo:
        """Register an RGB photo (HxWx3 uint8 in its own pixels) and return it as a `Photo`."""
        H, W = arr.shape[:2]
        if W * H > PHOTO_MAX_PIXELS:
            raise _too_big(name, W, H)
        key = hashlib.md5(np.ascontiguousarray(arr[::5, ::5]).tobytes() + f"{W}x{H}".encode()).hexdigest()[:20]
        img = Image.fromarray(arr)
        f = model_factor(W, H)
        model = img.reduce(f) if f > 1 else img
        d = max(W, H) / DISPLAY_MAX_SIDE
        disp = model.resize((max(1, round(W / d)), max(1, round(H / d))), Image.LANCZOS) if d > 1 else img
        with self.lock:
            mp, dp = self.dir / f"{key}.model.npy", self.dir / f"{key}.display.png"
            if not mp.exists():
                np.save(mp, np.asarray(model))
            if not dp.exists():
                disp.save(dp, compress_level=1)
            photo = Photo(key=key, name=name, size=[W, H], model_size=list(model.size), model_path=str(mp),
                          display_size=list(disp.size), display_path=str(dp),
                          fp=fingerprint(np.asarray(disp)), model_reduced=f)
            (self.dir / f"{key}.json").write_text(json.dumps(asdict(photo)))
            self._prune()
        return photo


def check_photo(path, name: str | None = None) -> tuple[int, int]:
    """(W, H) of an image file as shown (EXIF orientation applied), read from its header only;
    a clear error if it is not an image or too big."""
    name = name or Path(str(path)).name
    try:
        W, H = image_size(path)
    except SegcountError:
        raise UserError(f"{name}: not an image this demo can read (PNG, JPEG, WebP, TIFF, BMP, ...)") from None
    if W * H > PHOTO_MAX_PIXELS:
        raise _too_big(name, W, H)
    return W, H


def open_for_model(path, name: str | None = None) -> tuple[Image.Image, tuple[int, int], int]:
    """An uploaded file -> (RGB image to count on, (W, H) of the photo as shown, reduction factor f).

    Read with `segcount.data.load_image` (EXIF orientation, 16-bit, transparency on white); photos
    over MODEL_MAX_PIXELS come back reduced by f to ceil(W/f) x ceil(H/f), as the photo store
    reduces what the annotator shows. Clear one-line errors for non-images, damaged files and
    photos over PHOTO_MAX_PIXELS (that check reads only the header, so no huge photo is decoded)."""
    name = name or Path(str(path)).name
    W, H = check_photo(path, name)
    try:
        img = load_image(path, max_pixels=PHOTO_MAX_PIXELS)
    except SegcountError as e:   # its message starts with the (temporary) path: name the file as the user knows it
        raise UserError(f"{name}: " + one_line(e).removeprefix(f"{Path(path)}: ")) from None
    f = model_factor(W, H)
    return (img.reduce(f) if f > 1 else img), (W, H), f


def read_annotator(annot: image_annotator, payload: dict | None) -> dict | None:
    """The annotator's value from its raw payload: the events that read the annotator run with
    `preprocess=False` and call this, so that the component's own image decoding (which would run
    before any handler) fails with this demo's one-line messages instead of a raw PIL traceback."""
    if payload is None:
        return None
    data = annot.data_model.model_validate(payload)
    name = data.image.orig_name or Path(str(data.image.path)).name
    check_photo(data.image.path, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return annot.preprocess(data)
    except (OSError, SyntaxError, ValueError, MemoryError) as e:
        raise UserError(f"{name}: the image file is damaged or truncated ({e})") from e


# --------------------------------------------------------------------------------------------
# Model: only segcount's public API
# --------------------------------------------------------------------------------------------
def load_predictor(weights=None, device="auto"):
    """`Predictor.from_weights(weights)`; `weights=None` is segcount's embedded default model."""
    return Predictor.from_weights(weights, device=device)


@contextmanager
def user_errors(types=SegcountError):
    """Turn `types` raised inside into a one-line `UserError`."""
    try:
        yield
    except types as e:
        raise UserError(one_line(e)) from None


def k_sweep(predictor, image: np.ndarray, boxes) -> dict:
    """K-means pseudo-label masks for K in `segcount.core.KS` (2..6) on `image` (HxWx3, boxes in its
    pixels) with `segcount.pseudolabel` (paper §3.2), plus the counter's count with each mask when the
    predictor exposes its `counter`. Returns dict(ks, masks (len(ks) x h x w bool), counts (list or
    None), seconds). Raises SegcountError on bad input."""
    t0 = time.perf_counter()
    counter = getattr(predictor, "counter", None)
    stride = int(getattr(counter, "stride", 16))
    sample = Sample("photo", Image.fromarray(image), np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.zeros((0, 2), np.float32))
    s = prepare_sample(sample, MODEL_HEIGHT, stride, max(KS), need_dots=False)
    masks = kmeans_masks(s.image, s.boxes, None, stride, KS, "fast", embedder_for(counter, None))
    counts = None
    if counter is not None:
        counts = [float(c) for c in counts_with_masks(s, counter, masks, height=None)]
    return dict(ks=list(KS), masks=np.asarray(masks, bool), counts=counts, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# Per-session state: the results of one Count, and how they are drawn
# --------------------------------------------------------------------------------------------
def _f32(a) -> np.ndarray | None:
    return None if a is None else np.asarray(a, dtype=np.float32)


@dataclass
class Result:
    """One method's prediction as the app keeps it (maps float32, at the model's resolution)."""
    count: float
    density: np.ndarray
    similarity: np.ndarray | None
    mask: np.ndarray | None
    soft_mask: np.ndarray | None    # the segmenter's soft mask, re-thresholded without the model
    method: str
    seconds: float
    note: str
    n_exemplars: int
    threshold_used: float | None = None

    @classmethod
    def of(cls, p, threshold_used: float | None = None) -> "Result":
        """From a `segcount.pipeline.Prediction`."""
        return cls(count=float(p.count), density=_f32(p.density), similarity=_f32(getattr(p, "similarity", None)),
                   mask=_f32(getattr(p, "mask", None)), soft_mask=_f32(getattr(p, "soft_mask", None)),
                   method=p.method, seconds=float(getattr(p, "seconds", 0.0) or 0.0),
                   note=str(getattr(p, "note", "") or ""), n_exemplars=int(getattr(p, "n_exemplars", 0) or 0),
                   threshold_used=threshold_used)


@dataclass
class Counted:
    """Both methods' results for one photo and its boxes (display pixels): the sliders re-draw from it."""
    display_path: str
    fp: str
    boxes_display: list
    count: Result
    seg: Result | None = None       # None when seg-then-count failed ...
    seg_error: str = ""             # ... and why


def _seg_view(counted: Counted, photo_img: Image.Image, threshold: float, opacity: float):
    """(count HTML, map update) of seg-then-count: its count and mask, or why it is unavailable and
    the counter's similarity map instead."""
    c, s, boxes = counted.count, counted.seg, counted.boxes_display
    if s is None:
        sim = c.similarity
        return (count_html("Seg-then-count", off="unavailable", sub=counted.seg_error),
                gr.update(value=None if sim is None else overlay(
                    photo_img, np.maximum(sim, 0) / max(float(sim.max()), 1e-8), None, threshold, opacity, boxes),
                    label="Similarity map S of the counter (seg-then-count unavailable)"))
    sub = f"mask ≥ {s.threshold_used:.2f}, {s.seconds:.2f} s"
    soft, shown_t = s.soft_mask, 0.5
    if soft is not None:
        shown_t = threshold
        if abs(threshold - s.threshold_used) > 1e-6:
            # re-threshold from the cache: the count-everything density inside the new mask
            m = _resize_map(soft, c.density.shape[::-1]) >= threshold
            quick = float(c.density[m].sum())
            sub = (f"at threshold {threshold:.2f}: ≈ {quick:.1f} (count-everything density inside "
                   f"this mask); press Count for the exact value")
    elif abs(threshold - s.threshold_used) > 1e-6:
        sub += f"; press Count to apply threshold {threshold:.2f}"
    return (count_html("Seg-then-count", s.count, sub=sub),
            gr.update(value=overlay(photo_img, s.density, soft if soft is not None else s.mask, shown_t, opacity,
                                    boxes), label=SEG_MAP_LABEL))


def render(counted: Counted | None, threshold, opacity):
    """(count-everything HTML, seg-then-count HTML, count-everything map, seg-then-count map update)
    from cached results: no model call."""
    if counted is None:
        return (count_html("Count everything", sub=PRESS_COUNT), count_html("Seg-then-count", sub=PRESS_COUNT),
                None, gr.update(value=None, label=SEG_MAP_LABEL))
    photo_img = Image.open(counted.display_path)
    c = counted.count
    all_html = count_html("Count everything", c.count, sub=f"{c.n_exemplars} exemplar(s), {c.seconds:.2f} s")
    img_all = overlay(photo_img, c.density, None, threshold, opacity, counted.boxes_display)
    seg_html, img_seg = _seg_view(counted, photo_img, threshold, opacity)
    return all_html, seg_html, img_all, img_seg


def count_details(photo: Photo, counted: Counted) -> str:
    """The line under the maps: sizes, exemplars, what the colours mean, the predictor's notes."""
    (W, H), (mw, mh) = photo.size, photo.model_size
    details = (f"Photo {W}×{H}; counted at {mw}×{mh}; "
               f"{len(counted.boxes_display)} exemplar(s). Maps: colour = predicted density (objects per pixel)"
               + ("." if counted.seg is None else "; dimmed = outside the segmenter's mask."))
    notes = [r.note for r in (counted.count, counted.seg) if r is not None and r.note]
    return details + (" " + " ".join(notes) if notes else "")


def status_message(photo: Photo, boxes) -> str:
    """The status line under the photo."""
    W, H = photo.size
    msg = f"**{W}×{H}** photo, {len(boxes)} exemplar box{'es' if len(boxes) != 1 else ''}."
    if photo.model_reduced > 1:
        mw, mh = photo.model_size
        msg += f" It is large, so it is counted at {mw}×{mh} (the model resizes it again so that your exemplars measure about as many pixels as it was trained on)."
    if not boxes:
        msg += " Draw a box around one object you want counted (two or three is better)."
    if len(boxes) > MAX_BOXES:
        msg += f" At most {MAX_BOXES} boxes are used."
    return msg


def box_choices(photo: Photo, boxes_disp) -> list[tuple[str, int]]:
    """The exemplar list's entries: each box in the photo's own pixels."""
    return [(f"#{i + 1}: x {b[0]:.0f}–{b[2]:.0f}, y {b[1]:.0f}–{b[3]:.0f} ({b[2] - b[0]:.0f}×{b[3] - b[1]:.0f} px)", i)
            for i, b in enumerate(photo.display_to_photo(boxes_disp))]


def annot_value(photo: Photo, boxes_disp) -> dict:
    """The annotator's value: the photo's display copy with these boxes."""
    return {"image": photo.display_path, "boxes": to_annot_boxes(boxes_disp)}


def ksweep_gallery(photo: Photo, boxes_disp, res: dict, opacity) -> list[tuple[Image.Image, str]]:
    """One picture per K: the photo with what K-means keeps undimmed, captioned."""
    photo_img = Image.open(photo.display_path)
    gallery = []
    for i, (k, m) in enumerate(zip(res["ks"], res["masks"])):
        cap = f"K = {k}: keeps {100 * m.mean():.0f}% of the photo"
        if res["counts"] is not None:
            cap += f", count {res['counts'][i]:.1f}"
        gallery.append((overlay(photo_img, None, m.astype(np.float32), 0.5, max(opacity, 0.5), boxes_disp), cap))
    return gallery


def _has_image(value) -> bool:
    return bool(value) and value.get("image") is not None


# --------------------------------------------------------------------------------------------
# Event handlers, around what all sessions share
# --------------------------------------------------------------------------------------------
class Handlers:
    """What all sessions share: the photo store, the annotator component and the predictor (`weights`
    loaded on first use when `predictor` is None). The methods `on_*` and `api_count` are the app's
    event handlers; the `on_*` get the annotator's raw `payload` (see `read_annotator`)."""

    def __init__(self, store: PhotoStore, annotator: image_annotator, predictor=None, weights=None):
        self.store, self.annotator, self.predictor, self.weights = store, annotator, predictor, weights
        self.lock = threading.Lock()

    def get_predictor(self):
        with self.lock:
            if self.predictor is None:
                try:
                    self.predictor = load_predictor(self.weights)
                except Exception as e:
                    raise gr.Error(f"could not load the model: {e}") from e
            return self.predictor

    def predict(self, photo: Photo, boxes_model, method: str, threshold=None):
        """One prediction on the photo's model copy (boxes in its pixels)."""
        return self.get_predictor().predict(np.load(photo.model_path), boxes_model, method=method, threshold=threshold)

    def photo_from_annot(self, value, photo: Photo | None) -> tuple[Photo, list[list[float]]]:
        """(photo, boxes in display px) for an annotator value; registers new photos."""
        if not _has_image(value):
            raise UserError(NO_IMAGE)
        arr = annot_array(value)
        if photo is None or not photo.shows(arr):
            photo = replace(self.store.add(arr), fp_src=fingerprint(arr))
        # boxes are in the pixels of the array the annotator holds
        sx, sy = photo.display_size[0] / arr.shape[1], photo.display_size[1] / arr.shape[0]
        return photo, scale_boxes(annot_boxes(value), sx, sy)

    def on_annot_change(self, payload, photo: Photo | None):
        """A new photo or new boxes: register it, update the click view, the box list and the status;
        a new photo also clears the results."""
        value = read_annotator(self.annotator, payload)
        if not _has_image(value):
            return (None, gr.update(), None, gr.update(choices=[], value=None), NO_PHOTO_YET, None,
                    *render(None, 0, 0))
        arr = annot_array(value)
        new = photo is None or not photo.shows(arr)
        photo, boxes = self.photo_from_annot(value, photo)
        annot_update = gr.update()
        if new and (tuple(photo.display_size) != (arr.shape[1], arr.shape[0]) or value.get("orientation")):
            # show the reduced display copy instead of the full photo (boxes rescaled to it)
            annot_update = annot_value(photo, boxes)
        choices = box_choices(photo, boxes)
        return (photo, annot_update, overlay(Image.open(photo.display_path), boxes=boxes),
                gr.update(choices=choices, value=choices[-1][1] if choices else None), status_message(photo, boxes),
                *((None, *render(None, 0, 0)) if new else (gr.update(),) * 5))

    def on_click(self, payload, photo: Photo | None, side, evt: gr.SelectData):
        """A click on the click view adds a box around it (its size: the slider's, else estimated)."""
        value = read_annotator(self.annotator, payload)
        if photo is None or not _has_image(value):
            raise UserError(NO_IMAGE)
        photo, boxes = self.photo_from_annot(value, photo)
        x, y = float(evt.index[0]), float(evt.index[1])
        dw, dh = photo.display_size
        if side and side > 0:
            s = side / (photo.size[0] / dw)   # photo px -> display px
        else:
            gray = np.asarray(Image.open(photo.display_path).convert("L"), dtype=np.float32)
            s = estimate_box_size(gray, x, y, boxes)
        return annot_value(photo, boxes + [box_at(x, y, s, dw, dh)])

    def on_remove(self, payload, photo: Photo | None, idx):
        """Remove the box picked in the list."""
        value = read_annotator(self.annotator, payload)
        if photo is None or not _has_image(value):
            raise UserError(NO_IMAGE)
        photo, boxes = self.photo_from_annot(value, photo)
        if idx is None or not (0 <= int(idx) < len(boxes)):
            raise UserError("Pick a box to remove in the list first")
        boxes.pop(int(idx))
        return annot_value(photo, boxes)

    def on_clear(self, payload, photo: Photo | None):
        """Remove every box."""
        if photo is None or not _has_image(read_annotator(self.annotator, payload)):
            return gr.update()
        return annot_value(photo, [])

    def count_both(self, photo: Photo, boxes_disp, threshold: float, progress) -> Counted:
        """Count everything, then seg-then-count (whose failure is kept as its reason)."""
        boxes_model = photo.display_to_model(boxes_disp)
        progress(0.1, desc="Counting everything like the exemplars")
        with user_errors():
            everything = Result.of(self.predict(photo, boxes_model, "count"))
        counted = Counted(photo.display_path, photo.fp, boxes_disp, everything)
        progress(0.55, desc="Seg-then-count: segmenting, then counting inside the mask")
        try:
            counted.seg = Result.of(self.predict(photo, boxes_model, "seg-then-count", threshold=threshold), threshold)
        except Exception as e:  # degrade gracefully: show why and keep count-everything
            counted.seg_error = f"{e}"
        return counted

    def on_count(self, payload, photo: Photo | None, threshold, opacity, progress=gr.Progress()):
        """The Count button: both methods, then their maps."""
        progress(0.0, desc="Reading the photo and boxes")
        photo, boxes_disp = self.photo_from_annot(read_annotator(self.annotator, payload), photo)
        if not boxes_disp:
            raise UserError("No exemplar boxes: draw a box around one object you want counted "
                            "(or click objects in the 'Click objects' tab)")
        counted = self.count_both(photo, boxes_disp[:MAX_BOXES], float(threshold), progress)
        progress(0.9, desc="Drawing the maps")
        return (counted, *render(counted, threshold, opacity), count_details(photo, counted))

    def on_ksweep(self, payload, photo: Photo | None, opacity, progress=gr.Progress()):
        """The K sweep tab: one masked picture per K."""
        progress(0.0, desc="Reading the photo and boxes")
        photo, boxes_disp = self.photo_from_annot(read_annotator(self.annotator, payload), photo)
        if not boxes_disp:
            raise UserError("No exemplar boxes: draw at least one box first")
        progress(0.1, desc=f"K-means over patch embeddings for {K_RANGE}, then counting with each mask")
        try:
            with user_errors():
                res = k_sweep(self.get_predictor(), np.load(photo.model_path),
                              photo.display_to_model(boxes_disp[:MAX_BOXES]))
        except RuntimeError as e:
            return [], f"**K sweep unavailable:** {e}"
        return ksweep_gallery(photo, boxes_disp, res, opacity), (
            f"K sweep in {res['seconds']:.1f} s. Each picture keeps (undimmed) the patches K-means "
            "puts in the exemplars' cluster. Small K keeps too much (other kinds get counted), large K "
            "too little; in training the K whose count best matches the dots is kept (the paper's "
            "Eq. 5), and the segmenter learns to predict that mask without dots.")

    def api_count(self, image_file, boxes, method):
        """API: (image file, boxes [[x1,y1,x2,y2],...] in the image's pixels, method) -> dict."""
        method = (method or "count").strip()
        if method not in METHODS:
            raise UserError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
        if image_file is None:
            raise UserError("image: no file given")
        path = image_file if isinstance(image_file, str) else getattr(image_file, "path", None) or image_file.get("path")
        img, (W, H), f = open_for_model(path, Path(str(path)).name)
        with user_errors(ValueError):
            boxes_px = parse_boxes(boxes)
        if not boxes_px:
            raise UserError("boxes: no exemplar boxes given; expected [[x1, y1, x2, y2], ...] in image pixels")
        mw, mh = img.size
        with user_errors():
            p = self.get_predictor().predict(np.asarray(img), scale_boxes(boxes_px, mw / W, mh / H), method=method)
        out = dict(count=float(p.count), method=p.method, n_exemplars=int(getattr(p, "n_exemplars", len(boxes_px))),
                   image_size=[W, H], seconds=float(getattr(p, "seconds", 0.0) or 0.0),
                   note=str(getattr(p, "note", "") or ""))
        if f > 1:
            out["counted_at"] = [mw, mh]
        return out


# --------------------------------------------------------------------------------------------
# The app: layout and wiring
# --------------------------------------------------------------------------------------------
def _photo_tabs(ui: SimpleNamespace):
    with gr.Tabs():
        with gr.Tab("Draw boxes", id="draw"):
            ui.annot = image_annotator(
                value=None, label="Photo: drop one here, then drag to draw exemplar boxes",
                image_type="numpy", sources=["upload", "clipboard"], box_min_size=4,
                disable_edit_boxes=True, show_remove_button=True, handles_cursor=True,
                use_default_label=False, elem_id="annotator", height=520, boxes_alpha=0.15)
        with gr.Tab("Click objects", id="click"):
            ui.click_img = gr.Image(label="Click an object to add it as an exemplar", type="pil",
                                    interactive=False, elem_id="click-view", height=520, buttons=[])
            ui.box_size = gr.Slider(0, 400, value=0, step=2, label="Box size for clicks (photo px; 0 = estimate from the image)")


def _examples(ui: SimpleNamespace):
    present = [(f, b, c) for f, b, c in EXAMPLES if (EXAMPLES_DIR / f).exists()]
    if not present:
        return
    gr.Examples([[{"image": str(EXAMPLES_DIR / f), "boxes": to_annot_boxes(b)}] for f, b, _ in present],
                inputs=[ui.annot], label="Examples (exemplar boxes included: pick one, press Count)",
                examples_per_page=8)
    gr.Markdown("\n".join(f"{i + 1}. {c}" for i, (_, _, c) in enumerate(present)) +
                "\n\nPhoto sources and licences: `demo/examples/LICENSES.md`.", elem_id="example-notes")


def _photo_column(ui: SimpleNamespace, examples: bool):
    _photo_tabs(ui)
    with gr.Row():
        ui.box_list = gr.Dropdown(choices=[], value=None, label="Exemplar boxes (photo pixels)",
                                  scale=3, elem_id="box-list", interactive=True)
        ui.remove_btn = gr.Button("Remove box", scale=1, size="sm")
        ui.clear_btn = gr.Button("Clear all", scale=1, size="sm")
    ui.status = gr.Markdown(NO_PHOTO_YET, elem_id="status")
    ui.count_btn = gr.Button("Count", variant="primary", size="lg", elem_id="count-btn")
    if examples:
        _examples(ui)


def _results_column(ui: SimpleNamespace):
    with gr.Tabs():
        with gr.Tab("Counts", id="counts"):
            with gr.Row():
                ui.all_html = gr.HTML(count_html("Count everything", sub=PRESS_COUNT), elem_id="count-everything")
                ui.seg_html = gr.HTML(count_html("Seg-then-count", sub=PRESS_COUNT), elem_id="count-seg")
            with gr.Row():
                ui.img_all = gr.Image(label="Count everything: density", type="pil", interactive=False,
                                      elem_id="map-everything", format="jpeg")
                ui.img_seg = gr.Image(label=SEG_MAP_LABEL, type="pil", interactive=False, elem_id="map-seg",
                                      format="jpeg")
            with gr.Row():
                ui.opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Overlay opacity", elem_id="opacity")
                ui.threshold = gr.Slider(0.05, 0.95, value=THRESHOLD, step=0.05,
                                         label="Mask threshold (re-draws from cached results)", elem_id="threshold")
            ui.details = gr.Markdown("", elem_id="details")
        with gr.Tab("K sweep", id="ksweep"):
            gr.Markdown(f"Pseudo-label masks from K-means over patch embeddings, {K_RANGE}, for "
                        "the current photo and boxes (how the segmenter's training masks are made).")
            ui.ksweep_btn = gr.Button("Run the K sweep")
            ui.ksweep_gallery = gr.Gallery(label=K_RANGE, columns=3, height=420, elem_id="ksweep")
            ui.ksweep_md = gr.Markdown("")


def _api_row(ui: SimpleNamespace):
    """Hidden components for the programmatic API."""
    with gr.Row(visible=False):
        ui.api_image = gr.File(label="image", type="filepath")
        ui.api_boxes = gr.JSON(label="boxes")
        ui.api_method = gr.Textbox(label="method", value="count")
        ui.api_out = gr.JSON(label="result")
        ui.api_btn = gr.Button("api")


def _wire(ui: SimpleNamespace, h: Handlers):
    private = dict(api_visibility="private")
    raw = dict(private, preprocess=False)   # events that read the annotator: see read_annotator
    model = dict(concurrency_limit=CONCURRENCY, concurrency_id="model")
    maps = [ui.all_html, ui.seg_html, ui.img_all, ui.img_seg]
    ui.annot.change(h.on_annot_change, [ui.annot, ui.photo],
                    [ui.photo, ui.annot, ui.click_img, ui.box_list, ui.status, ui.counted, *maps], **raw,
                    show_progress="hidden", trigger_mode="always_last")
    ui.click_img.select(h.on_click, [ui.annot, ui.photo, ui.box_size], [ui.annot], **raw)
    ui.remove_btn.click(h.on_remove, [ui.annot, ui.photo, ui.box_list], [ui.annot], **raw)
    ui.clear_btn.click(h.on_clear, [ui.annot, ui.photo], [ui.annot], **raw)
    ui.count_btn.click(h.on_count, [ui.annot, ui.photo, ui.threshold, ui.opacity], [ui.counted, *maps, ui.details],
                       **model, **raw)
    for s in (ui.threshold, ui.opacity):
        s.change(render, [ui.counted, ui.threshold, ui.opacity], maps,
                 show_progress="hidden", trigger_mode="always_last", **private)
    ui.ksweep_btn.click(h.on_ksweep, [ui.annot, ui.photo, ui.opacity], [ui.ksweep_gallery, ui.ksweep_md],
                        **model, **raw)
    ui.api_btn.click(h.api_count, [ui.api_image, ui.api_boxes, ui.api_method], [ui.api_out], api_name="count", **model)


def build_app(predictor=None, weights=None, examples: bool = True) -> gr.Blocks:
    """The Gradio Blocks app. `predictor`: a `segcount.pipeline.Predictor` (or anything with the same
    `predict`); None loads `Predictor.from_weights(weights)` on first use (weights None = embedded)."""
    with gr.Blocks(title="segcount: count only what your boxes show") as demo:
        ui = SimpleNamespace(photo=gr.State(None), counted=gr.State(None))   # per session: Photo, Counted
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                _photo_column(ui, examples)
            with gr.Column(scale=6):
                _results_column(ui)
        _api_row(ui)
        handlers = Handlers(PhotoStore(), ui.annot, predictor, weights)
        _wire(ui, handlers)
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY)
    # handles for tests and for embedding the app elsewhere
    demo.segcount_ui = SimpleNamespace(render=render, store=handlers.store, get_predictor=handlers.get_predictor)
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, **kw):
    """`demo.launch` with this app's CSS, example folder and error display."""
    kw.setdefault("show_error", True)
    kw.setdefault("max_file_size", "200mb")
    return demo.launch(server_name=host, server_port=port, css=CSS, allowed_paths=[str(EXAMPLES_DIR)],
                       footer_links=["api", "gradio"], **kw)


def main(host: str = "127.0.0.1", port: int = 7860, weights: str | None = None, share: bool = False,
         block: bool = True):
    """Build the app on `weights` (None = segcount's embedded default model) and serve it on
    http://host:port, printing the local URL. With `block` (the default) it serves until
    interrupted (Ctrl+C); otherwise it returns the running `gr.Blocks` (call `.close()`)."""
    try:
        predictor = load_predictor(weights)
    except SegcountError as e:   # never serve an untrained model: stop with what is wrong
        raise SystemExit(f"segcount demo: error: no trained model could be loaded ({one_line(e)}); "
                         "reinstall segcount or pass --weights FILE") from None
    demo = build_app(predictor)
    launch(demo, host, port, prevent_thread_lock=True, share=share, quiet=True)
    print(f"segcount demo: serving on {demo.local_url}  (Ctrl+C stops it)", flush=True)
    if not block:
        return demo
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()


def _parse_args(argv=None):
    ap = argparse.ArgumentParser(description="segcount's web demo")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    ap.add_argument("--weights", default=os.environ.get("SEGCOUNT_WEIGHTS") or None,
                    help="a segcount .safetensors model file (default: $SEGCOUNT_WEIGHTS, else the embedded model)")
    return ap.parse_args(argv)


if __name__ == "__main__":
    a = _parse_args()
    main(a.host, a.port, a.weights)
