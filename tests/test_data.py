"Behaviour tests for `segcount.data` (images, boxes, densities, FSC-147 and groups files, batches)."
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segcount.data import (GROUPS_FORMAT, CountingDataset, FSC147, Sample, SegcountError, atomic_write,
                           collate_counting, crop_exemplars, density_from_points, image_size, load_image,
                           read_groups, read_json, resize_sample, samples_to_batch, sigma_rule, to_tensor,
                           validate_boxes, validate_points, write_fsc147, write_groups)

torch.set_num_threads(1)
ORIENTATION = 0x0112
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- helpers
def marked_image(w=60, h=40):
    "Grey image with a red 12x12 block at the stored top-left corner."
    a = np.full((h, w, 3), 128, np.uint8)
    a[:12, :12] = (255, 0, 0)
    return Image.fromarray(a)


def is_red(px):
    r, g, b = px
    return r > 200 and g < 60 and b < 60


def make_sample(name='a', w=96, h=64, n=5, seed=0, klass='dots'):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    pts = rng.uniform([2, 2], [w - 2, h - 2], size=(n, 2)).astype(np.float32)
    boxes = np.array([[4, 4, 20, 18], [30, 10, 44, 30]], np.float32)
    return Sample(name, img, boxes, pts, klass=klass)


def write_layout(root, images, ann, splits=None, classes=None):
    "An FSC-147 folder written by hand (independent of `write_fsc147`)."
    root = Path(root)
    (root / 'images_384_VarV2').mkdir(parents=True)
    for name, img in images.items(): img.save(root / 'images_384_VarV2' / name, quality=95)
    (root / 'annotation_FSC147_384.json').write_text(json.dumps(ann))
    (root / 'Train_Test_Val_FSC_147.json').write_text(json.dumps(splits or {'train': list(ann), 'val': [], 'test': []}))
    if classes is not None:
        (root / 'ImageClasses_FSC147.txt').write_text(''.join(f'{k}\t{v}\n' for k, v in classes.items()))
    return root


def corners(x1, y1, x2, y2): return [[x1, y1], [x1, y2], [x2, y2], [x2, y1]]


@pytest.fixture
def fsc(tmp_path):
    imgs = {'1.jpg': Image.new('RGB', (120, 80), (0, 90, 0)), '2.jpg': Image.new('RGB', (100, 80), (90, 0, 0))}
    ann = {'1.jpg': {'box_examples_coordinates': [corners(10, 12, 30, 28), corners(50, 40, 70, 61)],
                     'points': [[20, 20], [60, 50], [119.5, 79.5], [0, 0]], 'H': 80, 'W': 120},
           '2.jpg': {'box_examples_coordinates': [corners(5, 5, 15, 15)], 'points': [[10, 10]],
                     'target_class': 'red', 'other_points': {'blue': [[50, 50]]}}}
    return write_layout(tmp_path / 'fsc', imgs, ann, {'train': ['1.jpg'], 'val': ['2.jpg'], 'test': []},
                        {'1.jpg': 'green things', '2.jpg': 'red things'})


# ---------------------------------------------------------------- atomic_write
def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / 'x.json'
    with atomic_write(p) as f: f.write('{"a": 1}')
    assert json.loads(p.read_text()) == {'a': 1}
    with atomic_write(p, 'wb') as f: np.save(f, np.arange(3))
    with open(p, 'rb') as f: assert np.load(f).tolist() == [0, 1, 2]


def test_atomic_write_failure_leaves_nothing(tmp_path):
    p = tmp_path / 'x.txt'
    p.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_write(p) as f:
            f.write('new but half')
            raise RuntimeError('disk on fire')
    assert p.read_text() == 'old'
    assert [q.name for q in tmp_path.iterdir()] == ['x.txt']
    with pytest.raises(ZeroDivisionError):
        with atomic_write(tmp_path / 'fresh.txt') as f: f.write(str(1 / 0))
    assert not (tmp_path / 'fresh.txt').exists() and len(list(tmp_path.iterdir())) == 1


def test_atomic_write_missing_folder_is_user_error(tmp_path):
    with pytest.raises(SegcountError, match='does not exist'):
        with atomic_write(tmp_path / 'nope' / 'x.txt') as f: f.write('x')


