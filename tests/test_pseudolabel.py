"Tests of segcount.pseudolabel: K-means, the patch grid, masks, Eq. 5, the split runner, bad input."
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

torch.set_num_threads(1)

from segcount.counter import Counter, apply_mask
from segcount.metrics import iou
from segcount.data import Sample, SegcountError, resize_sample, write_fsc147
from segcount.pseudolabel import (KS, PseudoLabel, dot_box_mask, dots_kept, kmeans, kmeans_masks, kmeans_sweep,
                                  masks_from_embeddings, patch_grid, patch_size, pseudolabel_split, similarity_masks,
                                  smooth_masks, SWEEP_KS, sweep_height, two_kind_image)


# ------------------------------------------------------------------ K-means
def _blobs(k, n=600, d=16, seed=0, spread=8.0):
    g = np.random.default_rng(seed)
    centres = g.normal(0, spread, (k, d))
    y = g.integers(0, k, n)
    return (centres[y] + g.normal(0, 1, (n, d))).astype(np.float32), y


def test_kmeans_agrees_with_sklearn():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    for k in KS:
        X, y = _blobs(k, seed=k)
        lab, inertia = kmeans(torch.from_numpy(X), ks=KS, seed=0)
        sk = KMeans(k, n_init=4, random_state=0).fit(X)
        assert adjusted_rand_score(sk.labels_, lab[KS.index(k)].numpy()) > 0.99, k
        assert adjusted_rand_score(y, lab[KS.index(k)].numpy()) > 0.99, k
        assert inertia[KS.index(k)].item() == pytest.approx(sk.inertia_, rel=1e-3)


def test_kmeans_deterministic_and_valid():
    X, _ = _blobs(4, n=300)
    a, ia = kmeans(X, ks=(2, 3, 4, 5), seed=3)
    b, ib = kmeans(X, ks=(2, 3, 4, 5), seed=3)
    assert torch.equal(a, b) and torch.equal(ia, ib)
    for row, k in zip(a, (2, 3, 4, 5)): assert int(row.max()) < k            # labels stay below each row's K
    with pytest.raises(SegcountError, match='cannot make'): kmeans(X[:3], ks=(2, 6))


# ------------------------------------------------------------------ patches
def test_patch_grid_formula():
    h, w, r, (pw, ph), (W, H) = 5, 7, 16, (20.0, 12.0), (112, 80)
    b = patch_grid(h, w, r, (pw, ph), (W, H))
    assert b.shape == (h * w, 4)
    for i in range(h):
        for j in range(w):
            x1, y1, x2, y2 = b[i * w + j]
            cx, cy = j * r + r / 2, i * r + r / 2
            assert (x1, y1, x2, y2) == pytest.approx((max(cx - pw / 2, 0), max(cy - ph / 2, 0),
                                                      min(cx + pw / 2, W), min(cy + ph / 2, H)))
    inner = b[2 * w + 3]                                                    # far from the borders: full size, centred
    assert inner[2] - inner[0] == pytest.approx(pw) and inner[3] - inner[1] == pytest.approx(ph)
    assert ((inner[0] + inner[2]) / 2, (inner[1] + inner[3]) / 2) == pytest.approx((3 * r + r / 2, 2 * r + r / 2))
    assert patch_size(np.float32([[0, 0, 10, 20], [5, 5, 25, 15]])) == pytest.approx((15, 15))


# ------------------------------------------------------------------ masks
@pytest.fixture(scope='module')
def toy():
    return two_kind_image()   # 384×192: red discs left (targets), blue squares right


def test_two_kind_mask_selects_discs(toy):
    m = kmeans_masks(toy.image, toy.boxes, ks=(2, 3), mode='fast')
    assert m.shape == (2, 12, 24)
    left, right = m[0][:, :12].float().mean().item(), m[0][:, 12:].float().mean().item()
    assert left > 0.8 and right < 0.1, (left, right)


