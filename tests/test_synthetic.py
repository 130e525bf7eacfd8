"Tests of segcount.synthetic: the scene generator (FSC-147 layout) and the paper's two-class benchmark (§4.1)."
import json
import time

import numpy as np
import pytest
from PIL import Image

from segcount.data import FSC147, Sample, SegcountError, load_image, read_classes, read_groups, validate_boxes
from segcount.synthetic import (COLOR_PHOTOS, EXCLUDED_SOURCES, GRAY_TEXTURES, generate_scenes, load_source,
                                make_scene, make_synthetic_set, make_two_class_image)

N = 10


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return generate_scenes(tmp_path_factory.mktemp('gen') / 'fsc', N, seed=5, progress=False)


def _ann(root):
    return json.loads((root / 'annotation_FSC147_384.json').read_text())


def _corners_to_box(c):
    a = np.asarray(c, float)
    return [a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()]


def _inside(points, box):
    x1, y1, x2, y2 = box
    p = np.asarray(points, float).reshape(-1, 2)
    return (p[:, 0] >= x1) & (p[:, 0] <= x2) & (p[:, 1] >= y1) & (p[:, 1] <= y2)


def test_layout_files(root):
    names = {p.name for p in root.iterdir()}
    assert {'annotation_FSC147_384.json', 'Train_Test_Val_FSC_147.json', 'ImageClasses_FSC147.txt', 'images_384_VarV2'} <= names
    assert not [p for p in root.rglob('*') if '.tmp-' in p.name]          # nothing half-written left
    ann, splits = _ann(root), json.loads((root / 'Train_Test_Val_FSC_147.json').read_text())
    assert set(splits) == {'train', 'val', 'test'} and all(splits.values())
    allnames = splits['train'] + splits['val'] + splits['test']
    assert sorted(allnames) == sorted(ann) and len(set(allnames)) == N    # a partition of the images
    classes = read_classes(root / 'ImageClasses_FSC147.txt')
    assert classes == {k: v['target_class'] for k, v in ann.items()}


def test_determinism(root, tmp_path):
    again = generate_scenes(tmp_path / 'again', N, seed=5, progress=False)
    for f in ('annotation_FSC147_384.json', 'Train_Test_Val_FSC_147.json', 'ImageClasses_FSC147.txt'):
        assert (root / f).read_bytes() == (again / f).read_bytes(), f
    for name in ('0.jpg', f'{N - 1}.jpg'):
        assert (root / 'images_384_VarV2' / name).read_bytes() == (again / 'images_384_VarV2' / name).read_bytes()
    other = generate_scenes(tmp_path / 'other', 3, seed=6, progress=False)
    assert _ann(other)['0.jpg'] != _ann(root)['0.jpg']
    # scene i does not depend on how many scenes are generated, nor on the number of worker processes
    assert _ann(generate_scenes(tmp_path / 'few', 2, seed=5, progress=False))['1.jpg'] == _ann(root)['1.jpg']
    par = generate_scenes(tmp_path / 'par', 3, seed=5, workers=2, progress=False)
    assert (par / 'images_384_VarV2' / '2.jpg').read_bytes() == (root / 'images_384_VarV2' / '2.jpg').read_bytes()
    assert {k: _ann(par)[k] for k in ('0.jpg', '2.jpg')} == {k: _ann(root)[k] for k in ('0.jpg', '2.jpg')}


def test_annotation_validity(root):
    for name, e in _ann(root).items():
        W, H = Image.open(root / 'images_384_VarV2' / name).size
        assert H == 384 and 384 <= W <= 768 and (e['W'], e['H']) == (W, H)
        corners = e['box_examples_coordinates']
        assert len(corners) == 3
        for c in corners:   # FSC-147 order: [[x1,y1],[x1,y2],[x2,y2],[x2,y1]]
            (x1, y1), (a, y2), (x2, b), (c2, d) = c
            assert (a, b, c2, d) == (x1, y2, x2, y1) and x2 > x1 and y2 > y1
        boxes = np.array([_corners_to_box(c) for c in corners])
        validate_boxes(boxes, (W, H), name, tol=0)                     # inside the image, not degenerate
        pts = np.asarray(e['points'], float)
        assert len(pts) >= 3
        assert ((pts >= 0) & (pts <= [W, H])).all()
        for b in boxes: assert _inside(pts, b).any()                   # each exemplar is on a target object
        assert e['target_class'] not in e['other_points']
        assert e['target_class'] in e['kinds'] and set(e['other_points']) <= set(e['kinds'])
        for cls, p in e['other_points'].items():
            p = np.asarray(p, float).reshape(-1, 2)
            assert ((p >= 0) & (p <= [W, H])).all(), cls


