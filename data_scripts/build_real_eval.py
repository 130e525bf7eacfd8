#!/usr/bin/env python3
"""Build segcount's small REAL evaluation set and its bundled example images.

    python data_scripts/build_real_eval.py                       # pip-downloads the 3 wheels
    python data_scripts/build_real_eval.py --wheels /tmp/wheels  # or reads them from a folder
    python data_scripts/build_real_eval.py --check               # rebuild in a temp dir, compare
    python data_scripts/build_real_eval.py --preview /tmp/ov     # also draw annotation overlays

Everything comes from images with licences that ship inside PyPI wheels, read straight from the
wheel files (nothing is installed, nothing else is downloaded):

* deepforest 2.1.0 (MIT): aerial tree crowns with box annotations, incl. SOAP_061 whose boxes
  are labelled Alive / Dead -- the set's photo with two kinds of objects (two groups, one image);
* stardist 0.9.2 (BSD-3-Clause): a fluorescence image of nuclei with its label mask;
* scikit-image 0.26.0 (BSD-3-Clause): `coins` (24 coins, annotated once here -- see COINS) and
  `chelsea` (the cat photo the backbone test classifies).

Outputs (deterministic for a given Pillow/zlib):
  evalsets/real/groups.json   segcount-groups/1 (DESIGN.md section 3), images relative to it
  evalsets/real/images/*      longer side <= 1024 px
  evalsets/real/SOURCES.md    provenance, licences, changes, object counts
  segcount/assets/examples/   coins.png, chelsea.jpg, trees.jpg, forest.jpg, examples.json
  segcount/assets/LICENSES.md

Needs numpy and Pillow (scipy for the nuclei centroids); the 16-bit TIFFs are read by Pillow.
"""
from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PROG = "build_real_eval"
ROOT = Path(__file__).resolve().parent.parent
MAX_SIDE = 1024
JPEG_QUALITY = 88

# Wheels pinned by version; their data files are pinned by sha256 (the same on every platform).
WHEELS = {
    "deepforest": ("deepforest==2.1.0", "deepforest-2.1.0-*.whl"),
    "scikit-image": ("scikit-image==0.26.0", "scikit_image-0.26.0-*.whl"),
    "stardist": ("stardist==0.9.2", "stardist-0.9.2-*.whl"),
}
MEMBERS = {  # (package, member) -> sha256
    ("deepforest", "deepforest/data/OSBS_029.png"): "d9477c6a00e4902c7bee487d4c5582c3b8b9a2f77f3908a29628b816b291e6ee",
    ("deepforest", "deepforest/data/OSBS_029.csv"): "83ecd1fb6339eb0997c5a543300295fdd6e0d23c943f50429eb82d149905adba",
    ("deepforest", "deepforest/data/SOAP_061.png"): "256508f1a62149bec4a80879077a865caf50e8cace095e6564c76befa480d424",
    ("deepforest", "deepforest/data/SOAP_061.xml"): "4833280af75fd9c47965a93e38945282835e9e725cac412bdb9469d63480947c",
    ("deepforest", "deepforest/data/2019_YELL_2_541000_4977000_image_crop.png"): "178e58a23cc2642226a364a30f71bd9258ddc1b012c826f12250914a90c7a131",
    ("deepforest", "deepforest/data/2019_YELL_2_541000_4977000_image_crop.xml"): "cefe4b96888bacbf8af1674f000082e549aa707aa6590d545effb23e43f26631",
    ("deepforest", "deepforest/data/2019_YELL_2_528000_4978000_image_crop2.png"): "a9bdb0f4447fdd899d22f567e0e20ba8320c5413b2ad0cd0ac8d9f3b6e0f9767",
    ("deepforest", "deepforest/data/2019_YELL_2_528000_4978000_image_crop2.xml"): "bd431af6a5086d721eb731b22f5ea28cd8a8eab06883efc1c665391acbc68e11",
    ("deepforest", "deepforest-2.1.0.dist-info/licenses/LICENSE"): "5487293ab54d4861d41b5f51622b236f610def978abf6d88091f74559232ab14",
    ("stardist", "stardist/data/images/img2d.tif"): "f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750",
    ("stardist", "stardist/data/images/mask2d.tif"): "59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f",
    ("stardist", "stardist-0.9.2.dist-info/licenses/LICENSE.txt"): "c279e190706f46dd920854b64d0d823a33be1981c187f581eb432b273f797492",
    ("scikit-image", "skimage/data/coins.png"): "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba",
    ("scikit-image", "skimage/data/chelsea.png"): "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    ("scikit-image", "scikit_image-0.26.0.dist-info/LICENSE.txt"): "611d3207504dcb4a808df209d2e7c9b4f2e89fe690f84735c0d548160966b527",
}

