#!/usr/bin/env python3
"""Fetch photographed objects cut out on a transparent background (RGBA sprites) for the scene generator, beside
the drawn Noto Emoji of `fetch_sprites.py`: real fruit, vegetables, nuts, coins, shells, birds, mammals, fish,
insects, flowers, mushrooms, tools, balls, vehicles.

    python data_scripts/fetch_photo_sprites.py --out data/sources/tuxpaint      # apt-get downloads one pinned .deb
    segcount generate --out data/gen7 --n 3000 --sprites data/sources/noto-emoji data/sources/tuxpaint ...

Source: the Debian package `tuxpaint-stamps-default` 2022.06.04-1 (pinned by sha256; nothing is installed), the
rubber stamps of the children's drawing program Tux Paint, GPL-2+ (Debian's copyright file). Its PNG stamps mix
photographs with drawings (letters, symbols, cartoons); a stamp is kept when it is not in a `cartoon` folder and
looks like a photograph: at least `MIN_COLOUR_SHARE` distinct colours per opaque pixel (drawings have flat fills),
which keeps about 350 of the 686 PNGs. Each is written as `tuxpaint-<folder>__<name>.png` (its folder, e.g.
`fruit`, is its look-alike group); licence and list go to `OUT/SOURCES.md`. Used for training data only: never for
the evaluation sets.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from fetch_photos import fetch_deb

PACKAGE, VERSION = 'tuxpaint-stamps-default', '2022.06.04-1'
SHA256 = '6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34'
STAMPS = 'usr/share/tuxpaint/stamps'
MIN_COLOUR_SHARE = 0.2   # distinct colours / opaque pixels: photographs about 0.3-0.9, flat drawings below 0.05
MIN_OPAQUE = 400         # opaque pixels (alpha > 200) a stamp needs to be judged at all


def colour_share(im: Image.Image) -> float:
    "Distinct RGB colours per opaque pixel of RGBA picture `im` (0 when it has fewer than `MIN_OPAQUE`)."
    a = np.asarray(im.convert('RGBA'))
    rgb = a[a[..., 3] > 200][:, :3].astype(np.int64)
    if len(rgb) < MIN_OPAQUE: return 0.0
    return len(np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])) / len(rgb)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', type=Path, default=Path('data/sources/tuxpaint'))
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        deb = fetch_deb(PACKAGE, VERSION, SHA256, tmp)
        subprocess.run(['dpkg-deb', '-x', str(deb), str(tmp / 'x')], check=True)
        root = tmp / 'x' / STAMPS
        for p in sorted(root.rglob('*.png')):
            rel = p.relative_to(root)
            if 'cartoon' in rel.parts: continue
            im = Image.open(p).convert('RGBA')
            if colour_share(im) < MIN_COLOUR_SHARE: continue
            name = f'tuxpaint-{rel.parent.name}__{p.stem}.png'
            im.save(a.out / name)
            rows.append(f'| {name} | {rel} | {im.width}x{im.height} |')
    (a.out / 'SOURCES.md').write_text('\n'.join([
        '# Photographed object sprites: provenance and licence', '',
        f'Made by `python data_scripts/fetch_photo_sprites.py` from the Debian package `{PACKAGE}` {VERSION} '
        f'(.deb sha256 `{SHA256}`), files `/{STAMPS}/**/*.png` outside `cartoon` folders with at least '
        f'{MIN_COLOUR_SHARE} distinct colours per opaque pixel. Pixels unchanged (saved as RGBA PNG); files renamed.',
        '',
        'Licence: GPL-2+. Debian\'s copyright file (`/usr/share/doc/tuxpaint-stamps-default/copyright`): "Files: * '
        'Copyright: 2002-2022 by Bill Kendrick <bill@newbreedsoftware.com> License: GPL-2" with the notice "either '
        'version 2 of the License, or (at your option) any later version". Upstream: Tux Paint Stamps, '
        'https://tuxpaint.org. Training sources only.', '',
        f'{len(rows)} stamps:', '', '| file | path in the package | size |', '|---|---|---|', *rows]) + '\n')
    print(f'{len(rows)} photographed objects written to {a.out} (licence in {a.out / "SOURCES.md"})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