def test_exemplars_belong_to_target_kind():
    for seed in range(6):
        s = make_scene(np.random.default_rng([9, seed]))
        tgt = np.flatnonzero(s.object_kind == 0)
        for b in s.boxes:
            match = np.flatnonzero((np.abs(s.object_boxes - b) < 1e-4).all(1))
            assert len(match) and np.isin(match, tgt).any()             # the box is a target object's tight box
            x1, y1, x2, y2 = b.astype(int)
            lab = s.label_map[y1:y2, x1:x2]
            lab = lab[lab >= 0]
            top = np.bincount(lab).argmax()
            assert s.object_kind[top] == 0                            # mostly covered by a target object
        # one dot per target object, inside that object's tight box
        assert len(s.points) == len(tgt)
        ob = s.object_boxes[tgt]
        assert ((s.points >= ob[:, :2] - 1) & (s.points <= ob[:, 2:] + 1)).all()
        assert (s.visibility >= 0.5).all()
        # distractor dots are not in the target's list
        for p in s.other_points.values():
            assert not any((np.abs(s.points - q).sum(1) < 1e-6).any() for q in p)
        assert s.target_mask.any()


def test_fsc147_round_trip(root):
    ann = _ann(root)
    seen = 0
    for split in ('train', 'val', 'test'):
        ds = FSC147(root, split)
        for s in ds:
            e = ann[s.name]
            assert s.count == len(e['points']) and s.size[1] == 384
            np.testing.assert_allclose(s.boxes, [_corners_to_box(c) for c in e['box_examples_coordinates']], atol=1e-3)
            np.testing.assert_allclose(s.points, e['points'], atol=1e-3)
            assert s.klass == e['target_class'] == s.meta['target_class']
            assert abs(float(s.density.sum()) - s.count) < 1e-2 * max(1, s.count)
            seen += 1
    assert seen == N


def test_no_evaluation_photos(root):
    assert {'coins', 'cell'} <= EXCLUDED_SOURCES
    assert not (set(COLOR_PHOTOS) | set(GRAY_TEXTURES)) & EXCLUDED_SOURCES
    for name in EXCLUDED_SOURCES:
        with pytest.raises(ValueError): load_source(name)
    for e in _ann(root).values():
        for info in e['kinds'].values():
            assert info.get('source') not in EXCLUDED_SOURCES


def test_dense_scenes_covered():
    "A 30-image sample spans sparse to dense, with some scenes of > 150 small objects."
    scenes = [make_scene(np.random.default_rng([0, 0, i])) for i in range(30)]
    counts = np.array([s.count for s in scenes])
    size = np.array([np.median(np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1])) for s in scenes])
    assert ((counts > 150) & (size <= 20)).sum() >= 2, (counts, size)
    assert (counts <= 20).sum() >= 3 and counts.min() >= 3
    assert counts.max() >= 300


def test_generation_speed():
    "Lenient: well under a second of CPU per 384x576 scene (about 0.12 s here)."
    t = time.process_time()
    for i in range(8): make_scene(np.random.default_rng([1, i]), width=576)
    assert (time.process_time() - t) / 8 < 0.6


def _sample(name, W, H, boxes, points, klass, seed=0):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    return Sample(name, img, np.asarray(boxes, np.float32), np.asarray(points, np.float32), klass=klass)


