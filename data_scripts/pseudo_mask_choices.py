#!/usr/bin/env python3
"""Measure the choices §3.2 of the paper leaves open for the K* pseudo masks, on real photos with dots.

    OMP_NUM_THREADS=1 python data_scripts/pseudo_mask_choices.py                       # all choices, fast mode
    OMP_NUM_THREADS=1 python data_scripts/pseudo_mask_choices.py --modes fast exact \\
        --choices paper chosen                                                        # exact mode too (slow)
    python data_scripts/pseudo_mask_choices.py --list                                  # the choices

For every choice and every photo of the validation set (`evalsets/val`, where the choice is made) and the
test set (`evalsets/real`, only reported), it runs the K sweep of `segcount.pseudolabel.kmeans_sweep` with
the embedded default counter -- K-means masks for every K, K* by Eq. 5, the counter's density error against
the ground-truth density, unchanged -- and records for the K* mask

* dot recall: the share of the photo's dots whose similarity-map cell is in the mask (dots mapped from the
  photo's pixels to the sweep's grid, `dots_kept(..., size=)`), and
* mask area: the share of the grid's cells the mask keeps,

plus K* and the count at K*. It prints one table (mean over photos, per set and mode) and writes the rows to
`--out` (JSON; `--per-image` adds the per-photo values). A choice is a base -- `paper` (the sweep as the paper
writes it: height 384, patch = mean exemplar, MobileNetV2 `features[:14]`, K = 2..6, f_B's cluster, no
smoothing) or `scale` (the same at the counter's own resize rule) -- plus changes joined by ' + ', e.g.
'paper + union + K 2..8'; by default each change alone on each base. `chosen` is what `segcount.pseudolabel`
uses by default (copied from the choice with the same settings when one was measured). A run resumes: rows
already in `--out` for the same choice, mode and set are kept unless `--redo`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parent.parent
SETS = {'val': ROOT / 'evalsets' / 'val' / 'groups.json', 'test': ROOT / 'evalsets' / 'real' / 'groups.json'}
PAPER = dict(height=384, patch_scale=1.0, layer=14, ks=(2, 3, 4, 5, 6), clusters='mean', smooth=())
SCALE = dict(PAPER, height='counter')   # the counter's exemplar-side rule (scale-normalised counter)


CHANGES = {   # one open choice each, applied on top of a base
    'patch 0.75x': dict(patch_scale=0.75), 'patch 1.5x': dict(patch_scale=1.5),
    'layer 11': dict(layer=11), 'layer 17': dict(layer=17),
    'K 2..8': dict(ks=tuple(range(2, 9))), 'K 2..10': dict(ks=tuple(range(2, 11))),
    'K 1..6': dict(ks=tuple(range(1, 7))),   # K = 1: the whole grid (no mask)
    'union': dict(clusters='union'),
    'close': dict(smooth=('close',)), 'fill': dict(smooth=('fill',)), 'dilate': dict(smooth=('dilate',)),
}
BASES = {'paper': PAPER, 'scale': SCALE}


def settings_of(name: str, chosen: dict | None = None) -> dict:
    "Sweep settings of a choice name: 'chosen', or a base ('paper', 'scale') + changes, e.g. 'paper + union + fill'."
    if name == 'chosen': return dict(chosen or default_settings())
    base, *changes = [x.strip() for x in name.split('+')]
    if base not in BASES or any(c not in CHANGES for c in changes):
        raise KeyError(f"{name!r}: a base of {list(BASES)} then changes of {list(CHANGES)}, joined by ' + '")
    s = dict(BASES[base])
    for c in changes:
        ch = CHANGES[c]
        s.update(ch, **({'smooth': tuple(s['smooth']) + ch['smooth']} if 'smooth' in ch else {}))
    return s


def _choices(chosen: dict, extra=()) -> dict:
    "name -> settings: each change alone on `paper` and on `scale`, then the `extra` names, then `chosen`."
    names = list(BASES) + [f'{b} + {c}' for b in BASES for c in CHANGES] + [n for n in extra if n != 'chosen']
    return {n: settings_of(n) for n in dict.fromkeys(names)} | {'chosen': dict(chosen)}


def default_settings() -> dict:
    "The sweep settings `segcount.pseudolabel` uses by default (what `chosen` measures)."
    from segcount import pseudolabel as pl
    return dict(height=pl.SWEEP_HEIGHT, patch_scale=pl.PATCH_SCALE, layer=14, ks=tuple(pl.SWEEP_KS), clusters=pl.CLUSTER_RULE,
                smooth=tuple(pl.SMOOTHING))


def embedder_at(layer: int):
    "ImageNet MobileNetV2 cut after `features[:layer]` (14 = the package's trunk: 96 channels at stride 16)."
    import torchvision
    from segcount.backbones import Backbone, load_torchvision_state, resolve_weights
    from segcount.pseudolabel import build_embedder
    if layer == 14: return build_embedder('mobilenet_v2')
    m = torchvision.models.mobilenet_v2(weights=None)
    load_torchvision_state(m, resolve_weights('mobilenet_v2'), 'mobilenet_v2')
    body = m.features[:layer]
    with torch.no_grad(): c, h = body(torch.zeros(1, 3, 64, 64)).shape[1:3]
    return Backbone(body, f'mobilenet_v2[:{layer}]', int(c), 64 // int(h), weights='imagenet', freeze=True).eval()


def _jsonable(settings: dict) -> dict: return {a: (list(v) if isinstance(v, tuple) else v) for a, v in settings.items()}


def measure(samples, counter, settings: dict, mode: str, embedders: dict, bar=None, seed: int = 0) -> list[dict]:
    "Per photo: dot recall and area of the K* mask, K*, count at K*, gt, seconds."
    from segcount.pseudolabel import dots_kept, kmeans_sweep
    layer = settings.get('layer', 14)
    if layer not in embedders: embedders[layer] = embedder_at(layer)
    rows = []
    for s in samples:
        t = time.perf_counter()
        pl = kmeans_sweep(s, counter, ks=settings['ks'], mode=mode, embedder=embedders[layer], height=settings['height'],
                          patch_scale=settings['patch_scale'], clusters=settings['clusters'], smooth=settings['smooth'],
                          seed=seed, nomask=False)
        rows.append(dict(name=s.name, recall=dots_kept(pl, s.points, size=s.size), area=float(pl.mask.mean()),
                         k=pl.k, count=pl.counts[pl.k_index], gt=pl.gt_count, grid=list(pl.mask.shape),
                         seconds=time.perf_counter() - t))
        if bar is not None: bar.update(1)
    return rows


def summarise(rows: list[dict]) -> dict:
    r = np.array([x['recall'] for x in rows]); a = np.array([x['area'] for x in rows])
    return dict(n=len(rows), recall=round(float(r.mean()), 3), area=round(float(a.mean()), 3),
                all_dots=int((r >= 1).sum()), mae_kstar=round(float(np.mean([abs(x['count'] - x['gt']) for x in rows])), 2),
                seconds=round(float(np.mean([x['seconds'] for x in rows])), 3))


def print_table(results: list[dict], file=sys.stdout):
    print(f"{'choice':28s} {'mode':5s} | {'val recall':>10s} {'area':>5s} | {'test recall':>11s} {'area':>5s}", file=file)
    seen = {}
    for r in results: seen.setdefault((r['choice'], r['mode']), {})[r['set']] = r
    for (c, m), d in seen.items():
        v, t = d.get('val'), d.get('test')
        cell = lambda x, w: f"{x['recall']:>{w}.3f} {x['area']:5.3f}" if x else f"{'':>{w}s} {'':5s}"
        print(f"{c:28s} {m:5s} | {cell(v, 10)} | {cell(t, 11)}", file=file)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--choices', nargs='*', default=None, help="names to measure (default: all; see --list)")
    ap.add_argument('--modes', nargs='+', default=['fast'], choices=['fast', 'exact'])
    ap.add_argument('--sets', nargs='+', default=['val', 'test'], choices=list(SETS))
    ap.add_argument('--limit', type=int, default=None, help="first N photos of each set (a quick look)")
    ap.add_argument('--seed', type=int, default=0, help="K-means seed (another one shows the seed's noise; use another --out)")
    ap.add_argument('--out', type=Path, default=ROOT / 'nbs' / 'data' / 'pseudo_mask_choices.json')
    ap.add_argument('--per-image', action='store_true', help="keep the per-photo rows in --out")
    ap.add_argument('--redo', action='store_true', help="measure again what --out already holds")
    ap.add_argument('--list', action='store_true', help="print the choices and exit")
    args = ap.parse_args(argv)

    from segcount.counter import default_weights_path, load_weights
    from segcount.data import read_groups
    try: choices = _choices(default_settings(), args.choices or ())
    except KeyError as e: ap.error(str(e))
    if args.list:
        for n, s in choices.items(): print(f"{n:32s} {s}")
        return 0
    names = args.choices or list(choices)
    torch.set_num_threads(1)
    counter = load_weights(default_weights_path()).eval()
    data = {k: list(read_groups(SETS[k]))[:args.limit] for k in args.sets}
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results = [r for r in old.get('results', []) if r['choice'] != 'chosen' or r['settings'] == _jsonable(choices['chosen'])]
    done = {(r['choice'], r['mode'], r['set']) for r in results if r['n'] == len(data.get(r['set'], []))}
    todo = [(n, m, k) for n in names for m in args.modes for k in args.sets if args.redo or (n, m, k) not in done]
    bar = tqdm(total=sum(len(data[k]) for _, _, k in todo), desc='K sweeps', unit='photo', file=sys.stderr)
    embedders = {}
    for n, m, k in todo:
        bar.set_postfix_str(f'{n} / {m} / {k}')
        settings = _jsonable(choices[n])
        same = [r for r in results if r['choice'] != n and (r['settings'], r['mode'], r['set'], r['n']) ==
                (settings, m, k, len(data[k]))]
        results = [r for r in results if (r['choice'], r['mode'], r['set']) != (n, m, k)]
        if same and not args.redo:   # the same settings under another name (`chosen` is one of the choices)
            results.append(dict(same[0], choice=n)); bar.update(len(data[k]))
        else:
            rows = measure(data[k], counter, choices[n], m, embedders, bar, args.seed)
            results.append(dict(choice=n, settings=settings, mode=m, set=k, **summarise(rows),
                                **(dict(images=[{a: (round(v, 4) if isinstance(v, float) else v) for a, v in x.items()}
                                                for x in rows]) if args.per_image else {})))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(format='segcount-pseudo-mask-choices/1', seed=args.seed,
                                            sets={s: str(f.relative_to(ROOT)) for s, f in SETS.items()},
                                            counter=default_weights_path().name, results=results), indent=1))
    bar.close()
    order = {n: i for i, n in enumerate(choices)}
    print_table(sorted(results, key=lambda r: (order.get(r['choice'], len(order)), r['mode'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
