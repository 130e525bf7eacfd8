#!/usr/bin/env python3
"""Fetch the object pictures (sprites) that the scene generator pastes as object kinds beside its procedural shapes.

    python data_scripts/fetch_sprites.py                    # npm-packs the pinned package into data/sources/
    python data_scripts/fetch_sprites.py --tgz FILE.tgz     # or reads an already downloaded package file
    segcount generate --out data/gen --n 3000 --sprites data/sources/noto-emoji

Source: the npm package emoji-datasource-google 15.1.2 (pinned by sha256), whose 64×64 RGBA PNGs are Google's
Noto Emoji (Apache License 2.0; the package's own code and metadata are MIT). Only pictures of real object
classes are kept: the categories Animals & Nature, Food & Drink, Objects, Activities, Travel & Places (853
pictures), no faces, people, flags or symbols. Each is written as `<subcategory>__<short_name>.png`; the generator
draws look-alike distractors from the same subcategory (an apple beside pears). Licence texts go to
`OUT/LICENSES.md`. Nothing is installed. Used for training data only: never for the evaluation sets.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE, VERSION = "emoji-datasource-google", "15.1.2"
SHA256 = "d44462c604b8b8ddeea1bded87031fe73beadd92b9569d977dbd6224e45dc850"
CATEGORIES = ("Animals & Nature", "Food & Drink", "Objects", "Activities", "Travel & Places")
ROOT = Path(__file__).resolve().parent.parent

LICENCE_NOTE = f"""# Sprites: provenance and licence

Made by `python data_scripts/fetch_sprites.py` from the npm package `{PACKAGE}@{VERSION}`
(sha256 `{SHA256}`), files `package/img/google/64/*.png`, categories {', '.join(CATEGORIES)}.

- The pictures are Google's Noto Emoji (https://github.com/googlefonts/noto-emoji), which the package's README
  states are "available under the Apache License 2.0".
- The package's code and metadata (`emoji.json`): MIT License, Copyright (c) 2013 Cal Henderson (text below).

Changes: files renamed to `<subcategory>__<short_name>.png`; pixels unchanged.

## MIT licence of {PACKAGE}

```
{{mit}}
```
"""


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def fetch_tgz(dest: Path) -> Path:
    "npm-pack the pinned package into `dest` (no install) and return the .tgz path."
    r = subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(dest)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"fetch_sprites: npm pack {PACKAGE}@{VERSION} failed: {r.stderr.strip().splitlines()[-1:]}")
    return dest / f"{PACKAGE}-{VERSION}.tgz"


def extract(tgz: Path, out: Path) -> int:
    "Write the kept pictures of package file `tgz` to `out`; returns how many."
    data = tgz.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256:
        sys.exit(f"fetch_sprites: {tgz}: sha256 differs from the pinned {SHA256}")
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        emoji = json.load(tf.extractfile("package/emoji.json"))
        mit = tf.extractfile("package/LICENSE").read().decode().strip()
        n = 0
        for e in sorted(emoji, key=lambda e: e["sort_order"]):
            if e["category"] not in CATEGORIES or not e.get("has_img_google"): continue
            member = tf.extractfile(f"package/img/google/64/{e['image']}")
            (out / f"{_slug(e['subcategory'])}__{_slug(e['short_name'])}.png").write_bytes(member.read())
            n += 1
    (out / "LICENSES.md").write_text(LICENCE_NOTE.replace("{mit}", mit))
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "sources" / "noto-emoji")
    ap.add_argument("--tgz", type=Path, default=None, help=f"an already downloaded {PACKAGE}-{VERSION}.tgz")
    args = ap.parse_args(argv)
    if args.out.is_dir() and len(list(args.out.glob("*.png"))) >= 800:
        print(f"{args.out}: already there"); return 0
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.tgz or fetch_tgz(Path(tmp))
        n = extract(tgz, args.out)
    print(f"wrote {n} sprites to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