# ---------------------------------------------------------------- load_image
@pytest.mark.parametrize('orientation,size,red_at', [
    (1, (60, 40), (2, 2)),          # as stored
    (3, (60, 40), (57, 37)),        # rotated 180: block goes bottom-right
    (6, (40, 60), (37, 2)),         # rotate 90 cw for display: top-left -> top-right
    (8, (40, 60), (2, 57)),         # rotate 90 ccw: top-left -> bottom-left
])
def test_exif_orientation_applied(tmp_path, orientation, size, red_at):
    im = marked_image()
    ex = im.getexif(); ex[ORIENTATION] = orientation
    p = tmp_path / f'o{orientation}.jpg'
    im.save(p, exif=ex, quality=95)
    out = load_image(p)
    assert out.mode == 'RGB' and out.size == size
    assert image_size(p) == size
    assert is_red(out.getpixel(red_at))


def test_16bit_png_scaled_by_format_max(tmp_path):
    a = np.array([[0, 257 * 100, 65535], [257, 32896, 65535]], np.uint16)
    Image.fromarray(a).save(tmp_path / 'g16.png')
    assert Image.open(tmp_path / 'g16.png').mode.startswith('I;16')
    out = np.asarray(load_image(tmp_path / 'g16.png'))
    assert out.shape == (2, 3, 3)
    assert out[..., 0].tolist() == [[0, 100, 255], [1, 128, 255]]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_float_and_int32_images(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), 'F').save(tmp_path / 'f.tif')
    assert np.asarray(load_image(tmp_path / 'f.tif'))[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[0, 1000, 4000]], np.int32), 'I').save(tmp_path / 'i.tif')
    # above 255 and up to 65535: 16-bit semantics (divide by 257)
    assert np.asarray(load_image(tmp_path / 'i.tif'))[0, :, 0].tolist() == [0, 4, 16]
    Image.fromarray(np.array([[0, 50, 200]], np.int32), 'I').save(tmp_path / 'i8.tif')
    assert np.asarray(load_image(tmp_path / 'i8.tif'))[0, :, 0].tolist() == [0, 50, 200]


def test_alpha_palette_gray_to_rgb(tmp_path):
    Image.new('RGBA', (4, 4), (255, 0, 0, 128)).save(tmp_path / 'rgba.png')
    r, g, b = load_image(tmp_path / 'rgba.png').getpixel((1, 1))
    assert r == 255 and 120 <= g <= 135 and g == b          # half red over white = pink
    Image.new('LA', (4, 4), (0, 0)).save(tmp_path / 'la.png')
    assert load_image(tmp_path / 'la.png').getpixel((0, 0)) == (255, 255, 255)
    pal = Image.new('P', (4, 4), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    pal.save(tmp_path / 'p.png')
    assert load_image(tmp_path / 'p.png').getpixel((0, 0)) == (0, 0, 255)
    pal.save(tmp_path / 'pt.png', transparency=1)          # palette index 1 transparent -> white
    assert load_image(tmp_path / 'pt.png').getpixel((0, 0)) == (255, 255, 255)
    Image.new('L', (4, 4), 77).save(tmp_path / 'l.png')
    assert load_image(tmp_path / 'l.png').getpixel((0, 0)) == (77, 77, 77)
    Image.new('1', (4, 4), 1).save(tmp_path / 'b.png')
    assert load_image(tmp_path / 'b.png').getpixel((0, 0)) == (255, 255, 255)
    Image.new('CMYK', (8, 8), (0, 255, 255, 0)).save(tmp_path / 'cmyk.jpg')
    assert is_red(load_image(tmp_path / 'cmyk.jpg').getpixel((4, 4)))


def test_bad_files_name_the_file(tmp_path):
    full = tmp_path / 'full.jpg'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8)).save(full, quality=90)
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(SegcountError) as e: load_image(cut)
    msg = str(e.value)
    assert 'cut.jpg' in msg and 'truncated' in msg and '\n' not in msg
    (tmp_path / 'text.png').write_text('hello, not pixels')
    with pytest.raises(SegcountError, match=r'text\.png: cannot read image: not an image file'): load_image(tmp_path / 'text.png')
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(SegcountError, match=r'empty\.jpg'): load_image(tmp_path / 'empty.jpg')
    with pytest.raises(SegcountError, match=r'ghost\.jpg: no such file'): load_image(tmp_path / 'ghost.jpg')
    with pytest.raises(SegcountError, match='is a folder'): load_image(tmp_path)
    # a header that promises pixels that are not there
    hdr = tmp_path / 'hdr.png'
    Image.new('RGB', (50, 50)).save(hdr)
    hdr.write_bytes(hdr.read_bytes()[:60])
    with pytest.raises(SegcountError, match=r'hdr\.png'): load_image(hdr)


