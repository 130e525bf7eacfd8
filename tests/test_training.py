"Training: tiny runs on a toy FSC-147 folder — loss goes down, checkpoints round-trip, resume is exact, bad files fail."
import json
from pathlib import Path

import pytest
import torch

from segcount.core import SegcountError, pick_device
from segcount.counter import counter_from_checkpoint, load_weights
from segcount.model_files import load_checkpoint, read_metadata, save_checkpoint
from segcount.training import (train_counter, make_toy_fsc147, export_weights, random_training_mask, masked_target,
                               build_feature_cache)

torch.set_num_threads(1)

SMALL = dict(backbone_weights=None, lr=1e-3, batch_size=3, height=96, exemplar_size=48, progress=False,
             counter_kwargs=dict(proj_dim=32, regressor_widths=[16, 16, 8, 8]), device='cpu')


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_toy_fsc147(tmp_path_factory.mktemp('toy') / 'toy', n_images=8, size=(144, 96), seed=0)


def _weights(ck):
    return {k: v for k, v in ck['model'].items()}


def test_train_resume_and_checkpoints(toy, tmp_path):
    logs = []
    run = train_counter(toy, tmp_path / 'a', epochs=2, log=logs.append, **SMALL)
    assert run['epochs'] == 2 and not run['stopped_early']
    h = run['history']
    assert [r['epoch'] for r in h] == [1, 2] and all('val_mae' in r and r['images_per_s'] > 0 for r in h)
    assert any('val MAE' in l for l in logs)
    assert json.loads((tmp_path / 'a' / 'history.json').read_text()) == h
    assert not list((tmp_path / 'a').glob('*.tmp-*'))
    ck = load_checkpoint(tmp_path / 'a' / 'last.pt')
    assert ck['epoch'] == 2 and ck['kind'] == 'counter' and ck['segcount_version']
    assert ck['train_args']['lr'] == 1e-3 and 'optimizer' in ck
    # random frozen trunk: saved with the checkpoint, so the model can be rebuilt exactly
    assert any(k.startswith('backbone.') for k in ck['model'])
    # resume to 3 epochs == 3 epochs straight
    run2 = train_counter(toy, tmp_path / 'a', epochs=3, resume=True, log=logs.append, **SMALL)
    assert [r['epoch'] for r in run2['history']] == [1, 2, 3]
    assert any('resuming' in l for l in logs)
    straight = train_counter(toy, tmp_path / 'b', epochs=3, **SMALL)
    a, b = load_checkpoint(run2['last']), load_checkpoint(straight['last'])
    for k in a['model']:
        torch.testing.assert_close(a['model'][k], b['model'][k], msg=k)
    assert a['history'][-1]['train_loss'] == pytest.approx(b['history'][-1]['train_loss'], rel=1e-5)
    # checkpoint -> model -> safetensors -> model
    m = counter_from_checkpoint(run2['best'])
    w = export_weights(run2['best'], tmp_path / 'c.safetensors', metadata={'data': 'toy'})
    m2 = load_weights(w)
    meta = read_metadata(w)
    assert meta['data'] == 'toy' and json.loads(meta['training'])['epochs'] >= 1
    x, ex = torch.rand(1, 3, 96, 144), torch.rand(1, 3, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(m(x, ex)['count'], m2(x, ex)['count'])
    # resuming with another architecture is refused
    with pytest.raises(SegcountError, match='was trained with config'):
        train_counter(toy, tmp_path / 'a', epochs=4, resume=True,
                      **dict(SMALL, counter_kwargs=dict(proj_dim=16, regressor_widths=[16, 16, 8, 8])))


def test_cosine_schedule_resumes_exactly_and_keeps_epochs(toy, tmp_path):
    "A cosine-schedule run killed after epoch 2 of 3 and resumed from disk ends as the straight run."
    class Killed(Exception): pass
    def kill(msg):
        if msg.startswith('epoch 2/3'): raise Killed   # logged after epoch 2 is saved
    kw = dict(SMALL, epochs=3, lr_schedule='cosine', keep_epochs=True)
    with pytest.raises(Killed): train_counter(toy, tmp_path / 'k', log=kill, **kw)
    resumed = train_counter(toy, tmp_path / 'k', resume=True, **kw)
    straight = train_counter(toy, tmp_path / 's', **kw)
    a, b = load_checkpoint(resumed['last']), load_checkpoint(straight['last'])
    for k in a['model']:
        torch.testing.assert_close(a['model'][k], b['model'][k], msg=k)
    lrs = [r['lr'] for r in straight['history']]   # each epoch's last rate, from 1e-3 down towards 0
    assert 1e-3 > lrs[0] > lrs[1] > lrs[2] and lrs[2] < 1e-4, lrs
    kept = sorted(p.name for p in (tmp_path / 's').glob('epoch-*.pt'))
    assert kept == ['epoch-001.pt', 'epoch-002.pt', 'epoch-003.pt']
    assert load_checkpoint(tmp_path / 's' / 'epoch-002.pt')['epoch'] == 2
    with pytest.raises(SegcountError, match='lr_schedule must be one of'):
        train_counter(toy, tmp_path / 'x', **dict(kw, lr_schedule='step'))


def test_loss_decreases(toy, tmp_path):
    run = train_counter(toy, tmp_path / 'r', epochs=8, mask_prob=0.0, val_split=None, **dict(SMALL, lr=3e-3))
    losses = [r['train_loss'] for r in run['history']]
    assert losses[-1] < 0.85 * losses[0] and losses[-1] < losses[1], losses
    assert (tmp_path / 'r' / 'best.pt').is_file()   # without validation, best = last


def test_uncached_finetune_and_time_limit(toy, tmp_path):
    run = train_counter(toy, tmp_path / 'f', epochs=1, freeze_backbone=False, cache_features=False,
                        max_train_images=3, max_val_images=1, num_workers=1, **SMALL)
    ck = load_checkpoint(run['last'])
    assert ck['epoch'] == 1 and ck['config']['freeze_backbone'] is False
    assert any(k.startswith('backbone.') for k in ck['model'])
    run = train_counter(toy, tmp_path / 't', epochs=50, max_minutes=1e-6, **SMALL)
    assert run['stopped_early'] and run['epochs'] == 0
    assert load_checkpoint(tmp_path / 't' / 'last.pt')['epoch'] == 0   # partial epoch saved, counter not advanced


def test_trained_trunk_blocks(toy, tmp_path):
    "The trunk's last blocks train from cached stem features; the rest of the trunk and every BN statistic stay."
    kw = dict(SMALL, epochs=2, trained_blocks=2, trunk_lr_scale=0.1, cache_features='disk')
    run = train_counter(toy, tmp_path / 'tb', **kw)
    ck = load_checkpoint(run['last'])
    assert ck['config']['trained_blocks'] == 2
    groups = ck['optimizer']['param_groups']
    assert [(g['lr'], g['lr_scale']) for g in groups] == [(1e-3, 1.0), (pytest.approx(1e-4), 0.1)]
    torch.manual_seed(0)   # the random trunk the run started from (train_counter seeds 0 first)
    from segcount.counter import build_counter
    start = build_counter(dict(backbone_weights=None, trained_blocks=2, **SMALL['counter_kwargs']))
    ref = start.state_dict()
    trunk = [k for k in ck['model'] if k.startswith('backbone.body.')]
    moved = {k for k in trunk if not torch.equal(ck['model'][k], ref[k])}
    assert moved and all(k.startswith(('backbone.body.12.', 'backbone.body.13.')) for k in moved), moved
    assert not any('running_' in k for k in moved)
    # the cached stem features + the trained tail count as the uncached model does
    m = counter_from_checkpoint(run['last'])
    x, ex = torch.rand(1, 3, 96, 144), torch.rand(1, 3, 3, 48, 48)
    with torch.no_grad():
        fi, fe = m.trunk_from_cache(*m.cached_trunk(x, ex))
        torch.testing.assert_close(fi, m.backbone_image(x)); torch.testing.assert_close(fe, m.backbone_exemplars(ex))
    # resumed, the trunk keeps its tenth of the rate
    train_counter(toy, tmp_path / 'tb', **dict(kw, epochs=3, resume=True))
    groups = load_checkpoint(tmp_path / 'tb' / 'last.pt')['optimizer']['param_groups']
    assert [g['lr_scale'] for g in groups] == [1.0, 0.1] and groups[1]['lr'] == pytest.approx(1e-4)
    # the exported file holds the trained trunk and loads without any ImageNet file
    w = load_weights(export_weights(run['last'], tmp_path / 'tb.safetensors'))
    m3 = counter_from_checkpoint(run['last'])   # epoch 3
    torch.testing.assert_close(w.backbone.body[13].conv[0][0].weight, m3.backbone.body[13].conv[0][0].weight)
    with pytest.raises(SegcountError, match='cannot train its last 20 blocks'):
        train_counter(toy, tmp_path / 'x', **dict(kw, trained_blocks=20))


def test_disk_cache_is_reused(toy, tmp_path):
    from segcount.counter import build_counter
    from segcount.data import CountingDataset, FSC147
    torch.manual_seed(0)
    m = build_counter(backbone_name='mobilenet_v2', backbone_weights=None, proj_dim=16)
    ds = CountingDataset(FSC147(toy, 'val'), height=96, exemplar_size=48)
    c1 = build_feature_cache(m, ds, folder=tmp_path, progress=False)
    files = sorted(tmp_path.rglob('*.pt'))
    assert len(files) == len(ds) and len(c1) == len(ds)
    c2 = build_feature_cache(m, ds, folder=tmp_path, progress=False)
    assert c2.widths == c1.widths == [144] * len(ds)
    torch.testing.assert_close(c2[0]['raw_img'], c1[0]['raw_img'])
    assert c1[0]['raw_img'].dtype == torch.float16 and c1[0]['raw_img'].shape == (96, 6, 9)
    # an interrupted caching run (no complete.json, one item missing) resumes: only the missing item is computed
    tr = CountingDataset(FSC147(toy, 'train'), height=96, exemplar_size=48)
    t1 = build_feature_cache(m, tr, folder=tmp_path / 't', progress=False)
    files = sorted((tmp_path / 't').rglob('*.pt'))
    (files[0].parent / 'complete.json').unlink(); files[1].unlink()
    kept = files[0].stat().st_mtime_ns
    t2 = build_feature_cache(m, tr, folder=tmp_path / 't', progress=False)
    assert files[1].is_file() and files[0].stat().st_mtime_ns == kept and t2.widths == t1.widths
    torch.testing.assert_close(t2[1]['raw_img'], t1[1]['raw_img'])


def test_wrong_checkpoints_are_refused(tmp_path):
    (tmp_path / 'junk.pt').write_bytes(b'\x00junk' * 20)
    with pytest.raises(SegcountError, match='not a readable segcount checkpoint'): load_checkpoint(tmp_path / 'junk.pt')
    torch.save({'state_dict': {}}, tmp_path / 'other.pt')
    with pytest.raises(SegcountError, match='not a segcount checkpoint'): load_checkpoint(tmp_path / 'other.pt')
    save_checkpoint(dict(format='segcount-checkpoint/1', kind='segmenter', config={}, model={}, epoch=1),
                    tmp_path / 'seg.pt')
    with pytest.raises(SegcountError, match="'segmenter'"): load_checkpoint(tmp_path / 'seg.pt')
    with pytest.raises(SegcountError, match='not found'): load_checkpoint(tmp_path / 'missing.pt')
    torch.save({'format': 'segcount-checkpoint/1', 'kind': 'counter', 'x': torch.nn.Linear(2, 2)}, tmp_path / 'code.pt')
    with pytest.raises(SegcountError, match='not a readable'): load_checkpoint(tmp_path / 'code.pt')  # weights_only
    with pytest.raises(SegcountError, match='unknown device'): pick_device('warp-drive')


def test_random_masks_and_targets():
    g = torch.Generator().manual_seed(0)
    dens = torch.zeros(1, 64, 96)
    dens[0, 20, 30] = 1.0
    dens[0, 40, 70] = 2.0
    for _ in range(30):
        m = random_training_mask(dens, (4, 6), g)
        assert m.shape == (1, 4, 6) and m.dtype == torch.bool and m.any()
        t = masked_target(dens[None], m[None])[0]
        keep = m.float().repeat_interleave(16, 1).repeat_interleave(16, 2)
        torch.testing.assert_close(t, dens * keep)
    with pytest.raises(SegcountError):
        train_counter('/nonexistent/folder', '/tmp/x', epochs=1, **SMALL)


_KILL_RUN = r'''
import sys, torch
torch.set_num_threads(1)
from segcount.training import train_counter
root, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
train_counter(root, out, epochs=epochs, resume=True, cache_features='disk', backbone_weights=None, lr=1e-3,
              batch_size=1, height=96, exemplar_size=48, device='cpu', val_split=None, progress=True,
              counter_kwargs=dict(proj_dim=32, regressor_widths=[16, 16, 8, 8]))
'''


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    "A real training process killed (SIGKILL) inside epoch 2 loses at most that epoch; resuming ends where a straight run ends."
    import os, re, signal, subprocess, sys, threading, time
    root = make_toy_fsc147(tmp_path / 'toy', n_images=120, size=(144, 96), seed=1)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    run = lambda out, **kw: subprocess.Popen([sys.executable, '-c', _KILL_RUN, str(root), str(out), '4'], env=env,
                                             stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, **kw)
    p, seen = run(tmp_path / 'killed'), []
    threading.Thread(target=lambda: seen.extend(iter(lambda: p.stderr.read(64).decode(errors='replace'), '')), daemon=True).start()
    deadline = time.monotonic() + 240
    while not re.search(r'epoch 2/4:\s+\d+%\|[^|]*\|\s+[1-9]\d*/', ''.join(seen)) and time.monotonic() < deadline:
        assert p.poll() is None, "the run ended before it could be killed"
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL
    ck = load_checkpoint(tmp_path / 'killed' / 'last.pt')
    assert ck['epoch'] == 1                                   # epoch 1 kept; only the killed epoch 2 is lost
    for out in ('killed', 'straight'):
        r = run(tmp_path / out); r.communicate(timeout=600); assert r.returncode == 0
    a, b = load_checkpoint(tmp_path / 'killed' / 'last.pt'), load_checkpoint(tmp_path / 'straight' / 'last.pt')
    assert a['epoch'] == b['epoch'] == 4 and [h['epoch'] for h in a['history']] == [1, 2, 3, 4]
    for k in b['model']: torch.testing.assert_close(a['model'][k], b['model'][k], msg=k)