# The 24 coins of scikit-image's `coins` (384x303): bounding box x1, y1, x2, y2 (pixel edges) and
# centroid x, y. Made once with scikit-image's coins recipe (Sobel elevation map, watershed from
# markers "< 30 = background, > 150 = coin", holes filled), every one checked by eye on an
# overlay, and frozen here so the build needs no scikit-image. Row by row, left to right.
COINS = [
    (22, 35, 67, 74, 44.7, 54.9), (81, 39, 120, 74, 100.7, 56.6), (132, 28, 179, 74, 155.8, 51.3),
    (192, 30, 240, 73, 215.7, 51.6), (255, 34, 297, 72, 276.6, 52.9), (305, 16, 365, 72, 335.2, 44.0),
    (25, 104, 67, 145, 45.2, 124.8), (84, 108, 122, 145, 102.8, 126.1), (134, 110, 173, 145, 154.0, 127.7),
    (186, 105, 226, 144, 205.8, 124.2), (245, 95, 296, 144, 271.1, 119.3), (317, 106, 356, 145, 336.7, 125.0),
    (26, 179, 63, 217, 44.2, 197.9), (80, 175, 124, 217, 102.2, 196.1), (135, 179, 174, 217, 154.6, 198.2),
    (189, 170, 237, 217, 212.9, 193.6), (251, 172, 297, 217, 274.0, 194.1), (315, 156, 380, 218, 347.5, 187.2),
    (18, 233, 75, 288, 46.4, 260.3), (93, 245, 136, 287, 114.4, 266.0), (144, 236, 201, 288, 172.8, 261.7),
    (220, 240, 269, 288, 244.5, 263.8), (276, 239, 326, 289, 301.1, 263.7), (336, 248, 382, 289, 358.7, 268.4),
]

LICENCE_NOTES = {
    "deepforest": ("MIT", "deepforest 2.1.0 (https://github.com/weecology/DeepForest), file "
                   "`deepforest-2.1.0.dist-info/licenses/LICENSE`: MIT License, Copyright (c) 2019, "
                   "Ben Weinstein. The sample tiles are NEON Airborne Observation Platform RGB imagery "
                   "of the OSBS, SOAP and YELL field sites, as bundled and annotated by the DeepForest "
                   "authors (Weinstein et al.)."),
    "stardist": ("BSD-3-Clause", "stardist 0.9.2 (https://github.com/stardist/stardist), file "
                 "`stardist-0.9.2.dist-info/licenses/LICENSE.txt`: BSD 3-Clause License, Copyright "
                 "(c) 2018-2025, Uwe Schmidt, Martin Weigert. Its `test_image_nuclei_2d` is, per the "
                 "package, a fluorescence image and mask from the 2018 Kaggle Data Science Bowl "
                 "(Caicedo et al., Nature Methods 16(12), 2019)."),
    "scikit-image": ("BSD-3-Clause", "scikit-image 0.26.0 (https://scikit-image.org), file "
                     "`scikit_image-0.26.0.dist-info/LICENSE.txt`: BSD-3-Clause, Copyright 2009-2022 "
                     "the scikit-image team. Image notes from `skimage.data`: `coins` -- Greek coins "
                     "from Pompeii, downloaded from the Brooklyn Museum Collection, \"No known "
                     "copyright restrictions\"; `chelsea` -- \"No copyright restrictions. CC0 by the "
                     "photographer (Stefan van der Walt)\"."),
}


class BuildError(Exception):
    pass


# ----------------------------------------------------------------------------- inputs