def test_large_jpeg_decoded_small(tmp_path):
    p = tmp_path / 'big.jpg'
    Image.new('RGB', (4000, 3000), (10, 20, 200)).save(p, quality=60)
    im, (sx, sy) = load_image(p, max_pixels=1_000_000, return_scale=True)
    # the decoder shrank it by 4 (draft), no resampling afterwards
    assert im.size == (1000, 750) and (sx, sy) == (0.25, 0.25)
    im, (sx, sy) = load_image(p, max_pixels=100_000, return_scale=True)   # beyond /8: draft then resize
    assert im.width * im.height <= 100_000 and abs(sx - im.width / 4000) < 1e-12


def test_large_png_resized_or_refused(tmp_path):
    Image.new('RGB', (2000, 1000), (0, 0, 0)).save(tmp_path / 'wide.png')
    im, (sx, sy) = load_image(tmp_path / 'wide.png', max_pixels=800_000, return_scale=True)
    assert im.width * im.height <= 800_000 and abs(im.width / im.height - 2) < 0.01
    assert abs(sx - im.width / 2000) < 1e-12 and abs(sy - im.height / 1000) < 1e-12
    with pytest.raises(SegcountError, match=r'wide\.png: image too large'):
        load_image(tmp_path / 'wide.png', max_pixels=100_000)


def test_huge_jpeg_bounded_memory(tmp_path):
    "A 12000x9000 (108 Mpixel, 324 MB decoded) photo loads downscaled in a fresh process using ~1/4 of that."
    p = tmp_path / 'huge.jpg'
    subprocess.run([sys.executable, '-c', f"from PIL import Image; Image.new('RGB', (12000, 9000), (1, 2, 3)).save({str(p)!r}, quality=50)"], check=True)
    code = ("import resource, segcount.data as d\n"
            "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"im, s = d.load_image({str(p)!r}, return_scale=True)\n"
            "r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(im.size[0], im.size[1], s[0], (r1 - r0) / 1024)")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    out = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True, text=True, env=env).stdout.split()
    w, h, s, mb = int(out[0]), int(out[1]), float(out[2]), float(out[3])
    assert w * h <= 50_000_000 and (w, h) == (6000, 4500) and s == 0.5
    assert mb < 200, f'peak memory grew by {mb:.0f} MB'


def test_to_tensor():
    t = to_tensor(Image.new('RGB', (5, 3), (255, 0, 51)))
    assert t.shape == (3, 3, 5) and t.dtype == torch.float32
    assert torch.allclose(t[:, 1, 1], torch.tensor([1.0, 0.0, 0.2]))
    assert to_tensor(Image.new('L', (2, 2), 255)).shape == (3, 2, 2)
    assert to_tensor(np.zeros((4, 6, 3), np.uint8)).shape == (3, 4, 6)


# ---------------------------------------------------------------- boxes and points
def test_validate_boxes_accepts_and_clips():
    b = validate_boxes([[1, 2, 10, 12], [-0.9, -1, 60.9, 40.5]], (60, 40))
    assert b.dtype == np.float32 and b.tolist() == [[1, 2, 10, 12], [0, 0, 60, 40]]
    assert validate_boxes([3, 3, 9, 9], (60, 40)).shape == (1, 4)


@pytest.mark.parametrize('boxes,msg', [
    ([[10, 5, 10, 20]], 'src.json: box 1 has x2 <= x1 ([10, 5, 10, 20])'),
    ([[0, 0, 5, 5], [1, 20, 8, 3]], 'src.json: box 2 has y2 <= y1 ([1, 20, 8, 3])'),
    ([[0, 0, 5, 5], [50, 30, 62, 41]], 'src.json: box 2 [50, 30, 62, 41] lies outside the 60x40 image'),
    ([[-3, 0, 5, 5]], 'box 1 [-3, 0, 5, 5] lies outside'),
    ([], 'src.json: no exemplar boxes'),
    ([[0, 0, 2, 2]] * 33, '33 exemplar boxes, at most 32'),
    ([[0, 0, float('nan'), 2]], 'box 1 is not finite'),
    ([[0, 0, 2]], 'boxes must be a list of [x1, y1, x2, y2]'),
    ([[0, 0, 0.5, 3]], 'box 1 is smaller than 1 pixel'),
    ('abc', 'boxes must be numbers'),
])
def test_validate_boxes_errors(boxes, msg):
    with pytest.raises(SegcountError) as e: validate_boxes(boxes, (60, 40), 'src.json')
    assert msg in str(e.value) and '\n' not in str(e.value)


def test_validate_points():
    p = validate_points([[0, 0], [60.5, 40.9], [-1, 3]], (60, 40))
    assert p.dtype == np.float32 and p.tolist() == [[0, 0], [60, 40], [0, 3]]
    assert validate_points([], (60, 40)).shape == (0, 2)
    with pytest.raises(SegcountError, match=r'^g\.json: point 2 \[1, 42\] lies outside the 60x40 image$'):
        validate_points([[1, 1], [1, 42]], (60, 40), 'g.json')
    with pytest.raises(SegcountError, match='point 1 is not finite'): validate_points([[np.inf, 1]], (60, 40))


