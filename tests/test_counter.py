"Counter: shapes, Eq. 1 / Eq. 4 behaviour, cached path, padding, configs, safetensors weight files."
import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from segcount.core import SegcountError
from segcount.counter import (Counter, build_counter, apply_mask, density_loss, save_weights, load_weights,
                              counter_registry, default_weights_path, DELTA)
from segcount.model_files import load_model_state, model_state_dict, read_metadata, tensor_digest

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return Counter('mobilenet_v2', backbone_weights=None).eval()


@pytest.fixture(scope='module')
def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 64, 100, generator=g), torch.rand(2, 3, 3, 64, 64, generator=g)


def test_forward_shapes_and_count(model, inputs):
    img, ex = inputs
    with torch.no_grad(): out = model(img, ex)
    assert out['density'].shape == (2, 1, 64, 100)
    assert out['similarity'].shape == (2, 1, 4, 7) and model.feature_size(64, 100) == (4, 7)
    assert out['count'].shape == (2,)
    torch.testing.assert_close(out['count'], out['density'].sum((1, 2, 3)))
    assert (out['density'] >= 0).all() and (out['similarity'] >= 0).all()
    assert 'masked_similarity' not in out


def test_similarity_is_eq1_averaged_scaled_and_clamped(model):
    g = torch.Generator().manual_seed(2)
    feat, vec = torch.randn(2, 256, 3, 4, generator=g), torch.randn(2, 3, 256, generator=g)
    S = model.similarity(feat, vec)
    manual = torch.stack([torch.einsum('dhw,nd->nhw', feat[b], vec[b]).mean(0) for b in range(2)])[:, None]
    torch.testing.assert_close(S, (manual / math.sqrt(256)).clamp_min(0))
    torch.testing.assert_close(model.similarity(feat, vec.mean(1)), S)


def test_cached_features_give_the_same_result(model, inputs):
    img, ex = inputs
    with torch.no_grad():
        out = model(img, ex)
        raw_i, raw_e = model.backbone_image(img), model.backbone_exemplars(ex)
        out2 = model.from_features(model.image_features(raw=raw_i), model.exemplar_vector(raw=raw_e), size=(64, 100))
    assert raw_i.shape == (2, 96, 4, 7) and raw_e.shape == (2, 3, 96)
    torch.testing.assert_close(out2['density'], out['density'])


def test_padding_is_internal_and_cropped(model, inputs):
    img, ex = inputs
    with torch.no_grad():
        a = model(img, ex)['density']
        b = model(F.pad(img, (0, 12)), ex)['density']   # 100 -> 112 = 7 cells, explicit zero padding
    torch.testing.assert_close(a, b[..., :100])


def test_masks(model, inputs):
    img, ex = inputs
    with torch.no_grad():
        none = model(img, ex, mask=torch.zeros(2, 1, 4, 7))
        half = model(img, ex, mask=torch.cat([torch.ones(2, 1, 4, 3), torch.zeros(2, 1, 4, 4)], -1))
        full = model(img, ex, mask=torch.ones(4, 7))
        plain = model(img, ex)
    assert none['count'].abs().max() == 0                      # masking everything counts nothing
    assert (none['masked_similarity'] == DELTA).all()
    assert half['density'][..., 48:].abs().max() == 0
    torch.testing.assert_close(full['density'], plain['density'])
    with pytest.raises(SegcountError, match='mask must be'):
        model(img, ex, mask=torch.zeros(2, 2, 1, 4, 7))


def test_ungated_mask_only_changes_s(inputs):
    torch.manual_seed(0)
    m = Counter('mobilenet_v2', backbone_weights=None, gate_density=False).eval()
    img, ex = inputs
    with torch.no_grad():
        feat, vec = m.image_features(img), m.exemplar_vector(ex)
        S = m.similarity(feat, vec)
        mask = torch.zeros(2, 1, 4, 7)
        out = m.from_features(feat, vec, mask=mask, size=(64, 100))
        ref = m.regress(feat, torch.full_like(S, DELTA), size=(64, 100))
    torch.testing.assert_close(out['density'], ref)