def get_wheels(wheels_dir=None, download_dir=None):
    "Map package -> wheel path; pip-downloads the pinned wheels into `download_dir` when no folder is given."
    if wheels_dir is None:
        wheels_dir = download_dir
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", wheels_dir] + [v[0] for v in WHEELS.values()]
        print(f"{PROG}: {' '.join(cmd[1:])}", file=sys.stderr)
        r = subprocess.run(cmd)
        if r.returncode:
            raise BuildError(f"pip download failed (exit {r.returncode}); pass --wheels DIR holding "
                             + ", ".join(v[1] for v in WHEELS.values()))
    out = {}
    for pkg, (_, pattern) in WHEELS.items():
        hits = sorted(glob.glob(os.path.join(wheels_dir, pattern)))
        if not hits:
            raise BuildError(f"{wheels_dir}: no wheel matching {pattern} (try: pip download "
                             f"--no-deps {WHEELS[pkg][0]} -d {wheels_dir})")
        out[pkg] = hits[0]
    return out


class Sources:
    "Reads pinned members from the wheels, checking each one's sha256."

    def __init__(self, wheels):
        self.wheels = wheels
        self._zips = {k: zipfile.ZipFile(v) for k, v in wheels.items()}

    def close(self):
        for z in self._zips.values():
            z.close()

    def read(self, pkg, member):
        try:
            data = self._zips[pkg].read(member)
        except KeyError:
            raise BuildError(f"{self.wheels[pkg]}: no member {member}") from None
        want = MEMBERS.get((pkg, member))
        got = hashlib.sha256(data).hexdigest()
        if want is None or got != want:
            raise BuildError(f"{self.wheels[pkg]}: {member} has sha256 {got}, expected {want}")
        return data

    def image(self, pkg, member):
        im = Image.open(io.BytesIO(self.read(pkg, member)))
        im.load()
        return im


# ----------------------------------------------------------------------------- annotations