# ---------------------------------------------------------------- resize and crops
def test_resize_sample_maps_everything():
    s = make_sample(w=150, h=100)
    s = replace(s, region=(0, 0, 75, 100), density=density_from_points(s.points, s.size, boxes=s.boxes))
    r = resize_sample(s, 384)
    assert r.size == (576, 384)
    assert np.allclose(r.points, s.points * 3.84, atol=1e-3)
    assert np.allclose(r.boxes, s.boxes * 3.84, atol=1e-3)
    assert np.allclose(r.region, (0, 0, 288, 384))
    assert r.density.shape == (384, 576) and abs(r.density.sum() - s.count) < 1e-3
    assert s.size == (150, 100)                   # original untouched
    small = resize_sample(r, 50)                  # downscaling keeps the sum too
    assert small.size == (75, 50) and abs(small.density.sum() - s.count) < 1e-3
    # the peak of the resized density stays on a dot
    iy, ix = np.unravel_index(np.argmax(r.density), r.density.shape)
    assert np.min(np.hypot(r.points[:, 0] - ix - 0.5, r.points[:, 1] - iy - 0.5)) < 8


def test_resize_rounds_width():
    s = make_sample(w=303, h=384)
    assert resize_sample(s, 384).size == (303, 384)
    assert resize_sample(make_sample(w=384, h=303), 384).size == (487, 384)


def test_crop_exemplars_content():
    a = np.zeros((40, 100, 3), np.uint8); a[:, :50, 0] = 255; a[:, 50:, 2] = 255
    img = Image.fromarray(a)
    c = crop_exemplars(img, [[10, 10, 40, 30], [40, 0, 60, 20], [70, 5, 90, 35]])
    assert c.shape == (3, 3, 128, 128) and c.dtype == torch.float32
    assert torch.allclose(c[0, 0], torch.ones(128, 128)) and c[0, 2].abs().max() == 0
    assert (c[1, 0, :, :60] > 0.99).all() and (c[1, 2, :, 68:] > 0.99).all()    # red | blue
    assert torch.allclose(c[2, 2], torch.ones(128, 128))
    assert torch.allclose(crop_exemplars(to_tensor(img), [[10, 10, 40, 30]], size=32), crop_exemplars(img, [[10, 10, 40, 30]], size=32))


# ---------------------------------------------------------------- densities
def test_density_sum_equals_count_even_at_borders():
    W, H = 64, 48
    pts = [[0, 0], [64, 48], [0, 47.99], [63.9, 0], [32, 0], [0, 24], [32, 24]]
    for sigma in (None, 1.0, 5.0, 16.0):
        d = density_from_points(pts, (W, H), sigma=sigma)
        assert d.shape == (H, W) and d.dtype == np.float32
        assert abs(d.sum(dtype=np.float64) - len(pts)) < 1e-3
        assert d.min() >= 0


def test_density_3000_dots_fast_and_exact():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, [576, 384], size=(3000, 2))
    t0 = time.perf_counter()
    d = density_from_points(pts, (576, 384))
    dt = time.perf_counter() - t0
    assert abs(d.sum(dtype=np.float64) - 3000) < 1e-3
    assert dt < 3.0, f'{dt:.2f} s for 3000 dots'
    d2 = density_from_points(pts, (576, 384), boxes=[[0, 0, 40, 40]])    # sigma 10 from the exemplar
    assert abs(d2.sum(dtype=np.float64) - 3000) < 1e-3


def test_density_shape_follows_sigma_rule():
    # one dot: its kernel has the chosen sigma (second moment ~ sigma^2 when far from borders)
    for boxes, sigma in (([[0, 0, 24, 16]], 5.0), ([[0, 0, 200, 200]], 16.0), ([[0, 0, 2, 2]], 1.0)):
        d = density_from_points([[50.5, 50.5]], (101, 101), boxes=boxes)
        ys, xs = np.mgrid[:101, :101] + 0.5
        var_x = float((d * (xs - 50.5) ** 2).sum() / d.sum())
        assert abs(np.sqrt(var_x) - sigma) < 0.15 * sigma, (sigma, np.sqrt(var_x))
        assert np.unravel_index(d.argmax(), d.shape) == (50, 50)
    assert np.allclose(sigma_rule([[0, 0], [3, 4]], [[0, 0, 10, 30], [0, 0, 30, 10]]), 5.0)   # side 20 / 4
    # k-NN rule: 0.3 x mean distance to 3 nearest neighbours, clipped to [1, 16]
    grid = np.array([[x, y] for x in range(0, 100, 10) for y in range(0, 100, 10)], float)
    s = sigma_rule(grid)
    assert np.isclose(s[55], 3.0)                 # interior point: 3 neighbours at distance 10
    assert np.allclose(sigma_rule([[0, 0], [100, 0]]), 16.0)  # 0.3 * 100 = 30 -> clipped
    assert np.allclose(sigma_rule([[0, 0], [1, 0]]), 1.0)     # 0.3 -> clipped to 1
    assert np.allclose(sigma_rule([[5, 5]]), 4.0)             # lone dot: default
    assert sigma_rule(np.zeros((0, 2))).shape == (0,)


