#!/usr/bin/env python3
"""Fetch the real photos that the scene generator uses beside scikit-image's, as photo backgrounds and as the
sources of self-collage object kinds.

    python data_scripts/fetch_photos.py --out data/sources/photos       # apt-get downloads two pinned .debs
    segcount generate --out data/gen5 --n 3000 --photos data/sources/photos ...
    python data_scripts/fetch_photos.py --out data/sources/photos8 --packages all   # all four (data/gen8)

Sources: 40 photographs from four Debian desktop-background packages (pinned by sha256; nothing is installed):
12 nature close-ups of `mate-backgrounds` (GPL-2+), 12 photographs of `plasma-workspace-wallpapers` (LGPL-3,
one CC-BY-SA-4.0) and 16 of `lomiri-wallpapers-16.04` / `-20.04` (Ubuntu wallpaper contests: CC-BY-4.0,
CC-BY-SA-3.0/4.0, CC0-1.0); the drawn and rendered wallpapers of all four are left out. By default only the
first two packages (`data/gen5`'s 24 photographs); `--packages` names others, or `all`. Each photo is written as
`<package>__<name>.jpg`, its longer side brought to at most 1600 px; authors and licences go to `OUT/SOURCES.md`.
Used for training data only: never for the evaluation sets (none of their photos comes from these packages).
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

MAX_SIDE = 1600
PACKAGES = {  # package: (version, sha256 of the .deb, folder of the photos inside it)
    'mate-backgrounds': ('1.26.0-1', '7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04',
                         'usr/share/backgrounds/mate/nature'),
    'plasma-workspace-wallpapers': ('4:5.27.5-2',
                                    '32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b',
                                    'usr/share/wallpapers'),
    'lomiri-wallpapers-16.04': ('20.04.0-2', 'a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab',
                                'usr/share/backgrounds'),
    'lomiri-wallpapers-20.04': ('20.04.0-2', 'd44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709',
                                'usr/share/backgrounds'),
}
DEFAULT_PACKAGES = ['mate-backgrounds', 'plasma-workspace-wallpapers']  # data/gen5's photographs
MATE = 'GPL-2+'
PHOTOS = {  # (package, file inside its folder): (author as the package's copyright file names them, licence)
    ('mate-backgrounds', 'Aqua.jpg'): ('Charles Barbin', MATE),
    ('mate-backgrounds', 'Blinds.jpg'): ('Lennart Poettering, Andrea Cimitan', MATE),
    ('mate-backgrounds', 'Dune.jpg'): ('Marco Cogoni, Hylke Bons', MATE),
    ('mate-backgrounds', 'FreshFlower.jpg'): ('Jens Ansorg', MATE),
    ('mate-backgrounds', 'Garden.jpg'): ('Charles Barbin', MATE),
    ('mate-backgrounds', 'GreenMeadow.jpg'): ('Timothy Schellhase, Lapo Calamandrei', MATE),
    ('mate-backgrounds', 'LadyBird.jpg'): ('Charles Barbin', MATE),
    ('mate-backgrounds', 'RainDrops.jpg'): ('"blackcombwhistler07"', MATE),
    ('mate-backgrounds', 'Storm.jpg'): ('Sergey Nazarov', MATE),
    ('mate-backgrounds', 'TwoWings.jpg'): ('Charles Barbin, Hylke Bons', MATE),
    ('mate-backgrounds', 'Wood.jpg'): ('Jean-François Fortin Tam', MATE),
    ('mate-backgrounds', 'YellowFlower.jpg'): ('Charles Barbin', MATE),
    ('plasma-workspace-wallpapers', 'BytheWater/contents/images/2560x1600.jpg'): ('Maciej Wiklo', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'ColdRipple/contents/images/2560x1600.jpg'): ('Risto Saukonpää', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'ColorfulCups/contents/images/2560x1600.jpg'): ('Dmitri Popov', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'DarkestHour/contents/images/2560x1600.jpg'): ('Risto Saukonpää', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'EveningGlow/contents/images/2560x1600.jpg'): ('Ian Hex', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'FallenLeaf/contents/images/2560x1600.jpg'): ('Martin Klapetek', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'Grey/contents/images/2560x1600.jpg'): ('Sigi Sagi', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'Kite/contents/images/2560x1600.jpg'): ('Risto Saukonpää', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'OneStandsOut/contents/images/2560x1600.jpg'): ('Risto Saukonpää', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'Path/contents/images/2560x1600.jpg'): ('Risto Saukonpää', 'LGPL-3'),
    ('plasma-workspace-wallpapers', 'Volna/contents/images/5120x2880.jpg'): ('Nikita Babin', 'CC-BY-SA-4.0'),
    ('plasma-workspace-wallpapers', 'summer_1am/contents/images/2560x1600.jpg'): ('Risto Saukonpää', 'LGPL-3'),
    ('lomiri-wallpapers-16.04', 'Bridge_by_Sander_Klootwijk.jpg'): ('Sander Klootwijk', 'CC-BY-SA-4.0'),
    ('lomiri-wallpapers-16.04', 'Dragonfly_by_Bolly.jpg'): ('"Bolly"', 'CC-BY-SA-4.0'),
    ('lomiri-wallpapers-16.04', 'Picture_0B_by_freespace.jpg'): ('Trevor "Freespace"', 'CC-BY-4.0'),
    ('lomiri-wallpapers-16.04', 'Picture_1A_by_freespace.jpg'): ('Trevor "Freespace"', 'CC-BY-4.0'),
    ('lomiri-wallpapers-16.04', 'Wine_by_Jakkub_Mede.jpg'): ('Jakub Mede', 'CC-BY-4.0'),
    ('lomiri-wallpapers-16.04', 'aitzgorri_by_Aitzol_Berasategi.jpg'): ('Aitzol Berasategi', 'CC-BY-4.0'),
    ('lomiri-wallpapers-16.04', 'analogpattern_by_Peter_Nerlich.jpg'): ('Peter Nerlich', 'CC-BY-SA-4.0'),
    ('lomiri-wallpapers-16.04', 'free_by_Peter_Nerlich.jpg'): ('Peter Nerlich', 'CC-BY-SA-4.0'),
    ('lomiri-wallpapers-16.04', 'friends_by_Aitzol_Berasategi.jpg'): ('Aitzol Berasategi', 'CC-BY-4.0'),
    ('lomiri-wallpapers-16.04', 'greentock_by_Peter_Nerlich.jpg'): ('Peter Nerlich', 'CC-BY-SA-4.0'),
    ('lomiri-wallpapers-16.04', 'life_by_Aitzol_Berasategi.jpg'): ('Aitzol Berasategi', 'CC-BY-4.0'),
    ('lomiri-wallpapers-16.04', 'picosdeeuropa_by_Aitzol_Berasategi.jpg'): ('Aitzol Berasategi', 'CC-BY-4.0'),
    ('lomiri-wallpapers-16.04', 'seeding_by_Clements_Engelhardt.jpg'): ('Clemens Engelhardt', 'CC0-1.0'),
    ('lomiri-wallpapers-16.04', 'sunset_by_Aitzol_Berasategi.jpg'): ('Aitzol Berasategi', 'CC-BY-4.0'),
    ('lomiri-wallpapers-16.04', 'umang_by_Abhishek_Mudgal.jpg'): ('Abhishek Mudgal', 'CC-BY-4.0'),
    ('lomiri-wallpapers-20.04', 'Kleiber_by_Lukas_Baubkus.jpg'): ('Lukas Baubkus', 'CC-BY-SA-3.0'),
}


def fetch_deb(package: str, version: str, sha: str, dest: Path) -> Path:
    "apt-get download `package`=`version` into `dest`, check its sha256 `sha`, return the .deb path."
    r = subprocess.run(['apt-get', 'download', f'{package}={version}'], cwd=dest, capture_output=True, text=True)
    debs = sorted(dest.glob(f'{package}_*.deb'))
    if r.returncode != 0 or not debs:
        sys.exit(f"apt-get download {package}={version} failed: {r.stderr.strip()[-300:]}")
    got = hashlib.sha256(debs[0].read_bytes()).hexdigest()
    if got != sha: sys.exit(f"{debs[0].name}: sha256 {got}, expected {sha}")
    return debs[0]


def photo_name(package: str, rel: str) -> str:
    "`<package>__<name>.jpg`: the wallpaper's folder name for Plasma, the file's stem for MATE."
    return f"{package}__{Path(rel).stem if '/' not in rel else rel.split('/')[0]}.jpg"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', type=Path, default=Path('data/sources/photos'))
    ap.add_argument('--packages', nargs='+', choices=[*PACKAGES, 'all'], default=DEFAULT_PACKAGES,
                    help=f"the packages whose photos to fetch, or 'all' (default: {' '.join(DEFAULT_PACKAGES)})")
    a = ap.parse_args(argv)
    if 'all' in a.packages: a.packages = list(PACKAGES)
    a.out.mkdir(parents=True, exist_ok=True)
    lines = ['# Photos: provenance and licences', '',
             'Made by `python data_scripts/fetch_photos.py`; each photo\'s longer side brought to at most '
             f'{MAX_SIDE} px (Lanczos), saved as JPEG quality 92; otherwise unchanged. Training sources only.', '',
             '| file | package (version, .deb sha256) | path in the package | author | licence |',
             '|---|---|---|---|---|']
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for package in a.packages:
            version, sha, folder = PACKAGES[package]
            deb = fetch_deb(package, version, sha, tmp)
            root = tmp / package
            subprocess.run(['dpkg-deb', '-x', str(deb), str(root)], check=True)
            for (pkg, rel), (author, licence) in PHOTOS.items():
                if pkg != package: continue
                im = Image.open(root / folder / rel).convert('RGB')
                im.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
                name = photo_name(package, rel)
                im.save(a.out / name, quality=92)
                lines.append(f'| {name} | {package} {version} (`{sha[:12]}…`) | /{folder}/{rel} | {author} | '
                             f'{licence} |')
    (a.out / 'SOURCES.md').write_text('\n'.join(lines) + '\n')
    n = sum(pkg in a.packages for pkg, _ in PHOTOS)
    print(f'{n} photos written to {a.out} (licences in {a.out / "SOURCES.md"})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