def test_exact_vs_fast_masks_agree_on_clear_case(toy):
    # at K = 2 the exact mode splits objects from the blank bottom rows; from K = 3 both modes split the kinds
    fast = kmeans_masks(toy.image, toy.boxes, ks=(3,), mode='fast')[0]
    exact = kmeans_masks(toy.image, toy.boxes, ks=(3,), mode='exact', crop=64)[0]
    assert exact[:, :12].float().mean() > 0.7 and exact[:, 12:].float().mean() < 0.1
    assert iou(fast[None], exact[None]).item() > 0.8


def test_alternative_masks():
    m = dot_box_mask(np.float32([[24, 24], [95, 40]]), (8, 8), (4, 8), 16)
    assert m.shape == (4, 8)
    assert m[1, 1] and m[2, 5]                                              # each dot's own cell
    assert m[2, 6] and m.sum().item() == 1 + 2                              # the (95, 40) box spans columns 5 and 6
    S = torch.arange(12.).view(3, 4)
    sm = similarity_masks(S, (0.2, 0.6))
    assert sm.shape == (2, 3, 4) and sm[0].sum() > sm[1].sum()
    assert torch.equal(sm[1], (S / 11) >= 0.6)


def test_union_of_the_exemplars_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0., 0.], [10., 0.], [0., 10.]])
    P = centres.repeat_interleave(10, 0) + 0.1 * torch.randn(30, 2, generator=g)      # 3 kinds, 10 cells each
    E = torch.tensor([[0.2, 0.], [0., 0.3], [9.8, 0.]])                               # 2 exemplars on kind 0, 1 on kind 1
    one = masks_from_embeddings(P, E.mean(0), (5, 6), ks=(3,))[0].flatten()
    union = masks_from_embeddings(P, E.mean(0), (5, 6), ks=(3,), exemplars=E)[0].flatten()
    assert torch.equal(one, torch.arange(30) < 10)                                    # f_B sits with kind 0
    assert torch.equal(union, torch.arange(30) < 20)                                  # + the third exemplar's kind
    assert bool((union | ~one).all())                                                 # a union only adds cells


def test_smooth_masks():
    ring = torch.zeros(5, 6, dtype=torch.bool); ring[1:4, 1:4] = True; ring[2, 2] = False
    assert torch.equal(smooth_masks(ring, ('fill',)), ring | (torch.arange(5)[:, None] == 2) & (torch.arange(6) == 2))
    gap = torch.ones(3, 7, dtype=torch.bool); gap[:, 3] = False                      # two halves, a one-cell gap
    assert bool(smooth_masks(gap, 'close').all())                                     # bridged, the border kept
    dot = torch.zeros(4, 4, dtype=torch.bool); dot[1, 1] = True
    assert smooth_masks(dot, ('dilate',)).sum().item() == 9
    stack = torch.stack([ring, ~ring])
    assert torch.equal(smooth_masks(stack, 'close+fill'), smooth_masks(stack, ('close', 'fill')))
    assert torch.equal(smooth_masks(stack, ()), stack)
    with pytest.raises(SegcountError, match='unknown mask smoothing'): smooth_masks(ring, 'blur')


def test_sweep_height_follows_the_counters_rule():
    s = Sample('a.jpg', Image.new('RGB', (400, 300)), np.float32([[0, 0, 12, 12], [20, 20, 32, 32]]), np.float32([[5, 5]]))
    class C: config = dict(exemplar_side=24.0)                                       # trained with 24-px exemplars
    assert sweep_height(s, C(), 'counter') == 600                                     # 12 px at height 300 -> 24 px at 600
    assert sweep_height(s, C()) == 384                                                # the default: the paper's height
    assert sweep_height(s, C(), 500) == 500 and sweep_height(s, C(), None) is None
    assert sweep_height(s, None, 'counter') == 384                                    # no rule: the paper's height