def test_density_explicit_sigma_and_empty():
    d = density_from_points([[10, 10], [30, 10]], (40, 20), sigma=[1.0, 4.0])
    assert d[10, 10] > d[10, 30] and abs(d.sum() - 2) < 1e-4
    assert density_from_points([], (40, 20)).sum() == 0
    with pytest.raises(SegcountError, match='sigma must be > 0'): density_from_points([[1, 1]], (4, 4), sigma=0)


# ---------------------------------------------------------------- JSON
def test_read_json_reports_line_and_column(tmp_path):
    p = tmp_path / 'a.json'
    p.write_text('{\n  "x": [1, 2,\n  ]\n}')
    with pytest.raises(SegcountError, match=r'a\.json: malformed JSON at line 3 column 3'): read_json(p)
    with pytest.raises(SegcountError, match='no such file'): read_json(tmp_path / 'b.json')


# ---------------------------------------------------------------- FSC-147
def test_fsc147_reads_layout(fsc):
    ds = FSC147(fsc, 'train')
    assert len(ds) == 1 and ds.names == ['1.jpg']
    s = ds[0]
    assert s.name == '1.jpg' and s.klass == 'green things' and s.size == (120, 80)
    assert s.boxes.tolist() == [[10, 12, 30, 28], [50, 40, 70, 61]]
    assert s.count == 4 and s.points.tolist()[2] == [119.5, 79.5]
    assert s.density.shape == (80, 120) and abs(s.density.sum() - 4) < 1e-3
    assert s.meta['W'] == 120
    v = FSC147(fsc, 'val')['2.jpg']
    assert v.meta['target_class'] == 'red' and v.meta['other_points'] == {'blue': [[50, 50]]}
    assert len(FSC147(fsc)) == 2                 # no split: every annotated image
    assert FSC147(fsc).classes == {'1.jpg': 'green things', '2.jpg': 'red things'}


def test_fsc147_uses_npy_density(fsc):
    (fsc / 'gt_density_map_adaptive_384_VarV2').mkdir()
    d = np.zeros((80, 120), np.float32); d[5, 5] = 3.5
    np.save(fsc / 'gt_density_map_adaptive_384_VarV2' / '1.npy', d)
    s = FSC147(fsc, 'train')[0]
    assert s.density[5, 5] == 3.5 and s.density.sum() == 3.5
    np.save(fsc / 'gt_density_map_adaptive_384_VarV2' / '1.npy', np.zeros((10, 10), np.float32))
    with pytest.raises(SegcountError, match=r'1\.npy: density map is 10x10, image is 120x80'): FSC147(fsc, 'train')[0]


def test_fsc147_errors(fsc, tmp_path):
    with pytest.raises(SegcountError, match="no split 'holdout' \\(has: train, val, test\\)"): FSC147(fsc, 'holdout')
    with pytest.raises(SegcountError, match='no such folder'): FSC147(tmp_path / 'nowhere')
    ann = fsc / 'annotation_FSC147_384.json'
    good = ann.read_text()
    ann.write_text(good[:40])
    with pytest.raises(SegcountError, match=r'annotation_FSC147_384\.json: malformed JSON at line 1 column'): FSC147(fsc, 'train')
    a = json.loads(good)
    a['1.jpg']['box_examples_coordinates'][1] = corners(50, 40, 140, 61)
    ann.write_text(json.dumps(a))
    with pytest.raises(SegcountError, match=r"annotation_FSC147_384\.json: image '1\.jpg': box 2 \[50, 40, 140, 61\] lies outside the 120x80 image"):
        FSC147(fsc, 'train')[0]
    a = json.loads(good); del a['2.jpg']['points']
    ann.write_text(json.dumps(a))
    with pytest.raises(SegcountError, match="image '2.jpg': missing 'points'"): FSC147(fsc)['2.jpg']
    a = json.loads(good); del a['2.jpg']
    ann.write_text(json.dumps(a))
    with pytest.raises(SegcountError, match="1 image\\(s\\) of split 'val' have no annotation \\(first: '2.jpg'\\)"): FSC147(fsc, 'val')
    ann.write_text(good)
    (fsc / 'images_384_VarV2' / '1.jpg').unlink()
    with pytest.raises(SegcountError, match=r'images_384_VarV2/1\.jpg: no such file'): FSC147(fsc, 'train')[0]
    (fsc / 'Train_Test_Val_FSC_147.json').unlink()
    with pytest.raises(SegcountError, match=r'Train_Test_Val_FSC_147\.json: no such file'): FSC147(fsc, 'train')
    (fsc / 'ImageClasses_FSC147.txt').write_text('3.jpg no tab here\n')
    with pytest.raises(SegcountError, match=r"ImageClasses_FSC147\.txt: line 1: expected 'name<TAB>class'"): FSC147(fsc)


