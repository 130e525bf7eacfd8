"""segcount demo: draw a few boxes around one kind of object and count only that kind.

Run it from a checkout with `segcount demo` (or `python demo/app.py`); on Hugging Face Spaces this
file is the Space's `app_file`. The app uses only segcount's public inference API
(`segcount.pipeline.Predictor`); everything else here is user interface.

Coordinates: the annotator shows the photo scaled to at most `DISPLAY_MAX_SIDE` pixels; boxes are
kept in those display pixels while the user edits them, listed in the photo's own pixels, and
handed to the model in the pixels of the image the model receives (the photo itself, or a reduced
copy when the photo has more than `MODEL_MAX_PIXELS`).
"""
from __future__ import annotations

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
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

import gradio as gr
from gradio_image_annotation import image_annotator

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"

DISPLAY_MAX_SIDE = 1600          # the annotator and the overlays show the photo at most this big
MODEL_MAX_PIXELS = 16_000_000    # larger photos are reduced (integer factor) before counting
PHOTO_MAX_PIXELS = 150_000_000   # larger photos are refused with a clear message
MAX_BOXES = 20
SEG_MAP_LABEL = "Seg-then-count: density, outside the mask dimmed"
METHODS = ("count", "seg-then-count")
DEFAULT_THRESHOLD = 0.6          # the paper binarises the segmenter's mask at 0.6 (§4, training details)
QUEUE_MAX_SIZE = 32
CONCURRENCY = 2

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
# Model: only the public API of segcount.pipeline
# --------------------------------------------------------------------------------------------
def load_predictor(weights=None, device="auto"):
    """`Predictor.from_weights(weights)`; `weights=None` is segcount's embedded default model."""
    from segcount.pipeline import Predictor
    return Predictor.from_weights(weights, device=device)


def untrained_predictor(device="cpu"):
    """A predictor on an untrained counter: the UI works, the counts mean nothing. Used only when
    segcount has no embedded model yet and no weights were given."""
    from segcount.counter import Counter
    from segcount.pipeline import Predictor
    return Predictor(Counter(backbone_weights=None), device=device)


def _user_error_types():
    try:
        from segcount.data import SegcountError
        return (SegcountError,)
    except Exception:  # pragma: no cover - segcount always provides it
        return (ValueError,)


def k_sweep(predictor, image: np.ndarray, boxes) -> dict:
    """K-means pseudo-label masks for K = 2..6 on `image` (HxWx3, boxes in its pixels) with
    `segcount.pseudolabel` (paper §3.2), plus the counter's count with each mask when the predictor
    exposes its `counter`. Returns dict(ks, masks (len(ks) x h x w bool), counts (list or None),
    seconds). Raises RuntimeError('...') when the module is missing, SegcountError on bad input."""
    try:
        from segcount import pseudolabel as pl
        from segcount.data import Sample
    except Exception as e:
        raise RuntimeError(f"segcount.pseudolabel is not available in this install ({type(e).__name__}: {e})") from e
    t0 = time.perf_counter()
    counter = getattr(predictor, "counter", None)
    stride = int(getattr(counter, "stride", 16))
    sample = Sample("photo", Image.fromarray(image), np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.zeros((0, 2), np.float32))
    s = pl.prepare_sample(sample, 384, stride, max(pl.KS), need_dots=False)
    masks = pl.kmeans_masks(s.image, s.boxes, None, stride, pl.KS, "fast", pl.embedder_for(counter, None))
    counts = None
    if counter is not None:
        counts = [float(c) for c in pl.counts_with_masks(s, counter, masks, height=None)]
    return dict(ks=list(pl.KS), masks=np.asarray(masks, bool), counts=counts, seconds=time.perf_counter() - t0)


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
    from scipy import ndimage
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
    import matplotlib
    return (matplotlib.colormaps[cmap](np.clip(a, 0, 1))[..., :3] * 255).astype(np.uint8)


def _resize_map(m: np.ndarray, size, resample=Image.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(np.asarray(m, dtype=np.float32), mode="F").resize(size, resample))