def test_two_class_image():
    for seed in range(25):
        rng = np.random.default_rng(seed)
        Wt, Wo = int(rng.integers(384, 769)), int(rng.integers(384, 769))
        pts = np.stack([rng.uniform(0, Wt, 60), rng.uniform(0, 384, 60)], 1)
        bx = rng.uniform(0, Wt - 30, 3)
        boxes = np.stack([bx, np.full(3, 50.), bx + 20, np.full(3, 75.)], 1)
        t = _sample('t.jpg', Wt, 384, boxes, pts, 'apples', seed)
        o = _sample('o.jpg', Wo, 384, [[1, 1, 9, 9]], [[5, 5]], 'pears', seed + 100)
        p = make_two_class_image(t, o, rng)
        x1, y1, x2, y2 = p.region
        xt, wt = p.meta['target_crop']
        assert (y1, y2) == (0, 384) and p.size[1] == 384 and x2 - x1 == wt
        assert x1 == 0 or x2 == p.size[0]                                   # target strip on the left or right
        assert p.klass == 'apples' != p.meta['other_class']
        assert ((p.points[:, 0] >= x1) & (p.points[:, 0] < x2)).all()      # all kept dots inside the region
        assert ((p.boxes[:, 0] >= x1) & (p.boxes[:, 2] <= x2)).all()       # all exemplars inside the region
        np.testing.assert_allclose(p.boxes[:, 1::2], boxes[:, 1::2])
        kept = ((pts[:, 0] >= xt) & (pts[:, 0] < xt + wt)).sum()
        assert p.count == kept                                             # every target dot of the strip kept
        a, b = np.asarray(p.image), np.asarray(t.image)
        assert (a[:, int(x1):int(x2)] == b[:, xt:xt + wt]).all()            # the region is the target crop, untouched
        assert 0.2 * p.size[0] <= wt                                       # both parts are substantial
        assert p.size[0] - wt >= min(Wo, 0.3 * (Wt + Wo) / 2) - 1


def test_two_class_image_resizes_and_keeps_wide_exemplars():
    # exemplars at both edges force the whole target width; inputs of another height are resized to 384
    t = _sample('t.jpg', 600, 300, [[0, 10, 20, 30], [570, 10, 600, 30], [300, 100, 320, 120]], [[10, 20], [585, 20], [310, 110]], 'a')
    o = _sample('o.jpg', 400, 200, [[1, 1, 9, 9]], [[5, 5]], 'b')
    p = make_two_class_image(t, o, np.random.default_rng(0))
    assert p.size[1] == 384 and p.region[2] - p.region[0] == 768 and p.count == 3
    assert ((p.boxes[:, 0] >= p.region[0] - 1e-3) & (p.boxes[:, 2] <= p.region[2] + 1e-3)).all()


def test_make_synthetic_set(root, tmp_path):
    classes = read_classes(root / 'ImageClasses_FSC147.txt')
    path = make_synthetic_set(root, 'train', tmp_path / 'bench', seed=1, progress=False)
    ds = FSC147(root, 'train')
    g = read_groups(path)
    assert path == tmp_path / 'bench' / 'groups.json' and len(g) == len(ds)   # default n = size of the split
    doc = json.loads(path.read_text())
    assert doc['format'] == 'segcount-groups/1'
    targets = []
    for e, s in zip(doc['entries'], g):
        assert {'id', 'image', 'class', 'boxes', 'points', 'region'} <= set(e)
        _, t, o = e['id'].split('-')
        targets.append(f'{t}.jpg')
        assert classes[f'{t}.jpg'] == e['class'] != classes[f'{o}.jpg']     # paired with a different class
        img = load_image(tmp_path / 'bench' / e['image'])
        assert img.size == s.size and img.size[1] == 384
        x1, _, x2, _ = s.region
        assert ((s.points[:, 0] >= x1) & (s.points[:, 0] <= x2)).all()
        assert ((s.boxes[:, 0] >= x1 - 1e-3) & (s.boxes[:, 2] <= x2 + 1e-3)).all()
    assert sorted(targets) == sorted(ds.names)                             # every image is a target once
    again = make_synthetic_set(root, 'train', tmp_path / 'again', seed=1, progress=False)
    assert again.read_text() == path.read_text()                           # deterministic by seed
    n = len(ds) + 2
    p3 = make_synthetic_set(root, 'train', tmp_path / 'n', seed=0, n=n, progress=False)
    assert len(read_groups(p3)) == n                                        # n > split size cycles
    assert len(list((tmp_path / 'n' / 'images').iterdir())) == n