def test_apply_mask_variants():
    S = torch.arange(12.).view(1, 1, 3, 4)
    m = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0]])
    out = apply_mask(S, m, delta=-1)
    assert out[0, 0, 0].tolist() == [0, -1, 2, -1] and out[0, 0, 2].tolist() == [8, 9, -1, -1]
    assert torch.equal(apply_mask(S, m.bool()[None], delta=-1), out)
    assert torch.equal(apply_mask(S, m.float() * 0.7, delta=-1), out)           # binarised at 0.5
    big = m.repeat_interleave(16, 0).repeat_interleave(16, 1)                  # image-resolution mask
    assert torch.equal(apply_mask(S, big, delta=-1), out)
    assert apply_mask(S, None) is S


def test_density_loss():
    p, t = torch.zeros(1, 1, 2, 2), torch.tensor([[[[0.01, 0], [0, 0]]]])
    assert math.isclose(density_loss(p, t).item(), 0.25, rel_tol=1e-5)             # (100·0.01)² / 4
    valid = torch.tensor([[[[True, False], [False, False]]]])
    assert math.isclose(density_loss(p, t, valid).item(), 1.0, rel_tol=1e-5)
    assert math.isclose(density_loss(p, t, scale=1).item(), 0.25e-4, rel_tol=1e-5)


