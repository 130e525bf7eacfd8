"""Issue 16's features on real computations: points that agree with the count, negative exemplars, a folder counted
into a CSV, and big photos counted in tiles (the demo's parts are in test_demo.py)."""
import contextlib
import csv
import io
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from segcount.app import EXAMPLES_DIR
from segcount.cli import main
from segcount.data import read_groups, write_groups
from segcount.evaluate import copies_of, two_class_groups
from segcount.pipeline import Predictor

ROOT = Path(__file__).resolve().parents[1]
COINS, COIN_BOXES = EXAMPLES_DIR / 'coins.png', [[336, 248, 382, 289], [80, 175, 124, 217]]


@pytest.fixture(scope='module')
def predictor():
    return Predictor.from_weights(device='cpu')


@pytest.fixture(scope='module')
def real():
    return read_groups(ROOT / 'evalsets' / 'real' / 'groups.json')


def _cli(*args) -> SimpleNamespace:
    "Run the `segcount` command in this process (as the console script does): returncode, stdout, stderr."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


# --- points
def test_points_agree_with_the_count_on_real_photos(predictor, real):
    for g in real:
        r = predictor.predict(g.image, g.boxes)
        assert abs(len(r.points) - round(r.count)) <= max(1, 0.05 * r.count), (g.name, len(r.points), r.count)
        W, H = g.size
        assert (r.points[:, 0] >= 0).all() and (r.points[:, 0] <= W).all() and (r.points[:, 1] <= H).all()


def test_points_sit_on_the_objects(predictor, real):
    "Most points of the coins photo lie within half a coin of a true dot."
    g = real[0]
    pts, dots = predictor.predict(g.image, g.boxes).points, np.asarray(g.points)
    side = float(np.mean(g.boxes[:, 2] - g.boxes[:, 0]))
    near = (np.linalg.norm(pts[:, None] - dots[None], axis=2).min(1) < side / 2).mean()
    assert near > 0.8, near


# --- negatives
def test_bad_negative_boxes_are_refused_in_one_line(tmp_path):
    for extra, says in [(['--negative-box', *COIN_BOXES[0]], 'lies on exemplar box 1'),
                        (['--negative-box', 340, 250, 370, 280], 'lies on exemplar box 1'),
                        (['--negative-box', 300, 10, 500, 60], 'outside the 384x303 image')]:
        r = _cli('count', COINS, '--box', *COIN_BOXES[0], *extra)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = _cli('count', COINS, '--negative-box', *COIN_BOXES[0])
    assert r.returncode == 2 and 'no exemplar boxes' in r.stderr, r.stderr


def test_a_negative_on_the_other_kind_removes_its_density(predictor, real):
    "On two-class images from real photos, one negative box on the other kind lowers the density outside the target."
    two = [s for s in two_class_groups(real) if s.negative_boxes is not None]
    assert len(two) == 14
    outside = lambda s, p: float(p.density.sum() - p.density[:, int(s.region[0] * p.scale):int(s.region[2] * p.scale)].sum())
    before = sum(outside(s, predictor.predict(s.image, s.boxes)) for s in two)
    after = sum(outside(s, predictor.predict(s.image, s.boxes, negative_boxes=s.negative_boxes)) for s in two)
    assert after < 0.5 * before, (before, after)


def test_groups_files_keep_negative_boxes_and_evaluate_uses_them_only_when_asked(tmp_path, real):
    from segcount.data import write_groups
    two = two_class_groups(real)[:3]
    path = write_groups(tmp_path / 'two' / 'groups.json', two)
    back = read_groups(path)
    np.testing.assert_allclose(back[0].negative_boxes, two[0].negative_boxes, atol=0.06)
    plain = json.loads(_cli('evaluate', '--groups', path, '--json', '--quiet').stdout)
    neg = json.loads(_cli('evaluate', '--groups', path, '--json', '--quiet', '--negatives').stdout)
    assert plain['negatives'] is False and neg['negatives'] is True
    assert [r['pred'] for r in plain['rows']] != [r['pred'] for r in neg['rows']]


