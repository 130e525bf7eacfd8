"Tests for segcount.segmenter (paper §3.3, Eq. 6–7)."
import json

import numpy as np
import pytest
import torch

from segcount.counter import Counter, save_weights
from segcount.data import SegcountError
from segcount.segmenter import (Segmenter, build_segmenter, evaluate_segmenter, export_segmenter, fit_segmenter,
                                load_segmenter, load_segmenter_checkpoint, save_segmenter, seg_loss, shares_backbone,
                                toy_items, train_segmenter)


@pytest.fixture(scope='module')
def seg():
    torch.manual_seed(0)
    return Segmenter('mobilenet_v2').eval()


def test_shapes_and_range(seg):
    img, ex = torch.rand(2, 3, 130, 200), torch.rand(2, 3, 3, 128, 128)
    with torch.no_grad(): M = seg(img, ex)
    assert M.shape == (2, 1, 9, 13)                       # ⌈130/16⌉ × ⌈200/16⌉, like Counter.similarity
    assert M.min() >= -1 - 1e-6 and M.max() <= 1 + 1e-6
    c = Counter('mobilenet_v2').eval()
    with torch.no_grad(): S = c(img, ex)['similarity']
    assert S.shape == M.shape


def test_eq6_manual(seg):
    torch.manual_seed(1)
    img, ex = torch.rand(1, 3, 64, 96), torch.rand(1, 2, 3, 128, 128)
    with torch.no_grad():
        M = seg(img, ex)[0, 0]
        P = seg.head(seg.backbone(img))[0]                                    # d×h×w
        v = torch.stack([seg.head(seg.backbone(ex[0, n:n + 1]).mean((-2, -1), keepdim=True))[0, :, 0, 0]
                         for n in range(2)]).mean(0)                          # GAP per exemplar, then the mean
        manual = torch.einsum('dhw,d->hw', P, v) / (P.norm(dim=0) * v.norm())
    assert torch.allclose(M, manual, atol=1e-5)


def test_forward_features_reuses_counter_trunk(seg):
    c = Counter('mobilenet_v2').eval()
    assert shares_backbone(c, seg)
    img, ex = torch.rand(1, 3, 70, 90), torch.rand(1, 3, 3, 128, 128)
    with torch.no_grad():
        a = seg(img, ex)
        b = seg.forward_features(c.backbone_image(img), c.backbone_exemplars(ex))
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(SegcountError, match='channel'):
        seg.forward_features(torch.rand(1, 7, 4, 4), torch.rand(1, 3, 7))


def test_loss_eq7():
    p, t = torch.tensor([[[[0.5, -1.0]]]]), torch.tensor([[[[1.0, 0.0]]]])
    assert seg_loss(p, t).item() == pytest.approx((0.25 + 1.0) / 2)
    assert seg_loss(p, t, torch.tensor([[[[True, False]]]])).item() == pytest.approx(0.25)


def test_tiny_training_reduces_loss():
    torch.manual_seed(0)
    m = Segmenter('mobilenet_v2')
    items, _ = toy_items(m, 4, W=256, H=128)
    before = evaluate_segmenter(m, items)['loss']
    hist = fit_segmenter(m, items, epochs=15, lr=3e-3, batch_size=2)
    after = evaluate_segmenter(m, items)['loss']
    assert len(hist) == 15 and after < 0.6 * before


def test_save_load_roundtrip(seg, tmp_path):
    p = save_segmenter(seg, tmp_path / 's.safetensors')
    s2 = load_segmenter(p)
    img, ex = torch.rand(1, 3, 64, 64), torch.rand(1, 1, 3, 128, 128)
    with torch.no_grad(): assert torch.allclose(seg(img, ex), s2(img, ex), atol=1e-6)
    assert s2.config == seg.config and s2.config == build_segmenter(seg.config).config


def test_wrong_files(seg, tmp_path):
    save_weights(Counter('mobilenet_v2'), tmp_path / 'c.safetensors')
    with pytest.raises(SegcountError, match='not a segcount segmenter'): load_segmenter(tmp_path / 'c.safetensors')
    with pytest.raises(SegcountError, match='not found'): load_segmenter(tmp_path / 'none.safetensors')
    (tmp_path / 'junk.safetensors').write_bytes(b'not a safetensors file at all')
    with pytest.raises(SegcountError): load_segmenter(tmp_path / 'junk.safetensors')
    p = save_segmenter(seg, tmp_path / 's.safetensors')
    raw = bytearray(p.read_bytes()); raw[-3] ^= 0xFF; p.write_bytes(bytes(raw))
    with pytest.raises(SegcountError, match='checksum'): load_segmenter(p)
    with pytest.raises(SegcountError, match='unknown segmenter config'): build_segmenter(dict(bogus=1))
    with pytest.raises(SegcountError): load_segmenter_checkpoint(tmp_path / 'c.safetensors')


def test_train_segmenter_checkpoints_resume(tmp_path):
    from segcount.training import make_toy_fsc147
    root = make_toy_fsc147(tmp_path / 'toy', n_images=8, size=(192, 128))
    kw = dict(lr=1e-3, max_images=5, progress=False, batch_size=4, log=lambda m: None,
              counter_weights=Counter('mobilenet_v2'), sweep_kw=dict(n_init=1))
    notes = []
    r1 = train_segmenter(root, tmp_path / 'run', epochs=1, **dict(kw, log=notes.append))
    assert any('one class' in n for n in notes)   # data='both' on a one-class split: images only
    assert r1['epochs'] == 1 and (tmp_path / 'run' / 'best.pt').is_file() and (tmp_path / 'run' / 'last.pt').is_file()
    assert len(list((tmp_path / 'run' / 'pseudo').glob('*.npy'))) == r1['n_train'] + r1['n_val']
    r2 = train_segmenter(root, tmp_path / 'run', epochs=2, resume=True, **kw)
    assert r2['epochs'] == 2 and [h['epoch'] for h in r2['history']] == [1, 2]
    f = export_segmenter(tmp_path / 'run' / 'best.pt', tmp_path / 'seg.safetensors')
    assert load_segmenter(f).config['format'] == 'segcount-segmenter/1'
    assert json.loads((tmp_path / 'run' / 'history.json').read_text())[-1]['epoch'] == 2


def test_max_minutes_still_writes_checkpoints(tmp_path):
    from segcount.training import make_toy_fsc147
    root = make_toy_fsc147(tmp_path / 'toy', n_images=6, size=(192, 128))
    r = train_segmenter(root, tmp_path / 'run', epochs=3, lr=1e-3, max_images=3, batch_size=1, max_minutes=1e-6,
                        progress=False, log=lambda m: None, counter_weights=Counter('mobilenet_v2'))
    assert r['stopped_early'] and r['epochs'] == 0
    assert (tmp_path / 'run' / 'best.pt').is_file() and (tmp_path / 'run' / 'last.pt').is_file()
    assert load_segmenter_checkpoint(tmp_path / 'run' / 'last.pt')['epoch'] == 0