def test_dots_kept_maps_the_dots_onto_the_grid():
    pl = PseudoLabel('a', [2], 2, np.array([[True, False]]), np.array([[[True, False]]]), [0.], [0.], 2., 0., 0.,
                     size=(32, 16), stride=16)
    pts = np.float32([[10, 10], [40, 10]])                                            # in a 64×32 image: cells (0,0), (0,1)
    assert dots_kept(pl, pts, size=(64, 32)) == 0.5
    assert dots_kept(pl, pts / 2) == 0.5                                              # the same dots in the sweep's pixels
    assert dots_kept(pl, np.float32([[20, 10], [30, 10]]), size=(64, 32)) == 1.0      # both in cell (0,0) once mapped...
    assert dots_kept(pl, np.float32([[20, 10], [30, 10]])) == 0.0                     # ...in cell (0,1) if read unmapped


# ------------------------------------------------------------------ Eq. 5 with a controlled counter
class StubCounter(torch.nn.Module):
    "A counter whose density is the masked similarity map upsampled (each kept cell adds 1 to the count)."
    stride, delta = 16, 0.0
    config = {'stub': True}
    def __init__(self): super().__init__(); self.w = torch.nn.Parameter(torch.zeros(1))
    @property
    def device(self): return torch.device('cpu')
    def backbone_image(self, img):
        H, W = img.shape[-2:]
        return torch.zeros(img.shape[0], 1, math.ceil(H / 16), math.ceil(W / 16))
    def image_features(self, image=None, *, raw=None): return raw
    def exemplar_vector(self, ex): return torch.zeros(1, ex.shape[1], 1)
    def similarity(self, feat, vec): return torch.ones_like(feat)
    def apply_mask(self, S, mask, delta=None): return apply_mask(S, mask, self.delta if delta is None else delta)
    def regress(self, feat, S, size=None, mask=None, vec=None):
        D = F.interpolate(S, scale_factor=16, mode='nearest') / 256
        return D[..., :size[0], :size[1]]


def test_eq5_picks_the_closest_density(toy):
    c = StubCounter()
    s = resize_sample(toy, 384)                                              # what the sweep sees
    masks = kmeans_masks(s.image, s.boxes, ks=KS)                            # what the sweep will compute
    k0 = next(i for i in range(1, len(KS)) if sum(torch.equal(masks[i], m) for m in masks) == 1)
    D0 = F.interpolate(masks[k0][None, None].float(), scale_factor=16, mode='nearest')[0, 0] / 256
    s.density = D0.numpy()                                                   # D* = the density of mask k0
    pl = kmeans_sweep(s, c, ks=KS)
    assert isinstance(pl, PseudoLabel)
    assert pl.k == KS[k0] and pl.errors[k0] == pytest.approx(0, abs=1e-8)
    assert np.array_equal(pl.mask, masks[k0].numpy())
    manual = [float(((F.interpolate(m[None, None].float(), scale_factor=16)[0, 0] / 256 - D0) ** 2).sum()) for m in masks]
    assert pl.errors == pytest.approx(manual, rel=1e-5, abs=1e-8)
    assert pl.counts == pytest.approx([m.sum().item() for m in masks])
    assert pl.k == KS[int(np.argmin(manual))]
    given = kmeans_sweep(s, c, ks=KS, masks=masks.flip(0))                   # masks from elsewhere: only Eq. 4-5 run
    assert np.array_equal(given.masks, masks.flip(0).numpy()) and given.k == KS[len(KS) - 1 - k0]
    with pytest.raises(SegcountError, match='the sweep needs'): kmeans_sweep(s, c, ks=KS, masks=masks[:2])


# ------------------------------------------------------------------ whole split
def _tiny_split(root, toy, n=3):
    samples = []
    for i in range(n):
        im = toy.image.crop((0, 0, 256, 192)) if i % 2 else toy.image
        keep = toy.points[:, 0] < im.width
        samples.append(Sample(f'{i}.jpg', im, toy.boxes, toy.points[keep]))
    write_fsc147(root, samples, splits={'train': [s.name for s in samples], 'val': [], 'test': []})
    ann = json.loads((root / 'annotation_FSC147_384.json').read_text())
    del ann['2.jpg']['points']                                              # a split image with missing dots
    (root / 'annotation_FSC147_384.json').write_text(json.dumps(ann))
    return root


