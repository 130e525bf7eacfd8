"""Keep the course's committed outputs small: every image output of the notebooks is downscaled (at most MAX_SIDE
pixels wide) and re-encoded as the smaller of a 128-colour PNG and a JPEG, so GitHub and Colab show the figures
unrun while each notebook's outputs stay within BUDGET bytes (`make outputs` runs the notebooks, then this).

    python tools/shrink_outputs.py            # shrink nbs/*.ipynb in place, print each notebook's output bytes
    python tools/shrink_outputs.py --check    # only report; exit 1 if a notebook is over BUDGET
    python tools/shrink_outputs.py nbs/30_seg_then_count.ipynb   # only the notebooks named
"""
import argparse
import base64
import io
import json
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MAX_SIDE = 760            # pixels: a figure as wide as the docs' text column
BUDGET = 400_000          # bytes of outputs per notebook


def is_shrunk(im: Image.Image) -> bool:
    "Already as `shrink_image` leaves it (at most MAX_SIDE wide; a JPEG or a PNG of at most 128 colours)."
    return im.width <= MAX_SIDE and (im.format == 'JPEG' or (im.mode == 'P' and len(im.getcolors(256) or ()) <= 128))


def shrink_image(data: bytes) -> tuple[str, bytes] | None:
    """(mime type, bytes) of the smaller encoding of an image, downscaled to at most MAX_SIDE wide; None when it is
    shrunk already (so running this twice changes nothing)."""
    im = Image.open(io.BytesIO(data))
    if is_shrunk(im): return None
    im = im.convert('RGB')
    if im.width > MAX_SIDE:
        im = im.resize((MAX_SIDE, max(1, round(im.height * MAX_SIDE / im.width))), Image.LANCZOS)
    png, jpg = io.BytesIO(), io.BytesIO()
    im.quantize(128, method=Image.Quantize.FASTOCTREE).save(png, 'PNG', optimize=True)
    im.save(jpg, 'JPEG', quality=82, optimize=True)
    return min((('image/png', png.getvalue()), ('image/jpeg', jpg.getvalue())), key=lambda t: len(t[1]))


def output_bytes(nb: dict) -> int:
    "Size of a notebook's outputs as stored (JSON)."
    return sum(len(json.dumps(c.get('outputs', []))) for c in nb['cells'] if c['cell_type'] == 'code')


def shrink(nb: dict) -> dict:
    "The notebook with every image output shrunk (`shrink_image`); other outputs untouched."
    for c in nb['cells']:
        for o in c.get('outputs', []) if c['cell_type'] == 'code' else []:
            data, meta = o.get('data', {}), o.get('metadata', {})
            mimes = [m for m in ('image/png', 'image/jpeg') if m in data]
            if not mimes: continue
            src = data[mimes[0]]
            small = shrink_image(base64.b64decode(''.join(src) if isinstance(src, list) else src))
            if small is None: continue
            for m in mimes: data.pop(m); meta.pop(m, None)
            new_mime, raw = small
            data[new_mime] = base64.b64encode(raw).decode()
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--check', action='store_true', help='report only; exit 1 when a notebook is over the budget')
    ap.add_argument('notebooks', nargs='*', type=Path, help='the notebooks to shrink (default: nbs/*.ipynb)')
    a = ap.parse_args(argv)
    over = []
    for p in a.notebooks or sorted((ROOT / 'nbs').glob('*.ipynb')):
        nb = json.loads(p.read_text())
        if not a.check:
            nb = shrink(nb)
            p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
        n = output_bytes(nb)
        print(f'{p.name:28s} {n / 1000:7.0f} KB of outputs')
        if n > BUDGET: over.append(p.name)
    if over: print(f'over the {BUDGET // 1000} KB budget: {", ".join(over)}', file=sys.stderr)
    return 1 if over else 0


if __name__ == '__main__':
    sys.exit(main())