def test_write_fsc147_round_trip(tmp_path):
    samples = [make_sample('a.jpg', seed=1), make_sample('b.jpg', seed=2, klass='other')]
    root = write_fsc147(tmp_path / 'gen', samples, splits={'train': ['a.jpg'], 'val': ['b.jpg'], 'test': []}, densities=True)
    ds = FSC147(root, 'val')
    s = ds[0]
    assert s.klass == 'other' and np.allclose(s.points, samples[1].points, atol=1e-3)
    assert np.allclose(s.boxes, samples[1].boxes) and abs(s.density.sum() - s.count) < 1e-3
    assert (root / 'gt_density_map_adaptive_384_VarV2' / 'b.npy').exists()


# ---------------------------------------------------------------- groups files
def test_groups_round_trip(tmp_path):
    samples = [replace(make_sample('336-strawberries', seed=3), region=(0, 0, 48, 64)),
               make_sample('336-bowls', seed=4, klass=None)]
    p = write_groups(tmp_path / 'out' / 'groups.json', samples, image_format='png')
    doc = json.loads(p.read_text())
    assert doc['format'] == GROUPS_FORMAT and doc['entries'][0]['image'] == 'images/336-strawberries.png'
    assert 'class' not in doc['entries'][1] and doc['entries'][0]['region'] == [0, 0, 48, 64]
    g = read_groups(p)
    assert len(g) == 2 and g.ids == ['336-strawberries', '336-bowls']
    for a, b in zip(samples, g):
        assert b.name == a.name and b.klass == a.klass and b.region == a.region
        assert np.allclose(b.points, a.points, atol=1e-3) and np.allclose(b.boxes, a.boxes)
        assert np.array_equal(np.asarray(b.image), np.asarray(a.image))
    # entries given as dicts are checked and written as they are
    q = write_groups(tmp_path / 'out' / 'again.json', [dict(e) for e in doc['entries']])
    assert [s.name for s in read_groups(q)] == g.ids


def test_groups_paths_relative_to_file_and_exif(tmp_path):
    im = marked_image()
    ex = im.getexif(); ex[ORIENTATION] = 6
    (tmp_path / 'pics').mkdir()
    im.save(tmp_path / 'pics' / 'side.jpg', exif=ex)
    # coordinates refer to the upright 40x60 image: x up to 40, y up to 60
    doc = {'format': GROUPS_FORMAT, 'entries': [{'id': 'x', 'image': 'pics/side.jpg', 'boxes': [[28, 0, 40, 12]],
                                                 'points': [[34, 55]], 'class': 'red'}]}
    (tmp_path / 'g.json').write_text(json.dumps(doc))
    s = read_groups(tmp_path / 'g.json')[0]
    assert s.size == (40, 60) and s.klass == 'red' and s.count == 1
    ex_crop = crop_exemplars(s.image, s.boxes, size=8)
    assert ex_crop[0, 0].mean() > 0.8 and ex_crop[0, 1].mean() < 0.3     # the box is on the red block