def test_config_roundtrip_and_errors(model):
    cfg = json.loads(json.dumps(model.config))
    m2 = build_counter(cfg)
    assert m2.config == model.config
    assert {k: v.shape for k, v in m2.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    with pytest.raises(SegcountError, match='unknown counter config keys'): build_counter(cfg, foo=1)
    with pytest.raises(SegcountError, match='format'): build_counter(dict(cfg, format='other/9'))
    assert counter_registry['mobilenet_v2'](backbone_weights=None, proj_dim=64).config['proj_dim'] == 64


def test_regressor_input_product(model, inputs, tmp_path):
    """F⊙b̄ beside F: sums over channels to S·√d, round-trips through a file; a file whose tensors were made
    for the other input is refused."""
    img, ex = inputs
    torch.manual_seed(4)
    mp = Counter('mobilenet_v2', backbone_weights=None, regressor_input='features+product').eval()
    with torch.no_grad():
        feat, vec = mp.image_features(img), mp.exemplar_vector(ex)
        x = mp.regressor_stack(feat, mp.similarity(feat, vec), vec)
        assert x.shape == (2, 513, 4, 7)
        torch.testing.assert_close(x[:, :256], feat)
        torch.testing.assert_close((x[:, 256:512].sum(1, keepdim=True) / 16).clamp_min(0), x[:, 512:])
        out = mp(img, ex)
    assert mp.config['regressor_input'] == 'features+product' and 'regressor_input' not in model.config
    m2 = load_weights(save_weights(mp, tmp_path / 'p.safetensors', include_backbone=True))
    with torch.no_grad(): torch.testing.assert_close(m2(img, ex)['density'], out['density'])
    forged = _forge(model_state_dict(mp, include_backbone=True), model.config, tmp_path / 'f.safetensors',
                    includes_backbone='true')
    with pytest.raises(SegcountError, match=r'f\.safetensors'): load_weights(forged)
    with pytest.raises(SegcountError, match='regressor_input must be one of'):
        Counter('mobilenet_v2', backbone_weights=None, regressor_input='sum')


def test_save_load_roundtrip_with_backbone(model, inputs, tmp_path):
    img, ex = inputs
    p = save_weights(model, tmp_path / 'c.safetensors', include_backbone=True, metadata={'card': {'mae': 1.5}})
    assert not list(tmp_path.glob('*.tmp-*'))
    meta = read_metadata(p)
    assert meta['kind'] == 'counter' and json.loads(meta['card']) == {'mae': 1.5}
    assert json.loads(meta['config']) == model.config and meta['segcount_version']
    m2 = load_weights(p)
    assert not m2.training and m2.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(m2(img, ex)['density'], model(img, ex)['density'])


def test_head_only_file_reresolves_imagenet_backbone(inputs, tmp_path):
    torch.manual_seed(3)
    m = Counter('mobilenet_v2', proj_dim=32, regressor_widths=(16, 16, 8, 8)).eval()   # offline ImageNet trunk
    p = save_weights(m, tmp_path / 'head.safetensors')
    assert json.loads(read_metadata(p)['includes_backbone']) is False
    m2 = load_weights(p)
    img, ex = inputs
    with torch.no_grad():
        torch.testing.assert_close(m2(img, ex)['count'], m(img, ex)['count'])
    rnd = Counter('mobilenet_v2', backbone_weights=None, proj_dim=32, regressor_widths=(16, 16, 8, 8))
    with pytest.raises(SegcountError, match='random backbone'):
        load_weights(save_weights(rnd, tmp_path / 'rnd.safetensors', include_backbone=False))


def test_wrong_or_tampered_files_are_refused(model, tmp_path):
    p = save_weights(model, tmp_path / 'c.safetensors', include_backbone=True)
    raw = bytearray(p.read_bytes())
    # tampered tensor bytes
    t = bytearray(raw); t[-7] ^= 0x55
    (tmp_path / 't.safetensors').write_bytes(bytes(t))
    with pytest.raises(SegcountError, match='checksum'): load_weights(tmp_path / 't.safetensors')
    # tampered config in the metadata (other architecture)
    s = bytes(raw).replace(b'\\"proj_dim\\": 256', b'\\"proj_dim\\": 255')
    assert s != bytes(raw)
    (tmp_path / 'c2.safetensors').write_bytes(s)
    with pytest.raises(SegcountError, match='checksum'): load_weights(tmp_path / 'c2.safetensors')
    # another kind of file
    save_file({'w': torch.zeros(2)}, str(tmp_path / 'seg.safetensors'), metadata={'kind': 'segmenter'})
    with pytest.raises(SegcountError, match="'segmenter'"): load_weights(tmp_path / 'seg.safetensors')
    save_file({'w': torch.zeros(2)}, str(tmp_path / 'plain.safetensors'))
    with pytest.raises(SegcountError, match='not a segcount counter'): load_weights(tmp_path / 'plain.safetensors')
    # not safetensors at all / missing
    (tmp_path / 'x.safetensors').write_bytes(b'garbage' * 10)
    with pytest.raises(SegcountError, match='not a readable safetensors'): load_weights(tmp_path / 'x.safetensors')
    with pytest.raises(SegcountError, match='not found'): load_weights(tmp_path / 'missing.safetensors')
    # weights of another architecture
    other = Counter('mobilenet_v2', backbone_weights=None, proj_dim=64)
    with pytest.raises(SegcountError, match='do not fit'):
        load_model_state(other, model_state_dict(model, include_backbone=False), 'x')


def _forge(sd, config, path, **meta):
    "A file with a valid checksum but hand-made metadata (what a buggy exporter or another version could write)."
    from safetensors.torch import save
    cfg = json.dumps(config)
    m = dict(kind='counter', config=cfg, sha256=tensor_digest(sd, cfg), **meta)
    path.write_bytes(save(sd, metadata=m))
    return path


def test_trunk_missing_or_other_format_is_one_line_naming_the_file(model, tmp_path):
    head = model_state_dict(model, include_backbone=False)
    p = _forge(head, model.config, tmp_path / 'notrunk.safetensors', includes_backbone='true')
    with pytest.raises(SegcountError, match=r'notrunk\.safetensors: .*no backbone tensors'): load_weights(p)
    q = _forge(model_state_dict(model, include_backbone=True), dict(model.config, format='segcount-counter/2'),
               tmp_path / 'v2.safetensors', includes_backbone='true')
    with pytest.raises(SegcountError, match=r'v2\.safetensors: .*format') as e: load_weights(q)
    assert '\n' not in str(e.value)


def test_embedded_default_carries_its_trunk(monkeypatch):
    "The shipped counter and segmenter hold the ImageNet trunk: they load with no ImageNet weights file anywhere."
    import segcount.backbones as bbm
    from segcount.pipeline import Predictor
    meta = read_metadata
    p = default_weights_path()
    assert json.loads(meta(p)['includes_backbone']) is True
    assert json.loads(meta(p.with_name('segmenter.safetensors'))['includes_backbone']) is True
    trunk = {k: v.clone() for k, v in load_weights(p).backbone.body.state_dict().items()}
    imagenet = bbm.build_mobilenet_v2().body.state_dict()            # the offline package's file (dev install)
    assert trunk.keys() == imagenet.keys() and all(torch.equal(trunk[k], imagenet[k]) for k in trunk)
    def nowhere(*a, **k): raise SegcountError('no ImageNet weights file on this machine')
    monkeypatch.setattr(bbm, 'resolve_weights', nowhere)
    pr = Predictor.from_weights(device='cpu')
    assert pr.segmenter is not None and pr.shared_backbone
    img = torch.rand(120, 160, 3).mul(255).byte().numpy()
    assert pr.predict(img, [[10, 10, 40, 40]]).count >= 0
    with pytest.raises(SegcountError, match='no ImageNet weights'): bbm.build_mobilenet_v2()