def overlay(photo: Image.Image, density=None, mask=None, threshold: float = DEFAULT_THRESHOLD,
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

    def add(self, arr: np.ndarray, name: str = "photo") -> dict:
        """Register an RGB photo (HxWx3 uint8 in its own pixels) and return its state dict."""
        H, W = arr.shape[:2]
        if W * H > PHOTO_MAX_PIXELS:
            raise UserError(f"{name}: the photo is {W}x{H} ({W * H / 1e6:.0f} megapixels); "
                           f"the demo accepts up to {PHOTO_MAX_PIXELS / 1e6:.0f} megapixels")
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
            info = dict(key=key, name=name, size=[W, H], model_size=list(model.size), model_path=str(mp),
                        display_size=list(disp.size), display_path=str(dp),
                        fp=fingerprint(np.asarray(disp)), model_reduced=f)
            (self.dir / f"{key}.json").write_text(json.dumps(info))
            self._prune()
        return info


def _photo_errors(name: str):
    """Context manager turning PIL's errors into one-line messages naming the file."""
    from contextlib import contextmanager

    @contextmanager
    def cm():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        except gr.Error:
            raise
        except Image.DecompressionBombError as e:
            raise UserError(f"{name}: the photo is too large (over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} "
                            f"megapixels); the demo accepts up to {PHOTO_MAX_PIXELS / 1e6:.0f} megapixels") from e
        except UnidentifiedImageError as e:
            raise UserError(f"{name}: not an image this demo can read (PNG, JPEG, WebP, TIFF, BMP, ...)") from e
        except (OSError, SyntaxError, ValueError, MemoryError) as e:
            raise UserError(f"{name}: the image file is damaged or truncated ({e})") from e
    return cm()


def check_photo(path, name: str | None = None) -> tuple[int, int]:
    """(W, H) of an image file without decoding it; a clear error if it is not one or too big."""
    name = name or Path(str(path)).name
    with _photo_errors(name), Image.open(path) as im:
        W, H = im.size
    if W * H > PHOTO_MAX_PIXELS:
        raise UserError(f"{name}: the photo is {W}x{H} ({W * H / 1e6:.0f} megapixels); "
                        f"the demo accepts up to {PHOTO_MAX_PIXELS / 1e6:.0f} megapixels")
    return W, H


def model_factor(W: int, H: int) -> int:
    """The integer factor a W x H photo is reduced by before counting (1 up to MODEL_MAX_PIXELS)."""
    return max(1, math.ceil(math.sqrt(W * H / MODEL_MAX_PIXELS)))


def open_for_model(path, name: str | None = None) -> tuple[Image.Image, tuple[int, int], int]:
    """An uploaded file -> (RGB image to count on, (W, H) of the photo as shown, reduction factor f).

    EXIF-rotated, transparency composited on white; photos over MODEL_MAX_PIXELS come back reduced
    to ceil(W/f) x ceil(H/f) (JPEGs decoded at reduced scale, so a 100-megapixel photo stays cheap).
    Clear one-line errors for non-images and photos over PHOTO_MAX_PIXELS."""
    name = name or Path(str(path)).name
    W, H = check_photo(path, name)
    with _photo_errors(name), Image.open(path) as im:
        if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):   # stored sideways: shown W x H is swapped
            W, H = H, W
        f = model_factor(W, H)
        target = (math.ceil(W / f), math.ceil(H / f))
        if f > 1 and im.format == "JPEG":
            im.draft("RGB", (math.ceil(im.size[0] / f), math.ceil(im.size[1] / f)))
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "P", "PA"):
            im = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
        im = im.convert("RGB")
        if im.size != target:
            im = im.reduce(f) if im.size == (W, H) else im.resize(target, Image.BILINEAR)
        return im, (W, H), f