@pytest.mark.parametrize('doc,msg', [
    ({'entries': []}, 'not a groups file'),
    ({'format': 'segcount-groups/2', 'entries': []}, "unsupported format 'segcount-groups/2'"),
    ({'format': GROUPS_FORMAT, 'entries': []}, '"entries" must be a non-empty list'),
    ({'format': GROUPS_FORMAT, 'entries': [{'id': 'a', 'image': 'i.png', 'points': []}]}, "entry 1 ('a'): missing 'boxes'"),
    ({'format': GROUPS_FORMAT, 'entries': [{'id': 'a', 'image': 'i.png', 'boxes': [[1, 1, 5, 5]], 'points': []}] * 2},
     "entry 2 ('a'): duplicate id 'a'"),
    ({'format': GROUPS_FORMAT, 'entries': [{'id': 'a', 'image': 'gone.png', 'boxes': [[1, 1, 5, 5]], 'points': []}]},
     "entry 1 ('a'): image file 'gone.png' not found"),
    ({'format': GROUPS_FORMAT, 'entries': [{'id': 'a', 'image': 'i.png', 'boxes': [[1, 1, 5, 5]], 'points': [[3, 31]]}]},
     "entry 1 ('a'): point 1 [3, 31] lies outside the 20x10 image"),
    ({'format': GROUPS_FORMAT, 'entries': [{'id': 'a', 'image': 'i.png', 'boxes': [], 'points': []}]},
     "entry 1 ('a'): no exemplar boxes"),
    ({'format': GROUPS_FORMAT, 'entries': [{'id': 'a', 'image': 'i.png', 'boxes': [[1, 1, 5, 5]], 'points': [],
                                            'region': [0, 0, 30, 10]}]}, "entry 1 ('a'): region: box 1 [0, 0, 30, 10] lies outside"),
])
def test_groups_errors(tmp_path, doc, msg):
    Image.new('RGB', (20, 10)).save(tmp_path / 'i.png')
    (tmp_path / 'g.json').write_text(json.dumps(doc))
    with pytest.raises(SegcountError) as e: read_groups(tmp_path / 'g.json')
    assert msg in str(e.value) and str(e.value).startswith(str(tmp_path / 'g.json')) and '\n' not in str(e.value)


def test_groups_malformed_json(tmp_path):
    (tmp_path / 'g.json').write_text('{"format": "segcount-groups/1",\n "entries": [\n  {"id": "a",}\n ]}')
    with pytest.raises(SegcountError, match=r'g\.json: malformed JSON at line 3 column 14'): read_groups(tmp_path / 'g.json')


def test_write_groups_failure_leaves_nothing(tmp_path):
    good = make_sample('good', seed=5)
    bad = replace(make_sample('bad', seed=6), boxes=np.array([[30, 10, 20, 30]], np.float32))
    out = tmp_path / 'out'
    with pytest.raises(SegcountError, match="entry 2 \\('bad'\\): box 1 has x2 <= x1"):
        write_groups(out / 'groups.json', [good, bad])
    assert not (out / 'groups.json').exists()
    assert [p for p in out.rglob('*') if p.is_file()] == []      # the image of 'good' was removed again
    # an existing file is left as it was
    write_groups(out / 'groups.json', [good])
    before = (out / 'groups.json').read_text()
    with pytest.raises(SegcountError): write_groups(out / 'groups.json', [good, bad])
    assert (out / 'groups.json').read_text() == before


# ---------------------------------------------------------------- datasets and batches
def test_counting_dataset_and_collate(fsc):
    ds = CountingDataset(FSC147(fsc), height=64, n_exemplars=3)
    a, b = ds[0], ds[1]
    assert a['image'].shape == (3, 64, 96) and b['image'].shape == (3, 64, 80)
    assert a['exemplars'].shape == (3, 3, 128, 128)
    assert torch.equal(b['boxes'][0], b['boxes'][1])      # 1 box repeated to fill 3
    assert abs(a['density'].sum() - 4) < 1e-3 and a['count'] == 4
    assert torch.equal(ds[0]['image'], a['image']) and torch.equal(ds[0]['exemplars'], a['exemplars'])
    batch = collate_counting([a, b])
    assert batch['image'].shape == (2, 3, 64, 96) and batch['density'].shape == (2, 1, 64, 96)
    assert batch['exemplars'].shape == (2, 3, 3, 128, 128) and batch['boxes'].shape == (2, 3, 4)
    assert batch['valid'].shape == (2, 1, 64, 96)
    assert batch['valid'][1, 0, 0].sum() == 80 and batch['valid'][0].all()
    assert batch['image'][1, :, :, 80:].abs().sum() == 0 and batch['density'][1, :, :, 80:].sum() == 0
    assert torch.allclose(batch['density'].sum((1, 2, 3)), batch['count'], atol=1e-3)
    assert batch['name'] == ['1.jpg', '2.jpg'] and torch.isnan(batch['region']).all()
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_counting)
    assert next(iter(loader))['image'].shape == (2, 3, 64, 96)