def test_make_synthetic_set_errors(root, tmp_path):
    with pytest.raises(SegcountError, match="no split 'nope'"):
        make_synthetic_set(root, 'nope', tmp_path / 'x', progress=False)
    with pytest.raises(SegcountError, match='no such folder'):
        make_synthetic_set(tmp_path / 'missing', 'test', tmp_path / 'x', progress=False)
    one = tmp_path / 'one'
    one.mkdir()
    for f in ('annotation_FSC147_384.json', 'Train_Test_Val_FSC_147.json'):
        (one / f).write_bytes((root / f).read_bytes())
    (one / 'images_384_VarV2').symlink_to(root / 'images_384_VarV2')
    names = list(_ann(root))
    (one / 'ImageClasses_FSC147.txt').write_text(''.join(f'{n}\tstars\n' for n in names))
    with pytest.raises(SegcountError, match='at least 2 classes'):
        make_synthetic_set(one, 'train', tmp_path / 'y', progress=False)
    (one / 'ImageClasses_FSC147.txt').write_text(''.join(f'{n}\tstars\n' for n in names[:1]))
    with pytest.raises(SegcountError, match='ImageClasses_FSC147.txt: no class for'):
        make_synthetic_set(one, 'train', tmp_path / 'y', progress=False)
    assert not (tmp_path / 'y').exists() or not list((tmp_path / 'y').rglob('*.jpg'))


def _sprite_folder(tmp_path):
    "Four RGBA object pictures in two groups, as data_scripts/fetch_sprites.py names them."
    d = tmp_path / 'sprites'; d.mkdir()
    for name, col, shape in [('fruit__apple', 'red', 'ellipse'), ('fruit__lime', 'green', 'ellipse'),
                             ('tool__brick', 'orange', 'rectangle'), ('tool__tile', 'blue', 'rectangle')]:
        im = Image.new('RGBA', (64, 64), (0, 0, 0, 0))
        getattr(__import__('PIL.ImageDraw', fromlist=['Draw']).Draw(im), shape)([8, 16, 56, 48], fill=col)
        im.save(d / f'{name}.png')
    return d


def test_sprite_kinds_and_look_alikes(tmp_path):
    "Sprites become kinds named after the picture, cropped to the object; distractors come from the same group."
    from segcount.synthetic import sprite_kind, list_sprites
    d = _sprite_folder(tmp_path)
    assert len(list_sprites(str(d))) == 4
    rng = np.random.default_rng(0)
    k = sprite_kind(rng, 96, str(d))
    assert k.name.endswith(' pictures') and k.info['type'] == 'sprite'
    assert k.template.size[0] == 96 and abs(k.template.size[1] - 64) <= 1   # a 3:2 object, longer side to 96
    for _ in range(5):
        o = sprite_kind(rng, 96, str(d), like=k)
        assert o.info['group'] == k.info['group'] and o.info['file'] != k.info['file']
    with pytest.raises(SegcountError, match='no PNG sprites'):
        list_sprites(str(tmp_path))


def test_scenes_with_sprites_and_taller_canvases(tmp_path):
    "Scenes drawn with sprites and a height range: exact labels, deterministic, the canvas within the range."
    d = _sprite_folder(tmp_path)
    kw = dict(sprites=str(d), sprite_prob=1.0, height=(384, 768), count_range=(3, 40))
    scenes = [make_scene(np.random.default_rng([4, i]), **kw) for i in range(6)]
    assert any(s.kinds[0].info['type'] == 'sprite' for s in scenes)
    for s in scenes:
        W, H = s.image.size
        assert 384 <= H <= 768 and s.count >= 3
        validate_boxes(s.boxes, (W, H)); assert (s.points[:, 0] < W).all() and (s.points[:, 1] < H).all()
    assert make_scene(np.random.default_rng([4, 0]), **kw).annotation() == scenes[0].annotation()
    root = generate_scenes(tmp_path / 'g', 3, seed=1, progress=False, sprites=d, height=(384, 512))
    assert len(FSC147(root)) == 3


def test_two_sprite_folders(tmp_path):
    "Several sprite folders act as one list sorted by file name (emoji beside photographed objects)."
    from segcount.synthetic import list_sprites
    d = _sprite_folder(tmp_path)
    e = tmp_path / 'photos'; e.mkdir()
    Image.new('RGBA', (40, 30), (200, 150, 0, 255)).save(e / 'fruit__banana.png')
    names = [p.name for p in list_sprites((str(d), str(e)))]
    assert names == sorted(names) and len(names) == 5 and 'fruit__banana.png' in names
    kw = dict(sprite_prob=1.0, count_range=(3, 12), n_kinds=(3, 3))
    files = {k.info['file'] for i in range(12)
             for k in make_scene(np.random.default_rng([7, i]), sprites=(str(d), str(e)), **kw).kinds}
    assert 'fruit__banana.png' in files and files & {'fruit__apple.png', 'tool__brick.png'}
    with pytest.raises(SegcountError, match='no PNG sprites'):
        generate_scenes(tmp_path / 'g', 2, progress=False, sprites=[d, tmp_path / 'empty'])