def guard_annotator_errors():
    """Make the annotator's own image decoding (it runs before any event handler) fail with our
    one-line messages instead of a raw PIL traceback. Patched on the class: Gradio re-creates a
    session's component from its constructor arguments after an update, so a per-instance
    override would not last. Idempotent; only the error type and wording change."""
    cls = image_annotator
    if getattr(cls.preprocess_image, "_segcount_guard", False):
        return
    inner = cls.preprocess_image

    def preprocess_image(self, image):
        if image is None:
            return None
        name = getattr(image, "orig_name", None) or Path(str(image.path)).name
        check_photo(image.path, name)
        with _photo_errors(name):
            return inner(self, image)

    preprocess_image._segcount_guard = True
    cls.preprocess_image = preprocess_image


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------
def _prediction_dict(p, display_scale) -> dict:
    return dict(count=float(p.count), density=np.asarray(p.density, dtype=np.float32),
                similarity=None if getattr(p, "similarity", None) is None else np.asarray(p.similarity, dtype=np.float32),
                mask=None if getattr(p, "mask", None) is None else np.asarray(p.mask, dtype=np.float32),
                soft_mask=_soft_mask(p),
                method=p.method, seconds=float(getattr(p, "seconds", 0.0) or 0.0),
                note=str(getattr(p, "note", "") or ""), n_exemplars=int(getattr(p, "n_exemplars", 0) or 0))


def _soft_mask(p):
    """The segmenter's soft mask (h x w in [0, 1]) if the prediction carries one."""
    for name in ("soft_mask", "mask_prob", "segmentation"):
        m = getattr(p, name, None)
        if m is not None:
            return np.asarray(m, dtype=np.float32)
    return None