def voc_boxes(xml_bytes):
    "Pascal VOC xml -> (label list, float boxes [N,4])."
    root = ET.fromstring(xml_bytes)
    labels, boxes = [], []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        labels.append(obj.find("name").text.strip())
        boxes.append([float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")])
    return labels, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def csv_boxes(csv_bytes):
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8"))))
    return ([r["label"] for r in rows],
            np.asarray([[float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")] for r in rows],
                       dtype=np.float64).reshape(-1, 4))


def box_centres(boxes):
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)


def pick_exemplars(boxes, size, k=3, margin=2):
    """Deterministic exemplars: the `k` boxes closest to the median box area (log scale), not
    touching the image border, not overlapping each other; ties by annotation order."""
    W, H = size
    b = np.asarray(boxes, dtype=np.float64)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inside = (b[:, 0] >= margin) & (b[:, 1] >= margin) & (b[:, 2] <= W - margin) & (b[:, 3] <= H - margin)
    cand = np.flatnonzero(inside & (area > 0))
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


def _overlap(a, c):
    w = min(a[2], c[2]) - max(a[0], c[0])
    h = min(a[3], c[3]) - max(a[1], c[1])
    return max(w, 0) * max(h, 0)


def label_centroids(mask):
    "Per label of an integer mask: bbox (pixel edges) and centroid (pixel centres at +0.5)."
    from scipy import ndimage as ndi
    labels = [int(v) for v in np.unique(mask) if v != 0]
    ones = np.ones_like(mask, dtype=np.float64)
    cents = ndi.center_of_mass(ones, mask, labels)
    objs = ndi.find_objects(mask)
    boxes = []
    for lab in labels:
        sy, sx = objs[lab - 1]
        boxes.append([sx.start, sy.start, sx.stop, sy.stop])
    pts = np.asarray([[cx + 0.5, cy + 0.5] for cy, cx in cents], dtype=np.float64)
    return np.asarray(boxes, dtype=np.float64), pts


# ----------------------------------------------------------------------------- images

def fit(im, max_side=MAX_SIDE):
    "Resize so the longer side <= max_side (LANCZOS); returns image and (sx, sy)."
    W, H = im.size
    s = min(1.0, max_side / max(W, H))
    if s == 1.0:
        return im, (1.0, 1.0)
    nw, nh = round(W * s), round(H * s)
    return im.resize((nw, nh), Image.LANCZOS), (nw / W, nh / H)


def encode(im, fmt):
    buf = io.BytesIO()
    if fmt == "jpg":
        im.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    else:
        im.save(buf, "PNG", optimize=False)
    return buf.getvalue()


def stretch16(a, lo_pct=0.5, hi_pct=99.8):
    "16-bit microscopy -> 8-bit by a linear percentile stretch."
    lo, hi = np.percentile(a, [lo_pct, hi_pct])
    g = np.clip((a.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)
    return Image.fromarray(np.round(g * 255).astype(np.uint8), mode="L")


def dump_groups(entries):
    "segcount-groups/1 JSON, one key per line and coordinates compact (readable diffs)."
    out = ['{"format": "segcount-groups/1",', ' "entries": [']
    for i, e in enumerate(entries):
        keys = list(e)
        body = ",\n   ".join(f"{json.dumps(k)}: {json.dumps(e[k], separators=(', ', ': '))}"
                           for k in keys)
        out.append("  {" + body + "}" + ("," if i < len(entries) - 1 else ""))
    out.append(" ]}")
    text = "\n".join(out) + "\n"
    assert json.loads(text)["entries"] == entries
    return text.encode()


def _r(a):
    return [[round(float(v), 2) for v in row] for row in np.asarray(a)]


# ----------------------------------------------------------------------------- the set

def build(src: Sources):
    """Returns (files: {relpath: bytes}, entries, table rows) for evalsets/real."""
    files, entries, rows = {}, [], []

    def add(eid, image_rel, klass, boxes, points, size, source, change):
        W, H = size
        b, p = np.asarray(boxes, dtype=np.float64), np.asarray(points, dtype=np.float64)
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= W).all() and (b[:, 1] >= 0).all() and (b[:, 3] <= H).all()
        assert (p[:, 0] >= 0).all() and (p[:, 0] <= W).all() and (p[:, 1] >= 0).all() and (p[:, 1] <= H).all()
        entries.append({"id": eid, "image": image_rel, "class": klass, "boxes": _r(b), "points": _r(p)})
        rows.append({"id": eid, "image": image_rel, "class": klass, "count": len(p),
                     "size": f"{W}x{H}", "source": source, "change": change})

    # 1. scikit-image coins: unchanged PNG, 24 coins
    data = src.read("scikit-image", "skimage/data/coins.png")
    im = Image.open(io.BytesIO(data))
    files["images/coins.png"] = data
    cb = np.asarray([c[:4] for c in COINS], dtype=np.float64)
    add("coins", "images/coins.png", "coins", pick_exemplars(cb, im.size),
        [c[4:] for c in COINS], im.size, "scikit-image 0.26.0 `skimage/data/coins.png`",
        "none (file copied); 24 coin centres annotated for segcount")

    # 2. deepforest OSBS_029: 61 tree crowns (CSV boxes -> centres)
    im = src.image("deepforest", "deepforest/data/OSBS_029.png").convert("RGB")
    _, b = csv_boxes(src.read("deepforest", "deepforest/data/OSBS_029.csv"))
    files["images/osbs_029.jpg"] = encode(im, "jpg")
    add("osbs_029-trees", "images/osbs_029.jpg", "trees", pick_exemplars(b, im.size), box_centres(b),
        im.size, "deepforest 2.1.0 `deepforest/data/OSBS_029.png` + `OSBS_029.csv`",
        f"PNG -> JPEG q{JPEG_QUALITY}; dots = centres of the tree boxes")

    # 3. deepforest SOAP_061: two kinds on one image (Alive / Dead)
    im = src.image("deepforest", "deepforest/data/SOAP_061.png").convert("RGB")
    labels, b = voc_boxes(src.read("deepforest", "deepforest/data/SOAP_061.xml"))
    files["images/soap_061.jpg"] = encode(im, "jpg")
    labels = np.asarray(labels)
    for lab, klass in (("Alive", "living trees"), ("Dead", "dead trees")):
        bl = b[labels == lab]
        add(f"soap_061-{lab.lower()}", "images/soap_061.jpg", klass, pick_exemplars(bl, im.size),
            box_centres(bl), im.size,
            "deepforest 2.1.0 `deepforest/data/SOAP_061.png` + `SOAP_061.xml`",
            f"PNG -> JPEG q{JPEG_QUALITY}; dots = centres of the boxes labelled {lab}")

    # 4./5. deepforest YELL crops: many trees, downscaled to <= 1024 px
    for stem, eid in (("2019_YELL_2_541000_4977000_image_crop", "yell_541000_4977000-trees"),
                      ("2019_YELL_2_528000_4978000_image_crop2", "yell_528000_4978000-trees")):
        im0 = src.image("deepforest", f"deepforest/data/{stem}.png").convert("RGB")
        _, b = voc_boxes(src.read("deepforest", f"deepforest/data/{stem}.xml"))
        b = np.clip(b, 0, [im0.size[0], im0.size[1]] * 2)
        im, (sx, sy) = fit(im0)
        b = b * [sx, sy, sx, sy]
        rel = f"images/{eid.split('-')[0]}.jpg"
        files[rel] = encode(im, "jpg")
        add(eid, rel, "trees", pick_exemplars(b, im.size), box_centres(b), im.size,
            f"deepforest 2.1.0 `deepforest/data/{stem}.png` + `{stem}.xml`",
            f"{im0.size[0]}x{im0.size[1]} PNG resized to {im.size[0]}x{im.size[1]} (LANCZOS), "
            f"JPEG q{JPEG_QUALITY}; dots = centres of the tree boxes")

    # 6. stardist nuclei: 16-bit TIFF -> 8-bit PNG; dots = centroids of the mask's labels
    img = np.asarray(src.image("stardist", "stardist/data/images/img2d.tif"))
    mask = np.asarray(src.image("stardist", "stardist/data/images/mask2d.tif")).astype(np.int64)
    nb, npts = label_centroids(mask)
    im = stretch16(img)
    files["images/nuclei.png"] = encode(im, "png")
    add("nuclei", "images/nuclei.png", "cell nuclei", pick_exemplars(nb, im.size), npts, im.size,
        "stardist 0.9.2 `stardist/data/images/img2d.tif` + `mask2d.tif`",
        "16-bit TIFF -> 8-bit PNG (linear stretch between the 0.5th and 99.8th percentiles); "
        "dots = centroids of the mask's labels, exemplars = bounding boxes of 3 labels")

    files["groups.json"] = dump_groups(entries)
    files["SOURCES.md"] = sources_md(rows, src).encode()
    return files, entries, rows


def sources_md(rows, src):
    n_img = len({r["image"] for r in rows})
    total = sum(r["count"] for r in rows)
    lines = [
        "# evalsets/real — provenance",
        "",
        f"A small real evaluation set owned by segcount: {n_img} images, {len(rows)} groups, "
        f"{total} annotated objects. Built by `python data_scripts/build_real_eval.py` from images "
        "that ship with licences inside PyPI wheels (pinned versions; every input file's sha256 is "
        "checked). Format: `groups.json` is `segcount-groups/1` (DESIGN.md section 3): per group "
        "3 exemplar boxes `[x1, y1, x2, y2]` and one dot `[x, y]` per object, in pixels of the "
        "image file. `soap_061-alive` and `soap_061-dead` are two groups on the same photo: the "
        "set's image with two kinds of objects.",
        "",
        "Exemplars are picked by a fixed rule: the 3 boxes closest to the group's median box area, "
        "not touching the border, not overlapping each other. Counts are the annotators' "
        "(deepforest's boxes, stardist's mask, segcount's coin annotation); the tree annotations "
        "of the YELL tiles miss some small or shaded crowns, so treat those counts as the "
        "reference, not as the truth.",
        "",
        "| id | image | class | objects | image size | source | changes |",
        "|---|---|---|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['id']} | {r['image']} | {r['class']} | {r['count']} | {r['size']} | "
                     f"{r['source']} | {r['change']} |")
    lines += ["", f"Total: {len(rows)} groups, {total} objects.", "", "## Licences", ""]
    for pkg in ("deepforest", "stardist", "scikit-image"):
        name, note = LICENCE_NOTES[pkg]
        lines += [f"### {pkg} ({name})", "", note, ""]
    lines += ["### Full licence texts", ""]
    for pkg, member in (("deepforest", "deepforest-2.1.0.dist-info/licenses/LICENSE"),
                        ("stardist", "stardist-0.9.2.dist-info/licenses/LICENSE.txt")):
        lines += [f"#### {pkg} — `{member}`", "", "```", src.read(pkg, member).decode().strip(), "```", ""]
    lines += ["#### scikit-image — `scikit_image-0.26.0.dist-info/LICENSE.txt` (the part covering "
              "`skimage/data`)", "", "```", skimage_license(src), "```", ""]
    return "\n".join(lines)


def skimage_license(src):
    """The part of scikit-image's LICENSE.txt covering `skimage/data`: its "Files: *" clause and
    the BSD-3-Clause text, both verbatim from the wheel."""
    text = src.read("scikit-image", "scikit_image-0.26.0.dist-info/LICENSE.txt").decode()
    head = "\n".join(text.strip().splitlines()[:3])
    start = text.index("License: BSD-3-Clause\n\nRedistribution")
    end = text.index("License: MIT", start)
    return head + "\n\n" + text[start:end].strip()


# ----------------------------------------------------------------------------- assets

def build_assets(src: Sources, eval_files, eval_entries):
    """segcount/assets: example images + examples.json (segcount-groups/1) + LICENSES.md."""
    files = {}
    by_id = {e["id"]: e for e in eval_entries}
    # coins: the evaluation set's file and annotation
    files["examples/coins.png"] = eval_files["images/coins.png"]
    files["examples/trees.jpg"] = eval_files["images/osbs_029.jpg"]
    files["examples/forest.jpg"] = eval_files["images/soap_061.jpg"]
    chelsea = src.image("scikit-image", "skimage/data/chelsea.png").convert("RGB")
    files["examples/chelsea.jpg"] = encode(chelsea, "jpg")
    entries = []
    for eid, image, new_id in (("coins", "coins.png", "coins"),
                               ("osbs_029-trees", "trees.jpg", "trees"),
                               ("soap_061-dead", "forest.jpg", "forest-dead-trees"),
                               ("soap_061-alive", "forest.jpg", "forest-living-trees")):
        e = dict(by_id[eid])
        e["id"], e["image"] = new_id, image
        entries.append(e)
    files["examples/examples.json"] = dump_groups(entries)
    files["LICENSES.md"] = assets_licenses_md(src, entries).encode()
    return files


def assets_licenses_md(src, entries):
    counts = {e["id"]: len(e["points"]) for e in entries}
    box = lambda eid: "; ".join(" ".join(str(round(v)) for v in b)
                                for b in next(e for e in entries if e["id"] == eid)["boxes"])
    lines = [
        "# Bundled example images — sources and licences",
        "",
        "Made by `data_scripts/build_real_eval.py` from files inside PyPI wheels (see "
        "`evalsets/real/SOURCES.md` for the evaluation set built from the same files).",
        "`examples/examples.json` is a `segcount-groups/1` file: per example 3 exemplar boxes "
        "`[x1, y1, x2, y2]` and the annotated dots, in pixels of the image.",
        "",
        "| file | what | source | licence | changes |",
        "|---|---|---|---|---|",
        f"| examples/coins.png | {counts['coins']} Greek coins; exemplars {box('coins')} | "
        "scikit-image 0.26.0 `skimage/data/coins.png` (Brooklyn Museum Collection) | BSD-3-Clause "
        "(scikit-image); image: no known copyright restrictions | none; coin centres annotated "
        "for segcount |",
        f"| examples/trees.jpg | {counts['trees']} tree crowns (aerial, NEON site OSBS) | deepforest "
        "2.1.0 `deepforest/data/OSBS_029.png` + `.csv` | MIT (deepforest) | PNG -> JPEG; dots = "
        "box centres |",
        f"| examples/forest.jpg | two kinds: {counts['forest-dead-trees']} dead and "
        f"{counts['forest-living-trees']} living trees (NEON site SOAP) | deepforest 2.1.0 "
        "`deepforest/data/SOAP_061.png` + `.xml` | MIT (deepforest) | PNG -> JPEG; dots = box "
        "centres |",
        "| examples/chelsea.jpg | Chelsea the cat (for the backbone check: ImageNet class "
        "'Egyptian cat') | scikit-image 0.26.0 `skimage/data/chelsea.png` | BSD-3-Clause "
        "(scikit-image); image CC0 by the photographer, Stefan van der Walt | PNG -> JPEG |",
        "",
        "## Licence notes",
        "",
    ]
    for pkg in ("scikit-image", "deepforest"):
        name, note = LICENCE_NOTES[pkg]
        lines += [f"### {pkg} ({name})", "", note, ""]
    lines += ["### Full licence texts", "", "#### deepforest — MIT", "", "```",
              src.read("deepforest", "deepforest-2.1.0.dist-info/licenses/LICENSE").decode().strip(),
              "```", "", "#### scikit-image — BSD-3-Clause (clause covering `skimage/data`)", "",
              "```", skimage_license(src), "```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- output

def write_tree(files, out: Path):
    "Write {relpath: bytes} under `out`, each file atomically (temp name + os.replace)."
    out.mkdir(parents=True, exist_ok=True)
    for rel, data in sorted(files.items()):
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, p)


def preview(out_dir: Path, groups_dir: Path, entries):
    "Overlay PNGs (exemplars green, dots red) for eyeballing the annotations."
    out_dir.mkdir(parents=True, exist_ok=True)
    for e in entries:
        im = Image.open(groups_dir / e["image"]).convert("RGB")
        s = 2 if max(im.size) <= 512 else 1
        im = im.resize((im.size[0] * s, im.size[1] * s), Image.NEAREST)
        d = ImageDraw.Draw(im)
        for b in e["boxes"]:
            d.rectangle([v * s for v in b], outline=(0, 255, 0), width=2)
        for x, y in e["points"]:
            d.ellipse([x * s - 3, y * s - 3, x * s + 3, y * s + 3], fill=(255, 0, 0))
        im.save(out_dir / f"{e['id']}.png")


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", help="folder with the pinned wheels (default: pip download them)")
    ap.add_argument("--out", default=str(ROOT / "evalsets" / "real"))
    ap.add_argument("--assets", default=str(ROOT / "segcount" / "assets"))
    ap.add_argument("--no-assets", action="store_true", help="build only the evaluation set")
    ap.add_argument("--check", action="store_true",
                    help="build into a temp dir and compare with --out/--assets byte for byte")
    ap.add_argument("--preview", help="also draw annotation overlays into this folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segcount-wheels-") as tmp:
        return _main(args, tmp)


def _main(args, tmp):
    src = None
    try:
        src = Sources(get_wheels(args.wheels, tmp))
        files, entries, rows = build(src)
        assets = {} if args.no_assets else build_assets(src, files, entries)
        if args.check:
            bad = [f"{args.out}/{k}" for k, v in files.items() if _differs(Path(args.out) / k, v)]
            bad += [f"{args.assets}/{k}" for k, v in assets.items() if _differs(Path(args.assets) / k, v)]
            if bad:
                print(f"{PROG}: error: differs from a fresh build: {', '.join(bad)}", file=sys.stderr)
                return 1
            print(f"{PROG}: {len(files) + len(assets)} files match a fresh build", file=sys.stderr)
            return 0
        write_tree(files, Path(args.out))
        if assets:
            write_tree(assets, Path(args.assets))
        if args.preview:
            preview(Path(args.preview), Path(args.out), entries)
        for f in [Path(args.out) / "groups.json"] + ([Path(args.assets) / "examples" / "examples.json"] if assets else []):
            checked = read_back(f)
            if checked is not None:
                print(f"{PROG}: {f}: segcount.data.read_groups reads {checked} groups", file=sys.stderr)
        size = sum(len(v) for v in files.values())
        print(f"{PROG}: wrote {args.out}: {len({r['image'] for r in rows})} images, {len(rows)} "
              f"groups, {sum(r['count'] for r in rows)} objects, {size / 1e6:.2f} MB", file=sys.stderr)
        return 0
    except BuildError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    finally:
        if src is not None:
            src.close()


def read_back(path: Path):
    "Validate a written groups file with segcount.data.read_groups when segcount is importable."
    sys.path.insert(0, str(ROOT))
    try:
        from segcount.data import read_groups, SegcountError
    except Exception:  # segcount (or torch) not importable: the JSON was checked on writing
        return None
    finally:
        sys.path.pop(0)
    try:
        groups = read_groups(path)
        for s in groups:  # loads every image, checks boxes and dots against its size
            assert s.count == len(s.points)
    except SegcountError as e:
        raise BuildError(f"segcount.data.read_groups rejects the output: {e}") from None
    return len(groups)


def _differs(path: Path, data: bytes):
    try:
        return path.read_bytes() != data
    except OSError:
        return True


if __name__ == "__main__":
    sys.exit(main())