def test_split_resumes_and_reports_failures(tmp_path, toy):
    root = _tiny_split(tmp_path / 'fsc', toy)
    torch.manual_seed(0)
    counter = Counter('mobilenet_v2').eval()
    out = tmp_path / 'pl'
    man = pseudolabel_split(root, 'train', out, counter, progress=False)
    assert man['n_done'] == 2 and man['n_failed'] == 1 and man['n_skipped'] == 0
    assert 'points' in man['failed']['2.jpg']
    m0 = out / man['images']['0.jpg']['mask']
    assert m0.is_file() and np.load(m0).shape == tuple(man['images']['0.jpg']['shape'])
    assert json.loads((out / 'manifest.json').read_text())['n_done'] == 2
    assert man['images']['0.jpg']['k'] in SWEEP_KS and len(man['images']['0.jpg']['errors']) == len(SWEEP_KS)   # K = 2..8
    assert man['ks'] == list(SWEEP_KS) and set(man['k_histogram']) == {str(k) for k in SWEEP_KS}
    t0 = m0.stat().st_mtime_ns
    again = pseudolabel_split(root, 'train', out, counter, progress=False)
    assert again['n_skipped'] == 2 and again['n_done'] == 2 and again['n_failed'] == 1
    assert m0.stat().st_mtime_ns == t0                                       # not recomputed
    assert again['images']['0.jpg'] == man['images']['0.jpg']
    assert not list(out.rglob('*.tmp-*'))                                    # atomic writes leave nothing behind


# ------------------------------------------------------------------ bad input
def test_bad_inputs(toy):
    c = StubCounter()
    img = Image.new('RGB', (64, 48))
    with pytest.raises(SegcountError, match='at least 1 exemplar'):
        kmeans_sweep(Sample('a.jpg', img, np.zeros((0, 4), np.float32), np.float32([[5, 5]])), c)
    with pytest.raises(SegcountError, match=r'a.jpg: exemplar box 1 \(80x40\) is larger than the image \(64x48\)'):
        kmeans_sweep(Sample('a.jpg', img, np.float32([[0, 0, 80, 40]]), np.float32([[5, 5]])), c)
    tiny = Sample('t.jpg', Image.new('RGB', (12, 12)), np.float32([[0, 0, 10, 10]]), np.float32([[5, 5]]))
    for height in (None, 384):
        with pytest.raises(SegcountError, match=r't.jpg: image \(12x12\) is smaller than one patch'):
            kmeans_sweep(tiny, c, height=height)
    with pytest.raises(SegcountError, match=r'image \(40x15\) is smaller than one patch \(16x16\)'):
        kmeans_masks(Image.new('RGB', (40, 15)), np.float32([[0, 0, 10, 14]]), ks=(2,))
    with pytest.raises(SegcountError, match='no annotated dots'):
        kmeans_sweep(Sample('n.jpg', toy.image, toy.boxes, np.zeros((0, 2), np.float32)), c)
    with pytest.raises(SegcountError, match='unknown embedding mode'):
        kmeans_masks(toy.image, toy.boxes, mode='slow')


def test_split_with_worker_processes(tmp_path, toy):
    root = _tiny_split(tmp_path / 'fsc', toy)
    torch.manual_seed(0)
    counter = Counter('mobilenet_v2').eval()
    one = pseudolabel_split(root, 'train', tmp_path / 'a', counter, progress=False)
    two = pseudolabel_split(root, 'train', tmp_path / 'b', counter, workers=2, progress=False)
    assert two['n_done'] == 2 and set(two['failed']) == {'2.jpg'}
    for n in ('0.jpg', '1.jpg'):                                             # same results as in-process
        assert two['images'][n]['k'] == one['images'][n]['k']
        assert np.array_equal(np.load(tmp_path / 'a' / one['images'][n]['mask']),
                              np.load(tmp_path / 'b' / two['images'][n]['mask']))