def test_augmentation_flips_consistently():
    s = make_sample(w=96, h=64, n=6, seed=7)
    s = replace(s, region=(0, 0, 40, 64))
    ds = CountingDataset([s], height=64, augment=True, jitter=0.0)
    plain = CountingDataset([s], height=64)[0]
    torch.manual_seed(0)
    items = [ds[0] for _ in range(12)]
    flipped = [it for it in items if not torch.equal(it['image'], plain['image'])]
    assert 0 < len(flipped) < 12
    f = flipped[0]
    assert torch.equal(f['image'], plain['image'].flip(-1)) and torch.allclose(f['density'], plain['density'].flip(-1))
    assert torch.allclose(f['boxes'][:, [0, 2]], 96 - plain['boxes'][:, [2, 0]])
    assert torch.allclose(f['exemplars'], plain['exemplars'].flip(-1), atol=1e-5)
    assert torch.allclose(f['region'], torch.tensor([56., 0, 96, 64]))
    j = CountingDataset([s], height=64, augment=True)[0]
    assert j['image'].min() >= 0 and j['image'].max() <= 1 and abs(j['density'].sum() - 6) < 1e-3


def test_samples_to_batch_different_heights():
    b = samples_to_batch([make_sample(w=90, h=30), make_sample(w=50, h=50)], height=32, n_exemplars=2)
    assert b['image'].shape == (2, 3, 32, 96) and b['exemplars'].shape == (2, 2, 3, 128, 128)


def test_write_groups_ids_that_sanitise_alike(tmp_path):
    a, b = make_sample('cups/left', seed=8), make_sample('cups_left', seed=9)
    g = read_groups(write_groups(tmp_path / 'groups.json', [a, b], image_format='png'))
    assert g.ids == ['cups/left', 'cups_left']
    assert len({e['image'] for e in g.entries}) == 2
    assert np.array_equal(np.asarray(g[0].image), np.asarray(a.image)) and np.array_equal(np.asarray(g[1].image), np.asarray(b.image))


def test_rgb_png_with_colour_key_transparency(tmp_path):
    im = Image.new('RGB', (4, 4), (10, 20, 30)); im.putpixel((0, 0), (1, 2, 3))
    im.save(tmp_path / 'key.png', transparency=(10, 20, 30))
    out = load_image(tmp_path / 'key.png')
    assert out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (1, 2, 3)


def test_model_height_normalises_exemplar_size_both_ways():
    "Scale normalisation: exemplars land at `exemplar_side` px whether the photo's objects are large or small."
    from segcount.data import model_height, resize_rule
    big = [[0, 0, 96, 96]] * 3                            # 96 px objects in a 384-high photo -> shrink 4x
    assert model_height((576, 384), big, exemplar_side=24) == 96
    small = [[0, 0, 12, 12]]                              # 12 px -> enlarge 2x
    assert model_height((576, 384), small, exemplar_side=24) == 768
    assert model_height((576, 384), small, min_exemplar_side=24) == 768   # the older, upscale-only rule agrees
    assert model_height((576, 384), big, min_exemplar_side=24) == 384     # ... but never shrinks
    # bounds: a few huge objects keep MIN_MODEL_HEIGHT rows; tiny ones are capped by the upscale and pixel budgets
    assert model_height((400, 400), [[0, 0, 390, 390]], exemplar_side=24) == 64
    assert model_height((576, 384), [[0, 0, 2, 2]], exemplar_side=24, max_upscale=4) == 4 * 384
    h = model_height((4000, 1000), [[0, 0, 2, 2]], exemplar_side=24, max_pixels=1_000_000)
    assert h * 4 * h <= 1_000_000 * 1.01 and h > 384
    # the box sizes are measured at height 384, whatever the file's own size
    assert model_height((1152, 768), [[0, 0, 96, 96]], exemplar_side=24) == 192
    assert resize_rule({'exemplar_side': 24.0, 'proj_dim': 8}) == {'min_exemplar_side': None, 'exemplar_side': 24.0}


def test_counting_dataset_scale_jitter_is_fixed_per_item(fsc):
    "Each item's exemplar side is drawn once (cached features stay valid) and lies within exp(±jitter)."
    ds = CountingDataset(FSC147(fsc, 'train'), height=96, exemplar_side=20, scale_jitter=0.3, seed=1)
    sides = [ds.item_exemplar_side(i) for i in range(len(ds))]
    assert sides == [ds.item_exemplar_side(i) for i in range(len(ds))]
    assert all(20 * np.exp(-0.3) <= s <= 20 * np.exp(0.3) for s in sides) and len(set(sides)) == len(sides)
    it = ds[0]
    b = it['boxes'].numpy()
    assert abs(float(np.mean(((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2)) - sides[0]) < 0.1 * sides[0] + 1
    assert CountingDataset(FSC147(fsc, 'train'), exemplar_side=20).item_exemplar_side(0) == 20