# --- batch
def test_batch_counts_a_folder_resumes_and_keeps_going_past_a_bad_file(tmp_path):
    photos = tmp_path / 'photos'; photos.mkdir()
    for name in ('coins.png', 'forest.jpg', 'trees.jpg'): shutil.copy(EXAMPLES_DIR / name, photos / name)
    (photos / 'zz-broken.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    (photos / 'notes.txt').write_text('not a photo')
    out = tmp_path / 'counts.csv'
    args = ['batch', photos, '--exemplars-from', COINS, '--box', *COIN_BOXES[0], '--box', *COIN_BOXES[1], '--out', out, '--json']
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s['images'], s['counted'], s['failed']) == (4, 3, 1)
    rows = list(csv.DictReader(out.open()))
    assert [Path(x['image']).name for x in rows] == ['coins.png', 'forest.jpg', 'trees.jpg', 'zz-broken.jpg']
    assert rows[3]['error'] and not rows[3]['count'] and float(rows[0]['count']) > 5
    single = json.loads(_cli('count', COINS, '--box', *COIN_BOXES[0], '--box', *COIN_BOXES[1], '--json').stdout)
    assert float(rows[0]['count']) == pytest.approx(single['count'], rel=1e-3)
    again = json.loads(_cli(*args).stdout)
    assert again['already_done'] == 4 and again['counted'] == 0 and len(list(csv.DictReader(out.open()))) == 4


def _folder(tmp: Path, kind: str) -> Path:
    "An empty folder, a folder with no images, or a path that does not exist."
    d = tmp / kind
    if kind != 'nowhere': d.mkdir()
    if kind == 'text-only': (d / 'a.txt').write_text('x')
    return d


@pytest.mark.parametrize('kind,says', [('empty', 'folder is empty'), ('text-only', 'no image files'),
                                       ('nowhere', 'no such file or folder')])
def test_batch_bad_inputs_are_one_line_errors(tmp_path, kind, says):
    r = _cli('batch', _folder(tmp_path, kind), '--exemplars-from', COINS, '--box', *COIN_BOXES[0], '--out', tmp_path / 'o.csv')
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / 'o.csv').exists()


def test_batch_refuses_a_csv_that_is_not_ours_and_leaves_it(tmp_path):
    theirs = tmp_path / 'theirs.csv'; theirs.write_text('name,score\nbob,3\n')
    r = _cli('batch', COINS, '--exemplars-from', COINS, '--box', *COIN_BOXES[0], '--out', theirs)
    assert r.returncode == 2 and 'not a segcount batch table' in r.stderr
    assert theirs.read_text() == 'name,score\nbob,3\n'


# --- tiles
def test_a_mosaic_needing_tiles_counts_four_times_the_photo(predictor, real):
    "A 2x2 mosaic of a dense aerial photo (small crowns): one pass would shrink it; tiles count it at its scale."
    g = next(s for s in real if s.name.startswith('yell_528'))
    W, H = g.size
    one, four = predictor.predict(g.image, g.boxes), predictor.predict(copies_of(g.image, 2 * W, 2 * H), g.boxes)
    assert one.tiles == 1 and four.tiles > 1 and 'tiles' in four.note
    assert four.count == pytest.approx(4 * one.count, rel=0.10), (one.count, four.count)
    assert abs(len(four.points) - round(four.count)) <= max(1, 0.05 * four.count)


def test_bench_mosaic_on_the_coins(real, tmp_path):
    "`segcount bench mosaic`: the coins photo alone and as a 2x2 mosaic, the ratio beside both counts."
    gf = write_groups(tmp_path / 'groups.json', [real[0]])
    r = _cli('bench', 'mosaic', '--root', gf, '--json')
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    row, = res['rows']
    assert res['n'] == 1 and row['id'] == real[0].name and 20 < row['single'] < 30
    assert row['ratio'] == pytest.approx(row['mosaic'] / (4 * row['single']))
    assert res['within'] == int(abs(row['ratio'] - 1) <= 0.10)
    r = _cli('bench', 'mosaic')
    assert r.returncode == 2 and 'bench mosaic needs --root' in r.stderr