def test_photometric_jitter_changes_looks_not_labels():
    "Camera and staining looks vary the pixels only; strength 0 leaves the generator's scenes exactly as before."
    from segcount.synthetic import photometric_jitter
    c = np.random.default_rng(0).random((40, 60, 3)).astype(np.float32)
    outs = [photometric_jitter(c, np.random.default_rng(i), 1.0) for i in range(40)]
    assert all(o.shape == c.shape and o.dtype == np.float32 for o in outs)
    assert any(o.std() < 0.7 * c.std() for o in outs)                         # washed-out or dark looks occur
    assert any(np.allclose(o[..., 0], o[..., 1]) for o in outs)               # and grey ones
    assert all(np.array_equal(photometric_jitter(c, np.random.default_rng(i), 0.0), c) for i in range(5))
    a, b = make_scene(np.random.default_rng([2, 1])), make_scene(np.random.default_rng([2, 1]), photometric=1.0)
    np.testing.assert_array_equal(a.points, b.points)                        # same objects, other looks


def test_packed_scenes_touch_and_cover_the_canvas():
    "Packed scenes (a crate of apples, a canopy): target objects cover a large share of the canvas, ten times the usual."
    kw = dict(count_range=(20, 400))
    cover = lambda p: np.median([make_scene(np.random.default_rng([3, i]), packed_prob=p, **kw).target_mask.mean()
                                 for i in range(8)])
    usual, packed = cover(0.0), cover(1.0)
    assert packed > 0.3 and packed > 5 * usual, (usual, packed)
    a = make_scene(np.random.default_rng([3, 0]), packed_prob=1.0, **kw)
    b = make_scene(np.random.default_rng([3, 0]), packed_prob=1.0, **kw)
    np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))   # deterministic
    assert len(a.points) == a.count >= 3 and (a.visibility < 1).any()         # neighbours overlap a little


def test_no_occlusion_budget():
    "max_occlusion=0 (allowed by the check) draws scenes whose objects are all fully visible."
    for seed in range(8):
        s = make_scene(seed, max_occlusion=0.0)
        assert len(s.points) >= 3 and (s.visibility == 1).all()


def test_photo_folder_backgrounds_and_collages(tmp_path):
    "A folder of photos (`--photos`) adds them to the backgrounds and collage sources; without it, scenes stay as before."
    d = tmp_path / 'photos'; d.mkdir()
    red = np.zeros((300, 400, 3), np.uint8); red[..., 0] = 255
    Image.fromarray(red).save(d / 'pkg__red.png')
    kw = dict(photos=str(d), photo_prob=1.0, collage_prob=1.0, count_range=(3, 20))
    scenes = [make_scene(np.random.default_rng([6, i]), **kw) for i in range(12)]
    sources = {k.info['source'] for s in scenes for k in s.kinds if k.info['type'] == 'collage'}
    assert 'pkg__red.png' in sources                                         # collage kinds cut from the folder's photo
    assert any('red patches' == k.name for s in scenes for k in s.kinds)
    from segcount.synthetic import random_background
    bgs = [random_background(np.random.default_rng(i), 64, 48, photos=str(d), photo_prob=1.0) for i in range(20)]
    assert any(np.allclose(b[..., 1:], 0, atol=0.02) and b[..., 0].min() > 0.5 for b in bgs)   # some are the red photo
    a, b = make_scene(np.random.default_rng([6, 0])), make_scene(np.random.default_rng([6, 0]), photos=None)
    np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))
    root = generate_scenes(tmp_path / 'g', 2, seed=1, progress=False, photos=d, photo_prob=1.0)
    assert len(FSC147(root)) == 2
    with pytest.raises(FileNotFoundError, match='not a folder of photos'):
        make_scene(0, photos=str(tmp_path / 'none'))