def build_app(predictor=None, weights=None, examples: bool = True, banner: str | None = None) -> gr.Blocks:
    """The Gradio Blocks app. `predictor`: a `segcount.pipeline.Predictor` (or anything with the same
    `predict`); None loads `Predictor.from_weights(weights)` on first use (weights None = embedded).
    `banner`: a warning shown at the top (e.g. that the model is untrained)."""
    guard_annotator_errors()
    store = PhotoStore()
    user_errors = _user_error_types()
    pred_lock = threading.Lock()
    holder = {"p": predictor}

    def get_predictor():
        with pred_lock:
            if holder["p"] is None:
                try:
                    holder["p"] = load_predictor(weights)
                except Exception as e:
                    raise gr.Error(f"could not load the model: {e}") from e
            return holder["p"]

    # ---------------- core: one prediction in the model image's pixels ----------------
    def run_method(photo: dict, boxes_model, method: str, threshold=None):
        p = get_predictor()
        arr = np.load(photo["model_path"])
        return p.predict(arr, boxes_model, method=method, threshold=threshold)

    def photo_from_annot(value, photo):
        """(photo state, boxes in display px) for an annotator value; registers new photos."""
        if not value or value.get("image") is None:
            raise UserError("Upload a photo or pick an example first")
        arr = annot_array(value)
        fp = fingerprint(arr)
        if photo and fp in (photo.get("fp"), photo.get("fp_src")):
            pass
        else:
            photo = store.add(arr)
            photo["fp_src"] = fp
        # boxes are in the pixels of the array the annotator holds
        sx, sy = photo["display_size"][0] / arr.shape[1], photo["display_size"][1] / arr.shape[0]
        return photo, scale_boxes(annot_boxes(value), sx, sy)

    def disp_to_model(photo, boxes_disp):
        (dw, dh), (mw, mh) = photo["display_size"], photo["model_size"]
        return scale_boxes(boxes_disp, mw / dw, mh / dh)

    def disp_to_photo(photo, boxes_disp):
        (dw, dh), (w, h) = photo["display_size"], photo["size"]
        return scale_boxes(boxes_disp, w / dw, h / dh)

    def box_choices(photo, boxes_disp):
        if not photo:
            return []
        out = []
        for i, b in enumerate(disp_to_photo(photo, boxes_disp)):
            out.append((f"#{i + 1}: x {b[0]:.0f}–{b[2]:.0f}, y {b[1]:.0f}–{b[3]:.0f} "
                        f"({b[2] - b[0]:.0f}×{b[3] - b[1]:.0f} px)", i))
        return out

    # ---------------- event handlers ----------------
    def on_annot_change(value, photo):
        if not value or value.get("image") is None:
            return (None, gr.update(), None, gr.update(choices=[], value=None),
                    "No photo yet: upload one or pick an example below.", None, *render(None, 0, 0))
        arr = annot_array(value)
        new = not photo or fingerprint(arr) not in (photo.get("fp"), photo.get("fp_src"))
        photo, boxes = photo_from_annot(value, photo)
        annot_update = gr.update()
        if new and (tuple(photo["display_size"]) != (arr.shape[1], arr.shape[0]) or value.get("orientation")):
            # show the reduced display copy instead of the full photo (boxes rescaled to it)
            annot_update = {"image": photo["display_path"], "boxes": to_annot_boxes(boxes)}
        W, H = photo["size"]
        msg = f"**{W}×{H}** photo, {len(boxes)} exemplar box{'es' if len(boxes) != 1 else ''}."
        if photo["model_reduced"] > 1:
            mw, mh = photo["model_size"]
            msg += f" It is large, so it is counted at {mw}×{mh} (the model resizes it again so that your exemplars measure about as many pixels as it was trained on)."
        if not boxes:
            msg += " Draw a box around one object you want counted (two or three is better)."
        if len(boxes) > MAX_BOXES:
            msg += f" At most {MAX_BOXES} boxes are used."
        click_view = overlay(Image.open(photo["display_path"]), boxes=boxes)
        choices = box_choices(photo, boxes)
        keep = (gr.update(),) * 4
        return (photo, annot_update, click_view,
                gr.update(choices=choices, value=choices[-1][1] if choices else None), msg,
                *((None, *render(None, 0, 0)) if new else (gr.update(), *keep)))

    def on_click(value, photo, side, evt: gr.SelectData):
        if not photo or not value or value.get("image") is None:
            raise UserError("Upload a photo or pick an example first")
        photo, boxes = photo_from_annot(value, photo)
        x, y = float(evt.index[0]), float(evt.index[1])
        dw, dh = photo["display_size"]
        f = photo["size"][0] / dw  # photo px per display px
        if side and side > 0:
            s = side / f
        else:
            gray = np.asarray(Image.open(photo["display_path"]).convert("L"), dtype=np.float32)
            s = estimate_box_size(gray, x, y, boxes)
        boxes = boxes + [box_at(x, y, s, dw, dh)]
        return {"image": photo["display_path"], "boxes": to_annot_boxes(boxes)}

    def on_remove(value, photo, idx):
        if not photo or not value or value.get("image") is None:
            raise UserError("Upload a photo or pick an example first")
        photo, boxes = photo_from_annot(value, photo)
        if idx is None or not (0 <= int(idx) < len(boxes)):
            raise UserError("Pick a box to remove in the list first")
        boxes.pop(int(idx))
        return {"image": photo["display_path"], "boxes": to_annot_boxes(boxes)}

    def on_clear(value, photo):
        if not photo or not value or value.get("image") is None:
            return gr.update()
        return {"image": photo["display_path"], "boxes": []}

    def render(cache, threshold, opacity):
        """Overlays and counts from cached predictions: no model call."""
        if not cache:
            return (count_html("Count everything", sub="press Count"),
                    count_html("Seg-then-count", sub="press Count"), None,
                    gr.update(value=None, label=SEG_MAP_LABEL))
        photo_img = Image.open(cache["display_path"])
        boxes = cache["boxes_display"]
        c = cache["count"]
        all_html = count_html("Count everything", c["count"],
                              sub=f"{c['n_exemplars']} exemplar(s), {c['seconds']:.2f} s")
        img_all = overlay(photo_img, c["density"], None, threshold, opacity, boxes)
        s = cache["seg"]
        if "error" in s:
            seg_html = count_html("Seg-then-count", off="unavailable", sub=s["error"])
            sim = c.get("similarity")
            img_seg = gr.update(value=None if sim is None else overlay(
                photo_img, np.maximum(sim, 0) / max(float(sim.max()), 1e-8), None, threshold, opacity, boxes),
                label="Similarity map S of the counter (seg-then-count unavailable)")
        else:
            sub = f"mask ≥ {s['threshold_used']:.2f}, {s['seconds']:.2f} s"
            soft, shown_t = s.get("soft_mask"), 0.5
            if soft is not None:
                shown_t = threshold
                if abs(threshold - s["threshold_used"]) > 1e-6:
                    # re-threshold from the cache: the count-everything density inside the new mask
                    m = _resize_map(soft, c["density"].shape[::-1]) >= threshold
                    quick = float(c["density"][m].sum())
                    sub = (f"at threshold {threshold:.2f}: ≈ {quick:.1f} (count-everything density inside "
                           f"this mask); press Count for the exact value")
            elif abs(threshold - s["threshold_used"]) > 1e-6:
                sub += f"; press Count to apply threshold {threshold:.2f}"
            seg_html = count_html("Seg-then-count", s["count"], sub=sub)
            img_seg = gr.update(value=overlay(photo_img, s["density"], soft if soft is not None else s["mask"],
                                              shown_t, opacity, boxes), label=SEG_MAP_LABEL)
        return all_html, seg_html, img_all, img_seg

    def on_count(value, photo, threshold, opacity, progress=gr.Progress()):
        progress(0.0, desc="Reading the photo and boxes")
        photo, boxes_disp = photo_from_annot(value, photo)
        if not boxes_disp:
            raise UserError("No exemplar boxes: draw a box around one object you want counted "
                           "(or click objects in the 'Click objects' tab)")
        boxes_disp = boxes_disp[:MAX_BOXES]
        boxes_model = disp_to_model(photo, boxes_disp)
        progress(0.1, desc="Counting everything like the exemplars")
        try:
            p_all = run_method(photo, boxes_model, "count")
        except user_errors as e:
            raise UserError(str(e)) from None
        cache = dict(display_path=photo["display_path"], fp=photo["fp"], boxes_display=boxes_disp,
                     count=_prediction_dict(p_all, 1.0))
        progress(0.55, desc="Seg-then-count: segmenting, then counting inside the mask")
        try:
            p_seg = run_method(photo, boxes_model, "seg-then-count", threshold=float(threshold))
            cache["seg"] = _prediction_dict(p_seg, 1.0)
            cache["seg"]["threshold_used"] = float(threshold)
        except Exception as e:  # degrade gracefully: show why and keep count-everything
            cache["seg"] = {"error": f"{e}"}
        progress(0.9, desc="Drawing the maps")
        outs = render(cache, threshold, opacity)
        W, H = photo["size"]
        details = (f"Photo {W}×{H}; counted at {photo['model_size'][0]}×{photo['model_size'][1]}; "
                   f"{len(boxes_disp)} exemplar(s). Maps: colour = predicted density (objects per pixel)"
                   + ("." if "error" in cache["seg"] else "; dimmed = outside the segmenter's mask."))
        notes = [c["note"] for c in (cache["count"], cache["seg"]) if isinstance(c, dict) and c.get("note")]
        if notes:
            details += " " + " ".join(notes)
        return (cache, *outs, details)

    def on_ksweep(value, photo, opacity, progress=gr.Progress()):
        progress(0.0, desc="Reading the photo and boxes")
        photo, boxes_disp = photo_from_annot(value, photo)
        if not boxes_disp:
            raise UserError("No exemplar boxes: draw at least one box first")
        progress(0.1, desc="K-means over patch embeddings for K = 2..6, then counting with each mask")
        try:
            res = k_sweep(get_predictor(), np.load(photo["model_path"]), disp_to_model(photo, boxes_disp[:MAX_BOXES]))
        except RuntimeError as e:
            return [], f"**K sweep unavailable:** {e}"
        except user_errors as e:
            raise UserError(str(e)) from None
        photo_img = Image.open(photo["display_path"])
        gallery = []
        for i, (k, m) in enumerate(zip(res["ks"], res["masks"])):
            cap = f"K = {k}: keeps {100 * m.mean():.0f}% of the photo"
            if res["counts"] is not None:
                cap += f", count {res['counts'][i]:.1f}"
            gallery.append((overlay(photo_img, None, m.astype(np.float32), 0.5, max(opacity, 0.5), boxes_disp), cap))
        return gallery, (f"K sweep in {res['seconds']:.1f} s. Each picture keeps (undimmed) the patches K-means "
                         "puts in the exemplars' cluster. Small K keeps too much (other kinds get counted), large K "
                         "too little; in training the K whose count best matches the dots is kept (the paper's "
                         "Eq. 5), and the segmenter learns to predict that mask without dots.")

    def api_count(image_file, boxes, method):
        """API: (image file, boxes [[x1,y1,x2,y2],...] in the image's pixels, method) -> dict."""
        method = (method or "count").strip()
        if method not in METHODS:
            raise UserError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
        if image_file is None:
            raise UserError("image: no file given")
        path = image_file if isinstance(image_file, str) else getattr(image_file, "path", None) or image_file.get("path")
        img, (W, H), f = open_for_model(path, Path(str(path)).name)
        try:
            boxes_px = parse_boxes(boxes)
        except ValueError as e:
            raise UserError(str(e)) from None
        if not boxes_px:
            raise UserError("boxes: no exemplar boxes given; expected [[x1, y1, x2, y2], ...] in image pixels")
        mw, mh = img.size
        try:
            p = get_predictor().predict(np.asarray(img), scale_boxes(boxes_px, mw / W, mh / H), method=method)
        except user_errors as e:
            raise UserError(str(e)) from None
        out = dict(count=float(p.count), method=p.method, n_exemplars=int(getattr(p, "n_exemplars", len(boxes_px))),
                   image_size=[W, H], seconds=float(getattr(p, "seconds", 0.0) or 0.0),
                   note=str(getattr(p, "note", "") or ""))
        if f > 1:
            out["counted_at"] = [mw, mh]
        return out

    # ---------------- layout ----------------
    with gr.Blocks(title="segcount: count only what your boxes show") as demo:
        photo_state = gr.State(None)
        cache_state = gr.State(None)
        gr.Markdown(INTRO)
        if banner:
            gr.Markdown(f"⚠️ **{banner}**", elem_id="banner")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                with gr.Tabs():
                    with gr.Tab("Draw boxes", id="draw"):
                        annot = image_annotator(
                            value=None, label="Photo: drop one here, then drag to draw exemplar boxes",
                            image_type="numpy", sources=["upload", "clipboard"], box_min_size=4,
                            disable_edit_boxes=True, show_remove_button=True, handles_cursor=True,
                            use_default_label=False, elem_id="annotator", height=520, boxes_alpha=0.15)
                    with gr.Tab("Click objects", id="click"):
                        click_img = gr.Image(label="Click an object to add it as an exemplar", type="pil",
                                             interactive=False, elem_id="click-view", height=520,
                                             buttons=[])
                        box_size = gr.Slider(0, 400, value=0, step=2, label="Box size for clicks (photo px; 0 = estimate from the image)")
                with gr.Row():
                    box_list = gr.Dropdown(choices=[], value=None, label="Exemplar boxes (photo pixels)",
                                           scale=3, elem_id="box-list", interactive=True)
                    remove_btn = gr.Button("Remove box", scale=1, size="sm")
                    clear_btn = gr.Button("Clear all", scale=1, size="sm")
                status = gr.Markdown("No photo yet: upload one or pick an example below.", elem_id="status")
                count_btn = gr.Button("Count", variant="primary", size="lg", elem_id="count-btn")
                if examples:
                    ex = [[{"image": str(EXAMPLES_DIR / f), "boxes": to_annot_boxes(b)}]
                          for f, b, _ in EXAMPLES if (EXAMPLES_DIR / f).exists()]
                    if ex:
                        gr.Examples(ex, inputs=[annot], label="Examples (exemplar boxes included: pick one, press Count)",
                                    examples_per_page=8)
                        gr.Markdown("\n".join(f"{i + 1}. {c}" for i, (f, _, c) in enumerate(EXAMPLES)
                                              if (EXAMPLES_DIR / f).exists()) +
                                    "\n\nPhoto sources and licences: `demo/examples/LICENSES.md`.",
                                    elem_id="example-notes")
            with gr.Column(scale=6):
                with gr.Tabs():
                    with gr.Tab("Counts", id="counts"):
                        with gr.Row():
                            all_html = gr.HTML(count_html("Count everything", sub="press Count"), elem_id="count-everything")
                            seg_html = gr.HTML(count_html("Seg-then-count", sub="press Count"), elem_id="count-seg")
                        with gr.Row():
                            img_all = gr.Image(label="Count everything: density", type="pil", interactive=False,
                                               elem_id="map-everything", format="jpeg")
                            img_seg = gr.Image(label=SEG_MAP_LABEL, type="pil",
                                               interactive=False, elem_id="map-seg", format="jpeg")
                        with gr.Row():
                            opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Overlay opacity", elem_id="opacity")
                            threshold = gr.Slider(0.05, 0.95, value=DEFAULT_THRESHOLD, step=0.05,
                                                  label="Mask threshold (re-draws from cached results)", elem_id="threshold")
                        details = gr.Markdown("", elem_id="details")
                    with gr.Tab("K sweep", id="ksweep"):
                        gr.Markdown("Pseudo-label masks from K-means over patch embeddings, K = 2..6, for "
                                    "the current photo and boxes (how the segmenter's training masks are made).")
                        ksweep_btn = gr.Button("Run the K sweep")
                        ksweep_gallery = gr.Gallery(label="K = 2..6", columns=3, height=420, elem_id="ksweep")
                        ksweep_md = gr.Markdown("")

        # hidden components for the programmatic API
        with gr.Row(visible=False):
            api_image = gr.File(label="image", type="filepath")
            api_boxes = gr.JSON(label="boxes")
            api_method = gr.Textbox(label="method", value="count")
            api_out = gr.JSON(label="result")
            api_btn = gr.Button("api")

        private = dict(api_visibility="private")
        annot.change(on_annot_change, [annot, photo_state],
                     [photo_state, annot, click_img, box_list, status, cache_state,
                      all_html, seg_html, img_all, img_seg], **private,
                     show_progress="hidden", trigger_mode="always_last")
        click_img.select(on_click, [annot, photo_state, box_size], [annot], **private)
        remove_btn.click(on_remove, [annot, photo_state, box_list], [annot], **private)
        clear_btn.click(on_clear, [annot, photo_state], [annot], **private)
        count_btn.click(on_count, [annot, photo_state, threshold, opacity],
                        [cache_state, all_html, seg_html, img_all, img_seg, details],
                        concurrency_limit=CONCURRENCY, concurrency_id="model", **private)
        for s in (threshold, opacity):
            s.change(render, [cache_state, threshold, opacity], [all_html, seg_html, img_all, img_seg],
                     show_progress="hidden", trigger_mode="always_last", **private)
        ksweep_btn.click(on_ksweep, [annot, photo_state, opacity], [ksweep_gallery, ksweep_md],
                         concurrency_limit=CONCURRENCY, concurrency_id="model", **private)
        api_btn.click(api_count, [api_image, api_boxes, api_method], [api_out], api_name="count",
                      concurrency_limit=CONCURRENCY, concurrency_id="model")
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY)
    # handles for tests and for embedding the app elsewhere
    demo.segcount_ui = SimpleNamespace(render=render, store=store, get_predictor=get_predictor)
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
    banner = None
    try:
        predictor = load_predictor(weights)
    except Exception as e:
        if weights is not None:
            raise
        predictor = untrained_predictor()
        banner = (f"No trained model could be loaded ({e}). Running an UNTRAINED counter: "
                  f"the interface works but the counts mean nothing.")
        print(f"segcount demo: warning: {banner}", file=sys.stderr, flush=True)
    demo = build_app(predictor, banner=banner)
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
