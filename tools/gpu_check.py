"""One prepared check of every CUDA code path of segcount (issue 17): `make gpu-check`.

    python tools/gpu_check.py --out gpu-check.json                     # on a CUDA GPU, in about 5 minutes
    OMP_NUM_THREADS=1 python tools/gpu_check.py --device cpu --tiny --out f.json   # the same script on a CPU

Each part runs in its own try/except and leaves `{"ok": bool, "seconds": float, ...numbers...}` in the JSON
summary (`"parts": {name: record}`), with a one-line `"reason"` when it failed. The summary is rewritten atomically
after every part, so a killed run still leaves the parts it finished; the exit code is 1 when any part failed.

Parts (all on `--device`; data is generated here, nothing is downloaded):

- `setup`: a stand-in FSC-147-layout folder of generated scenes (FSC-147 itself is not on the check machines).
- `predictor`: the embedded `Predictor` on the bundled examples (`segcount/assets/examples`), count and
  seg-then-count, on the device in float32 (counts within 1e-3 relative of the CPU's) and under float16 autocast
  (within 1%). Counts under bfloat16 autocast are reported, not checked: bf16 moves them 2-6% on a CPU.
- `counter_training`: `train_counter` with AMP on a `make_toy_fsc147` folder, frozen trunk (cached features) and
  unfrozen trunk; checkpoint, resume from `last.pt`, loss going down; images per second.
- `torchrun`: the same training (random Eq. 4 masks on) under `torchrun --nproc_per_node 1`, and 2 processes
  (gloo on a CPU; on CUDA only with 2 GPUs: the library maps local rank N to `cuda:N` and picks NCCL, which refuses
  two ranks on one GPU, so on one GPU that launch is recorded as skipped with the reason).
- `kmeans_sweep`: the per-image K sweep (batched K-means over all K) on the device and on the CPU: images per
  second of each, masks and K* equal for the same seed.
- `segmenter_training`: `train_segmenter` steps (pseudo masks by the K sweep, then Eq. 7) and a resume.
- `table1`: `segcount table 1` (the CLI, in-process) on a small generated two-class set.
- `full_<chapter>`: every chapter's FULL mode against the stand-in folder, through `course_mode()` with
  `SEGCOUNT_FULL=1` and `SEGCOUNT_FSC147=<stand-in>`, epochs capped by `--epochs-cap` / `SEGCOUNT_MAX_EPOCHS`.
  These parts call the library functions the chapters' FULL cells call, with the same arguments except sizes.
  ResNet-50 ImageNet weights are not on the check machines and are never faked: where the paper's backbone is
  built it is ResNet-50 with `backbone_weights=None` (random init), or MobileNetV2 where the library offers no
  way to pass `None` (the segmenter); each record says which (`backbone`, `backbone_weights`).
- `notebooks`: the chapters' notebooks themselves, executed by nbdev's `test_nb` (slow and cuda cells included)
  with the first cell switched to FULL mode on the stand-in folder (epochs capped, MobileNetV2 unless ResNet-50's
  ImageNet file is in torch's cache), a few at a time; `--notebooks` picks some. Executing the notebooks does not
  fit the CPU budget (on one CPU thread 21_segmenter's FULL cell alone sweeps ~1000 images), so `--tiny` leaves
  this part out: the `full_*` parts run the same FULL code paths through the library. Name it in `--parts` to run it.

Every record holds `seconds` and, on CUDA, `peak_gpu_mb` (peak allocated memory during the part); on a CPU,
`peak_rss_mb` (the process's peak so far). `--tiny` shrinks every size (`CheckConfig`) so that the whole script
runs in about 90 s on one CPU thread (`tests/test_gpu_check.py` runs it so, so the script cannot rot).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORMAT = 'segcount-gpu-check/1'
EPOCHS_CAP_ENV = 'SEGCOUNT_MAX_EPOCHS'   # read by segcount.course.course_mode


# --- sizes -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckConfig:
    "Every size the check uses: `FULL_SIZES` for a GPU (≤ 5 min), `TINY` for a CPU thread (about 90 s)."
    name: str
    scenes: int                  # images in the stand-in FSC-147 folder (split 60/20/20)
    scene_height: int            # their canvas height (width drawn from scene_width)
    scene_width: tuple
    count_range: tuple           # target objects per scene
    predictor_examples: int | None   # bundled examples for `predictor` (None: all 4; float16 autocast is slow on a CPU)
    toy_images: int              # the training parts' toy folder (`make_toy_fsc147`: discs and squares)
    toy_size: tuple              # its image size W×H
    height: int                  # model input height of the training parts (the paper: 384)
    batch_size: int
    counter_epochs: int          # frozen trunk: first run epochs - 1, then resume to this
    finetune_epochs: int         # unfrozen trunk
    ddp_epochs: int              # each torchrun launch
    max_train_images: int | None
    sweep_images: int            # K sweep: images swept on the device and on the CPU
    sweep_height: int | None     # the sweep's resize height (None: as generated)
    segmenter_images: int
    segmenter_epochs: int        # first run 1 epoch, then resume to this
    table_images: int            # two-class images for `segcount table 1`
    full_limit: int | None       # images per experiment in the full_* parts (None: all, as FULL mode)
    full_height: int             # model input height of the full_* training parts
    epochs_cap: int              # FULL mode's epochs (300 counter, 20 segmenter) are capped to this; >= 3, as
                                 # 21_segmenter's FULL cell trains 3 epochs, then resumes to mode.segmenter_epochs
    notebook_workers: int        # notebooks executed at once
    notebook_timeout: int        # seconds per notebook


FULL_SIZES = CheckConfig(name='full', scenes=80, scene_height=384, scene_width=(384, 640), count_range=(5, 120),
                         predictor_examples=None, toy_images=96, toy_size=(288, 192), height=384, batch_size=8,
                         counter_epochs=30, finetune_epochs=6, ddp_epochs=3, max_train_images=None, sweep_images=12,
                         sweep_height=384, segmenter_images=24, segmenter_epochs=5, table_images=16, full_limit=None,
                         full_height=384, epochs_cap=3, notebook_workers=6, notebook_timeout=420)
TINY = CheckConfig(name='tiny', scenes=20, scene_height=160, scene_width=(192, 256), count_range=(4, 30),
                   predictor_examples=2, toy_images=12, toy_size=(144, 96), height=96, batch_size=4, counter_epochs=8,
                   finetune_epochs=3, ddp_epochs=1, max_train_images=None, sweep_images=2, sweep_height=None,
                   segmenter_images=4, segmenter_epochs=2, table_images=2, full_limit=2, full_height=64, epochs_cap=3,
                   notebook_workers=1, notebook_timeout=900)


# --- the report ------------------------------------------------------------------------------------------------
def one_line(e: BaseException) -> str:
    "A failure as one line: exception type, message (first line) and where it was raised."
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb and not isinstance(e, PartFailed) else ""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ''
    return f"{type(e).__name__}: {msg}{where}"[:500]


def atomic_json(obj: dict, path: Path):
    "Write `obj` as JSON to `path` through a temporary file and a rename (a killed run never leaves half a file)."
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


class Report:
    "The JSON summary: header, `parts`, overall `ok`; saved after every part."
    def __init__(self, out: Path, header: dict):
        self.out, self.t0 = Path(out), time.monotonic()
        self.data = dict(format=FORMAT, **header, ok=None, seconds=0.0, parts={})

    def add(self, name: str, rec: dict):
        self.data['parts'][name] = rec
        self.data['seconds'] = round(time.monotonic() - self.t0, 2)
        self.data['ok'] = all(r.get('ok') for r in self.data['parts'].values())
        atomic_json(self.data, self.out)


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_part(name: str, fn, ctx, report: Report) -> dict:
    """Run part `fn(ctx)` (which returns a dict of numbers and notes, or raises): record ok, seconds, peak memory and
    a one-line reason on failure; print its line; save the report. Never raises (KeyboardInterrupt aside)."""
    import torch
    cuda = ctx.device.type == 'cuda'
    if cuda:
        with contextlib.suppress(Exception):   # a broken CUDA context shows up as the part's own failure
            torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    print(f"[gpu-check] {name} ...", flush=True)
    t0 = time.monotonic()
    try:
        if ctx.fail == name: raise RuntimeError(f"--fail {name}: raised on purpose")
        rec = dict(ok=True, **(fn(ctx) or {}))
    except Exception as e:       # a part's failure is a result, never the end of the check
        rec = dict(ok=False, reason=one_line(e), **getattr(e, 'details', {}))
        ctx.log.write(f"--- {name}\n{traceback.format_exc()}\n"); ctx.log.flush()
    if cuda:
        with contextlib.suppress(Exception):
            torch.cuda.synchronize()
            rec['peak_gpu_mb'] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    else: rec['peak_rss_mb'] = _peak_rss_mb()
    rec['seconds'] = max(round(time.monotonic() - t0, 3), 0.001)   # > 0 even for an instant failure
    rec = {'ok': rec.pop('ok'), 'seconds': rec.pop('seconds'), **rec}
    report.add(name, rec)
    print(f"[gpu-check] {name}: {'ok' if rec['ok'] else 'FAILED'} ({rec['seconds']:.1f} s)"
          + ('' if rec['ok'] else f"  {rec['reason']}"), flush=True)
    return rec


class PartFailed(AssertionError):
    "A part's failure that keeps the numbers it measured (`details` go into its record beside the reason)."
    def __init__(self, msg: str, details: dict | None = None):
        super().__init__(msg)
        self.details = details or {}


def check(cond: bool, msg: str, details: dict | None = None):
    "Fail the current part with `msg` (and the numbers in `details`) unless `cond`."
    if not cond: raise PartFailed(msg, details)


@dataclass
class Ctx:
    "What the parts share: sizes, device, scratch folder, the stand-in data and artefacts of earlier parts."
    cfg: CheckConfig
    device: object               # torch.device
    tmp: Path
    log: object                  # file for full tracebacks
    report: object = None        # the `Report` (the notebooks part saves its progress in it)
    fail: str | None = None
    notebooks: list | None = None   # part `notebooks`: the stems to run (None: every chapter)
    root: Path | None = None     # the stand-in FSC-147 folder (part `setup`)
    files: dict = dataclasses.field(default_factory=dict)   # artefacts: counter_r50, segmenter_r50, ...

    def need(self, key: str) -> Path:
        "An artefact an earlier part makes (a clear failure when that part failed)."
        p = self.root if key == 'root' else self.files.get(key)
        if p is None or not Path(p).exists(): raise RuntimeError(f"needs {key!r}, which an earlier part did not make")
        return Path(p)


def rel_err(a: float, b: float) -> float:
    "|a − b| relative to max(|b|, 1) (a count near 0 would make a plain ratio meaningless)."
    return abs(a - b) / max(abs(b), 1.0)


def resnet50_imagenet_available() -> bool:
    "Whether ResNet-50's ImageNet file is already on this machine (checked offline; never downloaded)."
    from segcount.backbones import resolve_weights
    try: resolve_weights('resnet50', download=False); return True
    except Exception: return False


# --- parts -----------------------------------------------------------------------------------------------
def part_setup(ctx: Ctx) -> dict:
    "The stand-in FSC-147-layout folder: generated scenes of 2-3 kinds, split 60/20/20."
    from segcount.data import FSC147
    from segcount.synthetic import generate_scenes
    c = ctx.cfg
    ctx.root = generate_scenes(ctx.tmp / 'FSC147-standin', c.scenes, seed=0, width=c.scene_width,
                               height=c.scene_height, splits=(0.6, 0.2, 0.2), count_range=c.count_range,
                               dense_prob=0.0, n_kinds=(2, 3), progress=False)
    n = {s: len(FSC147(ctx.root, s, density=False)) for s in ('train', 'val', 'test')}
    check(all(n.values()), f"a split is empty: {n}")
    return dict(images=sum(n.values()), **{f"n_{k}": v for k, v in n.items()})


def part_predictor(ctx: Ctx) -> dict:
    """The embedded Predictor on the bundled examples, count and seg-then-count: device float32 vs CPU float32
    (≤ 1e-3 relative) and device autocast to float16 (torch's default on CUDA) vs CPU float32 (≤ 1%). Autocast to
    bfloat16 (what `training.amp_dtype` picks for training on a bf16 GPU) is measured too, and only reported."""
    import torch
    import segcount
    from segcount.data import read_groups
    from segcount.pipeline import Predictor
    samples = read_groups(Path(segcount.__file__).parent / 'assets' / 'examples' / 'examples.json')
    cpu, dev = Predictor.from_weights(device='cpu'), Predictor.from_weights(device=ctx.device)
    rows, worst32, worst_amp, worst_bf16, t_cpu, t_dev = [], 0.0, 0.0, 0.0, 0.0, 0.0
    for s in samples[:ctx.cfg.predictor_examples]:
        for method in ('count', 'seg-then-count'):
            a = cpu.predict(s.image, s.boxes, method=method)
            b = dev.predict(s.image, s.boxes, method=method)
            with torch.autocast(ctx.device.type, dtype=torch.float16):
                c = dev.predict(s.image, s.boxes, method=method)
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16):
                d = dev.predict(s.image, s.boxes, method=method)
            e32, eamp, ebf = rel_err(b.count, a.count), rel_err(c.count, a.count), rel_err(d.count, a.count)
            mask_same = None if a.mask is None else float((a.mask == b.mask).mean())
            rows.append(dict(id=s.name, method=method, cpu=round(a.count, 4), device_fp32=round(b.count, 4),
                             device_autocast=round(c.count, 4), device_bf16=round(d.count, 4), rel_fp32=e32,
                             rel_autocast=eamp, rel_bf16=ebf, mask_same=mask_same))
            worst32, worst_amp, worst_bf16 = max(worst32, e32), max(worst_amp, eamp), max(worst_bf16, ebf)
            t_cpu += a.seconds; t_dev += b.seconds
    bad = [r for r in rows if r['rel_fp32'] > 1e-3 or r['rel_autocast'] > 1e-2]
    check(not bad, f"{len(bad)} count(s) off: {bad[0]['id']} {bad[0]['method']} cpu {bad[0]['cpu']} "
                   f"fp32 {bad[0]['device_fp32']} autocast {bad[0]['device_autocast']}" if bad else "")
    return dict(n_predictions=len(rows), max_rel_err_fp32=worst32, max_rel_err_autocast=worst_amp,
                autocast_dtype='float16', max_rel_err_bf16=worst_bf16, cpu_s_per_image=t_cpu / len(rows),
                device_s_per_image=t_dev / len(rows), rows=rows)


def toy_root(ctx: Ctx) -> Path:
    "The training parts' data: `make_toy_fsc147` discs (targets) and squares (distractors), made once."
    if 'toy' not in ctx.files:
        from segcount.training import make_toy_fsc147
        ctx.files['toy'] = make_toy_fsc147(ctx.tmp / 'toy', n_images=ctx.cfg.toy_images, size=ctx.cfg.toy_size, seed=0)
    return ctx.files['toy']


def _train_kwargs(ctx: Ctx, **kw) -> dict:
    """Arguments of `train_counter` shared by the training and torchrun parts: MobileNetV2 with its shipped ImageNet
    file, AMP, and no random Eq. 4 masks (`mask_prob=0`), so that the epoch loss is one fixed objective that must fall."""
    c = ctx.cfg
    return dict(dict(backbone='mobilenet_v2', backbone_weights='imagenet', batch_size=c.batch_size, height=c.height,
                     lr=3e-3, amp=True, mask_prob=0.0, progress=False, max_train_images=c.max_train_images,
                     max_val_images=c.max_train_images, log=lambda m: None), **kw)


def _loss_summary(h: list) -> dict:
    return dict(first_loss=h[0]['train_loss'], last_loss=h[-1]['train_loss'],
                images_per_s=sum(r['images_per_s'] for r in h) / len(h))


def part_counter_training(ctx: Ctx) -> dict:
    """`train_counter` with AMP on the toy folder: frozen trunk (cached features) for E−1 epochs, then resumed from
    last.pt to E; unfrozen trunk for a few epochs. Checks: checkpoints load, resume continues the history, the loss
    goes down (last epoch < 0.9 × first, frozen; last < first, unfrozen)."""
    from segcount.model_files import load_checkpoint
    from segcount.training import amp_dtype, train_counter
    c, root = ctx.cfg, toy_root(ctx)
    out = ctx.tmp / 'train'
    first = train_counter(root, out / 'frozen', epochs=c.counter_epochs - 1, device=str(ctx.device),
                          **_train_kwargs(ctx))
    res = train_counter(root, out / 'frozen', epochs=c.counter_epochs, resume=True, device=str(ctx.device),
                        **_train_kwargs(ctx))
    h = res['history']
    check(res['epochs'] == c.counter_epochs, f"resume ended at epoch {res['epochs']}, not {c.counter_epochs}")
    check([r['epoch'] for r in h] == list(range(1, c.counter_epochs + 1)), "resumed history is not 1..E")
    check(h[:len(first['history'])] == first['history'], "resume rewrote the first run's history")
    ck = load_checkpoint(out / 'frozen' / 'last.pt')
    check(ck['epoch'] == c.counter_epochs and 'optimizer' in ck, "last.pt lacks the epoch or the optimizer")
    load_checkpoint(out / 'frozen' / 'best.pt')
    fr = _loss_summary(h)
    check(fr['last_loss'] < 0.9 * fr['first_loss'], f"frozen: loss did not go down ({fr['first_loss']:.4g} → {fr['last_loss']:.4g})")
    un = train_counter(root, out / 'unfrozen', epochs=c.finetune_epochs, freeze_backbone=False, device=str(ctx.device),
                       **_train_kwargs(ctx, lr=1e-3))
    uf = _loss_summary(un['history'])
    check(uf['last_loss'] < uf['first_loss'], f"unfrozen: loss did not go down ({uf['first_loss']:.4g} → {uf['last_loss']:.4g})")
    load_checkpoint(out / 'unfrozen' / 'last.pt')
    ctx.files['counter_run'] = out / 'frozen'
    dt = amp_dtype(ctx.device, True)
    n_train = len(h) and round(h[-1]['images_per_s'] * h[-1]['seconds'])
    return dict(amp_dtype=str(dt).replace('torch.', '') if dt else 'none (AMP is CUDA-only)', data='make_toy_fsc147',
                backbone='mobilenet_v2',
                backbone_weights='imagenet (the shipped MobileNetV2 file)', epochs=c.counter_epochs,
                resumed_from=c.counter_epochs - 1, images_per_epoch=n_train,
                steps=c.counter_epochs * math.ceil(max(n_train, 1) / c.batch_size),
                frozen={k: round(v, 5) for k, v in fr.items()}, val_mae=h[-1].get('val_mae'),
                unfrozen={k: round(v, 5) for k, v in uf.items()}, unfrozen_epochs=c.finetune_epochs)


def _torchrun(ctx: Ctx, nproc: int) -> dict:
    "One `torchrun --standalone --nproc_per_node nproc` launch of this script's training worker; its result."
    run = ctx.tmp / f'ddp{nproc}'
    args = dict(root=str(toy_root(ctx)), out_dir=str(run / 'out'), epochs=ctx.cfg.ddp_epochs,
                **{k: v for k, v in _train_kwargs(ctx, mask_prob=0.5).items() if k != 'log'})
    run.mkdir(parents=True, exist_ok=True)
    (run / 'args.json').write_text(json.dumps(args))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
    if ctx.device.type == 'cpu': env['CUDA_VISIBLE_DEVICES'] = ''   # under torchrun the library picks CUDA by itself
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
           str(Path(__file__).resolve()), '--worker-train', str(run / 'args.json')]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    secs = time.monotonic() - t0
    (run / 'log.txt').write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        lines = [l for l in (p.stderr + p.stdout).splitlines() if l.strip() and 'Error' in l] or (p.stderr or p.stdout).splitlines() or ['']
        raise RuntimeError(f"torchrun --nproc_per_node {nproc} exited {p.returncode}: {lines[-1].strip()[:300]}")
    res = json.loads((run / 'result.json').read_text())
    check(res['epochs'] == ctx.cfg.ddp_epochs, f"nproc {nproc}: trained {res['epochs']} epochs")
    check(res['world_size'] == nproc, f"nproc {nproc}: the worker saw WORLD_SIZE {res['world_size']}")
    return dict(seconds=round(secs, 2), **res)


def part_torchrun(ctx: Ctx) -> dict:
    """The counter training under torchrun (as `counter_training`, with random Eq. 4 masks on: mask_prob 0.5):
    1 process, and 2 processes (gloo on a CPU; on CUDA only with ≥ 2 GPUs)."""
    import torch
    out = dict(nproc_1=_torchrun(ctx, 1))
    check(out['nproc_1']['ddp'], "torchrun --nproc_per_node 1 did not take train_counter's DDP path")
    if ctx.device.type == 'cuda' and torch.cuda.device_count() < 2:
        out['nproc_2'] = dict(skipped=True, reason="one GPU: train_counter puts local rank N on cuda:N and picks NCCL, "
                                                    "which refuses two ranks on one GPU (library choice, not changed here)")
    else:
        out['nproc_2'] = _torchrun(ctx, 2)
        out['nproc_2']['backend'] = 'nccl' if torch.cuda.is_available() else 'gloo'
    return out


def worker_train(args_file: str) -> int:
    "torchrun's entry: `train_counter` with the arguments in `args_file`; rank 0 writes result.json beside it."
    import torch
    from segcount.training import train_counter
    a = json.loads(Path(args_file).read_text())
    world, rank = int(os.environ.get('WORLD_SIZE', '1')), int(os.environ.get('RANK', '0'))
    res = train_counter(log=lambda m: None, **a)
    if rank == 0:
        h = res['history']
        out = dict(world_size=world, epochs=res['epochs'], images_per_s=h[-1]['images_per_s'] if h else None,
                   last_loss=h[-1]['train_loss'] if h else None, ddp=torch.distributed.is_initialized(),
                   backend=torch.distributed.get_backend() if torch.distributed.is_initialized() else None)
        if torch.cuda.is_available(): out['peak_gpu_mb'] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
        atomic_json(out, Path(args_file).with_name('result.json'))
    if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()
    return 0


def part_kmeans_sweep(ctx: Ctx) -> dict:
    """`kmeans_sweep` (batched K-means over K = 2..6, fast mode) with the embedded counter on the device and on the
    CPU: images per second of each, masks and K* equal for the same seed."""
    from segcount.data import FSC147
    from segcount.counter import resolve_counter
    from segcount.pseudolabel import kmeans_sweep
    import torch
    ds = FSC147(ctx.need('root'), 'train')
    samples = [ds[i] for i in range(min(ctx.cfg.sweep_images, len(ds)))]
    res, secs = {}, {}
    for key, where in (('cpu', 'cpu'), ('device', str(ctx.device))):   # on a CPU: two runs, so determinism
        counter, _ = resolve_counter(None, where)
        kmeans_sweep(samples[0], counter, height=ctx.cfg.sweep_height)          # warm-up (kernels, allocator)
        if where.startswith('cuda'): torch.cuda.synchronize()
        t0 = time.perf_counter()
        res[key] = [kmeans_sweep(s, counter, seed=0, height=ctx.cfg.sweep_height) for s in samples]
        if where.startswith('cuda'): torch.cuda.synchronize()
        secs[key] = time.perf_counter() - t0
    a, b = res['cpu'], res['device']
    same = [float((x.masks == y.masks).mean()) for x, y in zip(a, b)]
    k_same = sum(x.k == y.k for x, y in zip(a, b))
    check(min(same) == 1.0, f"masks differ from the CPU's: fraction of equal cells per image {same}")
    check(k_same == len(a), f"K* differs from the CPU's on {len(a) - k_same} of {len(a)} images")
    ips_cpu, ips_dev = len(a) / secs['cpu'], len(b) / secs['device']
    return dict(images=len(a), grid=list(a[0].mask.shape), ks=a[0].ks, k_star=[x.k for x in a],
                cpu_images_per_s=ips_cpu, device_images_per_s=ips_dev, speedup=ips_dev / ips_cpu,
                masks_equal_fraction=min(same))


def part_segmenter_training(ctx: Ctx) -> dict:
    "`train_segmenter` (pseudo masks by the K sweep with the embedded counter, then Eq. 7): 1 epoch, then a resume."
    from segcount.segmenter import load_segmenter_checkpoint, train_segmenter
    c = ctx.cfg
    kw = dict(counter_weights=None, lr=1e-3, batch_size=c.batch_size, max_images=c.segmenter_images,
              device=str(ctx.device), backbone='mobilenet_v2', progress=False, log=lambda m: None)
    run = ctx.tmp / 'segmenter'
    train_segmenter(ctx.need('root'), run, epochs=1, **kw)
    res = train_segmenter(ctx.need('root'), run, epochs=c.segmenter_epochs, resume=True, **kw)
    h = res['history']
    check(res['epochs'] == c.segmenter_epochs, f"resume ended at epoch {res['epochs']}")
    check(all(math.isfinite(r['train_loss']) for r in h), "non-finite loss")
    check(load_segmenter_checkpoint(run / 'last.pt')['epoch'] == c.segmenter_epochs, "last.pt has the wrong epoch")
    return dict(n_train=res['n_train'], n_val=res['n_val'], skipped=len(res['skipped']), epochs=res['epochs'],
                first_loss=h[0]['train_loss'], last_loss=h[-1]['train_loss'],
                images_per_s=sum(r['images_per_s'] for r in h) / len(h), best_val_iou=res['best_val_iou'],
                counter=res['counter'], backbone='mobilenet_v2 (frozen, shipped ImageNet file)')


def _cli(argv: list) -> dict:
    "Run `segcount ARGV --json` in-process (the CLI's own code path); its one JSON object."
    from segcount.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): rc = main([str(a) for a in argv] + ['--json'])
    check(rc == 0, f"segcount {argv[0]} exited {rc}")
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def part_table1(ctx: Ctx) -> dict:
    "`segcount table 1` on a small generated two-class set (embedded counter and segmenter) on the device."
    from segcount.synthetic import make_synthetic_set
    g = make_synthetic_set(ctx.need('root'), 'test', ctx.tmp / 'syn-test', seed=3, n=ctx.cfg.table_images,
                           progress=False)
    t = _cli(['table', '1', '--groups', g, '--device', ctx.device, '--limit', ctx.cfg.table_images])
    vals = [v for r in t['rows'] for v in r[1:] if v is not None]
    check(len(t['rows']) >= 3, f"table 1 has {len(t['rows'])} rows (expected count, seg-then-count, true region)")
    check(all(math.isfinite(v) for v in vals), "a non-finite number in table 1")
    return dict(images=ctx.cfg.table_images, rows={r[0]: dict(zip(t['columns'][1:], r[1:])) for r in t['rows']})


# --- every chapter's FULL mode, through the library -------------------------------------------------------------
def full_mode(ctx: Ctx):
    """The chapters' `mode`, as `course_mode()` reads it from SEGCOUNT_FULL / SEGCOUNT_FSC147 (epochs capped by
    SEGCOUNT_MAX_EPOCHS), on the device the check runs on."""
    from segcount.course import course_mode
    os.environ['SEGCOUNT_FULL'] = '1'
    os.environ['SEGCOUNT_FSC147'] = str(ctx.need('root'))
    m = course_mode()
    return dataclasses.replace(m, device=str(ctx.device), limit=ctx.cfg.full_limit if m.limit is None else m.limit)


def full_00_data(ctx: Ctx) -> dict:
    "00_data and 03_course: course_mode's full mode reads the FSC-147 folder; every split loads; items come out at height 384."
    from segcount.course import course_mode
    from segcount.data import FSC147, CountingDataset
    m = full_mode(ctx)
    check(m.full and m.backbone == 'resnet50' and m.root == ctx.root, f"course_mode() gave {m}")
    check(m.data(ctx.tmp / 'unused') == ctx.root, "mode.data() is not the FSC-147 folder in full mode")
    check(course_mode(False).full is True, "SEGCOUNT_FULL=1 does not override a chapter's FULL = False")
    n = {s: len(FSC147(m.root, s)) for s in ('train', 'val', 'test')}
    it = CountingDataset(FSC147(m.root, 'train'))[0]
    check(it['image'].shape[1] == 384, f"an item's height is {it['image'].shape[1]}, not 384")
    return dict(splits=n, counter_epochs=m.counter_epochs, segmenter_epochs=m.segmenter_epochs)


def full_01_synthetic(ctx: Ctx) -> dict:
    "01_synthetic: a two-class image from the FSC-147 folder (the FULL cell) and the two-class benchmark set."
    import numpy as np
    from segcount.data import FSC147, read_groups
    from segcount.synthetic import make_synthetic_set, make_two_class_image
    m = full_mode(ctx)
    ds = FSC147(m.root)
    a = ds[0]
    b = next(ds[i] for i in range(1, len(ds)) if ds[i].klass != a.klass)
    pair = make_two_class_image(a, b, np.random.default_rng(0))
    x1, y1, x2, y2 = pair.region
    check((y1, y2) == (0.0, 384.0) and pair.klass == a.klass, "two-class image: wrong region or class")
    check(bool(((pair.points[:, 0] >= x1) & (pair.points[:, 0] < x2)).all()), "target dots outside the region")
    g = {s: make_synthetic_set(m.root, s, ctx.tmp / f'full-syn-{s}', seed=0, progress=False) for s in ('val', 'test')}
    ctx.files.update({f'syn_{s}': p for s, p in g.items()})
    return dict(pair_count=int(pair.count), **{f'syn_{s}_images': len(read_groups(p)) for s, p in g.items()})


def full_02_metrics(ctx: Ctx) -> dict:
    "02_metrics: no FULL-specific cell; course_mode() in full mode and the metrics on made-up counts."
    import numpy as np
    from segcount.metrics import count_metrics, region_error
    full_mode(ctx)
    m = count_metrics([1.0, 2.0, 0.5], [10.0, 20.0, 5.0])
    check(abs(m['MAE'] - 3.5 / 3) < 1e-9, f"MAE {m['MAE']}")
    d = np.zeros((32, 32), np.float32); d[:, 16:] = 1 / 512
    check(abs(region_error(1.0, d, (0, 0, 16, 32)) - 2.0) < 1e-5, "region error")
    return dict(full_specific_cells=0, MAE=m['MAE'])


def full_10_backbones(ctx: Ctx) -> dict:
    """10_backbones: mode.backbone (ResNet-50) on the device; ImageNet top-1 on the cat as the notebook checks when the
    ResNet-50 file is on this machine, else random init (backbone_weights=None) and the feature shape only."""
    import numpy as np
    import torch
    import segcount
    from PIL import Image
    from segcount.backbones import build_backbone
    m = full_mode(ctx)
    have = resnet50_imagenet_available()
    bb = build_backbone(m.backbone, weights='imagenet' if have else None).to(ctx.device).eval()
    img = Image.open(Path(segcount.__file__).parent / 'assets' / 'examples' / 'chelsea.jpg').convert('RGB')
    x = torch.from_numpy(np.asarray(img.resize((336, 224)), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad(): f = bb(x.to(ctx.device))
    check(tuple(f.shape) == (1, bb.out_channels, 14, 21), f"features {tuple(f.shape)}")
    check(bool(torch.isfinite(f).all()), "non-finite features")
    return dict(backbone=m.backbone, backbone_weights='imagenet' if have else 'None (random init: the ResNet-50 '
                'ImageNet file is not on this machine, and is never faked)', out_channels=bb.out_channels,
                stride=bb.stride, feature_shape=list(f.shape))


def full_11_counter(ctx: Ctx) -> dict:
    "11_counter: Counter(mode.backbone) on the coins example on the device; a half mask zeroes that half's density."
    import torch
    import segcount
    from segcount.counter import Counter
    from segcount.data import crop_exemplars, read_groups, resize_sample, to_tensor
    m = full_mode(ctx)
    s = resize_sample(read_groups(Path(segcount.__file__).parent / 'assets' / 'examples' / 'examples.json')[0], 384)
    x = to_tensor(s.image)[None].to(ctx.device)
    ex = crop_exemplars(x[0], s.boxes, 128)[None]
    torch.manual_seed(0)
    weights = 'imagenet' if resnet50_imagenet_available() else None
    c = Counter(m.backbone, backbone_weights=weights).to(ctx.device).eval()
    with torch.no_grad():
        out = c(x, ex)
        h, w = c.feature_size(*x.shape[-2:])
        half = c(x, ex, mask=(torch.arange(w, device=ctx.device).view(1, 1, 1, w).expand(1, 1, h, w) < w // 2))
    check(tuple(out['density'].shape[-2:]) == tuple(x.shape[-2:]), "density map size")
    check(float(half['density'][..., (w // 2) * 16:].sum()) == 0.0, "the masked half still has density")
    return dict(backbone=m.backbone, backbone_weights=weights or 'None (random init; ResNet-50 ImageNet file absent)',
                count=float(out['count'][0]), grid=[h, w])


def full_12_training(ctx: Ctx) -> dict:
    """12_training's FULL cell: train_counter on the FSC-147 folder, mode.backbone with the trunk trained
    (freeze_backbone=False), lr 1e-5, batch 8, epochs = mode.counter_epochs (capped); exported as the
    counter-r50.safetensors that 40_benchmarks' FULL cell loads."""
    from segcount.training import export_weights, train_counter
    m = full_mode(ctx)
    weights = 'imagenet' if resnet50_imagenet_available() else None
    res = train_counter(m.root, ctx.tmp / 'full-long', backbone=m.backbone, backbone_weights=weights, device=m.device,
                        batch_size=8, epochs=m.counter_epochs, lr=1e-5, freeze_backbone=False, progress=False,
                        height=ctx.cfg.full_height, max_train_images=m.limit and 4 * m.limit,
                        max_val_images=m.limit, log=lambda s: None)
    h = res['history']
    check(res['epochs'] == m.counter_epochs and all(math.isfinite(r['train_loss']) for r in h), "training did not finish")
    ctx.files['counter_r50'] = export_weights(res['best'], ctx.tmp / 'runs' / 'counter-r50.safetensors')
    return dict(backbone=m.backbone, backbone_weights=weights or 'None (random init; ResNet-50 ImageNet file absent)',
                epochs=res['epochs'], height=ctx.cfg.full_height, last_loss=h[-1]['train_loss'],
                images_per_s=h[-1]['images_per_s'], val_mae=h[-1].get('val_mae'))


def full_20_kmeans_sweep(ctx: Ctx) -> dict:
    "20_kmeans_sweep's FULL cells: the default counter on mode.device, pseudolabel_split of the train split, resumed."
    from segcount.core import pick_device
    from segcount.counter import resolve_counter
    from segcount.pseudolabel import pseudolabel_split
    m = full_mode(ctx)
    counter, desc = resolve_counter(None, pick_device(m.device))
    kw = dict(counter=counter, progress=False, limit=m.limit, device=m.device)
    man = pseudolabel_split(m.root, 'train', ctx.tmp / 'full-pl', **kw)
    again = pseudolabel_split(m.root, 'train', ctx.tmp / 'full-pl', **kw)
    check(man['n_failed'] == 0 and man['n_done'] > 0, f"{man['n_failed']} failed, {man['n_done']} done")
    check(again['n_skipped'] == man['n_done'], "the second pass did not skip what the first one did")
    return dict(counter=desc, n_done=man['n_done'], k_histogram=man['k_histogram'], seconds_split=man['seconds'])


def full_21_segmenter(ctx: Ctx) -> dict:
    """21_segmenter's FULL cell: train_segmenter (lr 1e-3, epochs then a resume to mode.segmenter_epochs), export,
    load; the segmenter-r50.safetensors 40_benchmarks' FULL cell loads."""
    from segcount.segmenter import export_segmenter, load_segmenter, train_segmenter
    m = full_mode(ctx)
    have = resnet50_imagenet_available()
    backbone = m.backbone if have else 'mobilenet_v2'
    kw = dict(lr=1e-3, max_images=m.limit and 2 * m.limit, backbone=backbone, device=m.device, progress=False,
              log=lambda s: None)
    e2 = max(2, m.segmenter_epochs)
    train_segmenter(m.root, ctx.tmp / 'full-seg', epochs=e2 - 1, **kw)
    res = train_segmenter(m.root, ctx.tmp / 'full-seg', epochs=e2, resume=True, **kw)
    check(res['epochs'] == e2, f"resume ended at epoch {res['epochs']}")
    f = export_segmenter(ctx.tmp / 'full-seg' / 'best.pt', ctx.tmp / 'runs' / 'segmenter-r50.safetensors')
    load_segmenter(f)
    ctx.files['segmenter_r50'] = f
    return dict(backbone=backbone, backbone_weights='imagenet' + ('' if have else ' (MobileNetV2: train_segmenter has no '
                'backbone_weights argument and the ResNet-50 ImageNet file is absent)'), epochs=res['epochs'],
                n_train=res['n_train'], last_loss=res['history'][-1]['train_loss'], counter=res['counter'])


def full_30_seg_then_count(ctx: Ctx) -> dict:
    "30_seg_then_count: no FULL-specific cell; the Predictor on the FULL parts' counter and segmenter, both methods."
    from segcount.data import FSC147
    from segcount.pipeline import Predictor
    m = full_mode(ctx)
    pr = Predictor.from_weights(ctx.need('counter_r50'), device=m.device, segmenter=ctx.need('segmenter_r50'))
    s = FSC147(m.root, 'test')[0]
    a, b = pr.predict(s.image, s.boxes), pr.predict(s.image, s.boxes, method='seg-then-count')
    check(math.isfinite(a.count) and math.isfinite(b.count), "non-finite count")
    return dict(full_specific_cells=0, count=a.count, seg_then_count=b.count, shared_backbone=pr.shared_backbone)


def full_40_benchmarks(ctx: Ctx) -> dict:
    """40_benchmarks' FULL cells: two-class val/test sets from the FSC-147 folder, the counter-r50 / segmenter-r50 files,
    paper tables 1, 3, 4 (reusing 3) and 5 with limit=mode.limit, and Figure 3 on test entries 0, 2, 8, 12."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from segcount.data import read_groups
    from segcount.evaluate import paper_table, plot_figure3, render_table
    from segcount.pipeline import Predictor
    m = full_mode(ctx)
    sets = {n: read_groups(ctx.need(f'syn_{n}')) for n in ('val', 'test')}
    full = Predictor.from_weights(ctx.need('counter_r50'), device=m.device, segmenter=ctx.need('segmenter_r50'))
    counter, segmenter = full.counter, full.segmenter
    t1 = paper_table(1, sets, counter, segmenter, None, limit=m.limit, progress=False)
    t3 = paper_table(3, sets, counter, segmenter, limit=m.limit, progress=False)
    t4 = paper_table(4, sets, counter, segmenter, limit=m.limit, progress=False, precomputed=t3['mask_benchmark'])
    t5 = paper_table(5, {'test': sets['test'], **{k: v for k, v in sets.items() if k != 'test'}}, counter,
                     finetuned=None, limit=m.limit, progress=False)
    for t in (t1, t3, t4, t5): render_table(t)
    two = sets['test']
    idx = [i for i in (0, 2, 8, 12) if i < len(two)]
    plot_figure3(Predictor(counter, segmenter, device=counter.device), [two[i] for i in idx])
    plt.close('all')
    return dict(rows={f"table{t['number']}": len(t['rows']) for t in (t1, t3, t4, t5)}, figure3_entries=idx,
                note=None if len(idx) == 4 else f"the FULL cell indexes test entries 0, 2, 8, 12: the stand-in has "
                                                 f"{len(two)}, so Figure 3 used {idx}")


def full_50_cli(ctx: Ctx) -> dict:
    "50_cli: no FULL-specific cell; `segcount count` and `segcount evaluate` on the FULL parts' weights, on the device."
    from segcount.data import FSC147
    m = full_mode(ctx)
    s = FSC147(m.root, 'test')[0]
    img = ctx.need('root') / 'images_384_VarV2' / s.name
    box = [str(round(float(v), 1)) for v in s.boxes[0]]
    c = _cli(['count', img, '--box', *box, '--weights', ctx.need('counter_r50'), '--device', m.device])
    e = _cli(['evaluate', '--root', m.root, '--split', 'test', '--limit', m.limit or 1000000, '--quiet',
              '--weights', ctx.need('counter_r50'), '--device', m.device])
    check(math.isfinite(c['count']) and math.isfinite(e['MAE']), "non-finite count or MAE")
    return dict(full_specific_cells=0, count=c['count'], evaluate_MAE=e['MAE'])


# --- the notebooks themselves, in FULL mode -------------------------------------------------------------------
NB_INJECT = """
# gpu_check: FULL mode on the stand-in folder (SEGCOUNT_FULL, SEGCOUNT_FSC147; epochs capped by SEGCOUNT_MAX_EPOCHS),
# on the checked device, with a backbone whose weights exist here
import dataclasses as _dc, os as _os
from segcount.course import course_mode
FULL = False
mode = course_mode(FULL)
mode = _dc.replace(mode, device=_os.environ['SEGCOUNT_GPU_CHECK_DEVICE'], backbone=_os.environ['SEGCOUNT_GPU_CHECK_BACKBONE'])
assert mode.full, mode
"""

NB_CHILD = r"""
import sys
from nbdev.test import test_nb
ok, secs = test_nb(sys.argv[1], skip_flags=['notest'], force_flags=['slow', 'cuda'], profile=False,
                   cell_timeout=int(sys.argv[2]))
sys.exit(0 if ok else 1)
"""


def _prepare_notebooks(ctx: Ctx) -> tuple[Path, list]:
    """A scratch copy of nbs/ (beside copies of pyproject.toml and evalsets/ and a runs/ folder holding the FULL parts'
    counter-r50 / segmenter-r50 files) with each notebook's `FULL = False` cell replaced by `NB_INJECT`."""
    base = ctx.tmp / 'nbrun'
    if base.exists(): shutil.rmtree(base)
    shutil.copytree(REPO / 'nbs', base / 'nbs')
    shutil.copy(REPO / 'pyproject.toml', base / 'pyproject.toml')
    (base / 'evalsets').symlink_to(REPO / 'evalsets')
    (base / 'runs').mkdir()
    for k in ('counter_r50', 'segmenter_r50'):
        if ctx.files.get(k): shutil.copy(ctx.files[k], base / 'runs' / Path(ctx.files[k]).name)
    nbs = []
    for p in sorted((base / 'nbs').glob('[0-9]*.ipynb')):
        nb = json.loads(p.read_text())
        hit = [c for c in nb['cells'] if c['cell_type'] == 'code' and ''.join(c['source']).lstrip().startswith('FULL =')]
        if hit: hit[0]['source'] = NB_INJECT.strip().splitlines(keepends=True)
        p.write_text(json.dumps(nb))
        if ctx.notebooks is None or p.stem in ctx.notebooks: nbs.append((p, bool(hit)))
    return base, nbs


def part_notebooks(ctx: Ctx) -> dict:
    "Every chapter notebook executed in FULL mode (nbdev's test_nb, slow and cuda cells too), a few at a time."
    from concurrent.futures import ThreadPoolExecutor
    base, nbs = _prepare_notebooks(ctx)
    check(bool(nbs), f"no notebook matches --notebooks {ctx.notebooks}")
    have = resnet50_imagenet_available()
    env = dict(os.environ, SEGCOUNT_FULL='1', SEGCOUNT_FSC147=str(ctx.need('root')), SEGCOUNT_GPU_CHECK_DEVICE=str(ctx.device),
               SEGCOUNT_GPU_CHECK_BACKBONE='resnet50' if have else 'mobilenet_v2', MPLBACKEND='Agg')
    env.setdefault(EPOCHS_CAP_ENV, str(ctx.cfg.epochs_cap))

    def one(item):
        "Execute one notebook in its own process → (stem, record)."
        p, injected = item
        t0 = time.monotonic()
        try:
            r = subprocess.run([sys.executable, '-c', NB_CHILD, str(p), str(ctx.cfg.notebook_timeout)], cwd=p.parent,
                               env=env, capture_output=True, text=True, timeout=ctx.cfg.notebook_timeout + 60)
            ok, err, why = r.returncode == 0, r.stderr, f"exit code {r.returncode}"
        except subprocess.TimeoutExpired:
            ok, err, why = False, '', f"timed out after {ctx.cfg.notebook_timeout + 60} s"
        rec = dict(ok=ok and injected, seconds=round(time.monotonic() - t0, 1))
        if not injected: rec['reason'] = "no `FULL = ...` cell to switch"
        elif not ok:
            errs = [l.strip() for l in err.splitlines() if 'Error' in l or 'Exception' in l]
            rec['reason'] = (errs[-1] if errs else why)[:300]
            (base / f"{p.stem}.stderr.txt").write_text(err)
        return p.stem, rec

    out = dict(backbone=env['SEGCOUNT_GPU_CHECK_BACKBONE'], notebooks={},
               note=None if have else "MobileNetV2 in place of ResNet-50 (its ImageNet file is absent and never faked)")
    t0 = time.monotonic()
    with ThreadPoolExecutor(max(1, ctx.cfg.notebook_workers)) as ex:
        for stem, rec in ex.map(one, nbs):     # in order; each result is saved at once (a killed run keeps them)
            out['notebooks'][stem] = rec
            ctx.report.add('notebooks', dict(ok=False, seconds=round(time.monotonic() - t0, 3),
                                             reason=f"unfinished: {len(out['notebooks'])} of {len(nbs)} notebooks done", **out))
    bad = {k: v['reason'] for k, v in out['notebooks'].items() if not v['ok']}
    check(not bad, f"{len(bad)} notebook(s) failed, e.g. {next(iter(bad), '')}: {next(iter(bad.values()), '')}", out)
    return out


# --- driver ------------------------------------------------------------------------------------------------------
PARTS = dict(setup=part_setup, predictor=part_predictor, counter_training=part_counter_training,
             torchrun=part_torchrun, kmeans_sweep=part_kmeans_sweep, segmenter_training=part_segmenter_training,
             table1=part_table1, full_00_data=full_00_data, full_01_synthetic=full_01_synthetic,
             full_02_metrics=full_02_metrics, full_10_backbones=full_10_backbones, full_11_counter=full_11_counter,
             full_12_training=full_12_training, full_20_kmeans_sweep=full_20_kmeans_sweep,
             full_21_segmenter=full_21_segmenter, full_30_seg_then_count=full_30_seg_then_count,
             full_40_benchmarks=full_40_benchmarks, full_50_cli=full_50_cli, notebooks=part_notebooks)
NOT_TINY = ('notebooks',)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', type=Path, default=Path('gpu-check.json'), help='the JSON summary (default gpu-check.json)')
    p.add_argument('--device', default='cuda', help='cuda (default), cuda:N or cpu')
    p.add_argument('--tiny', action='store_true', help='small sizes, for a CPU (about 90 s on one thread)')
    p.add_argument('--parts', default=None,
                   help=f"comma-separated subset of: {', '.join(PARTS)} (default: all; --tiny leaves out "
                        f"{', '.join(NOT_TINY)}); `setup` is added when another part needs the stand-in folder")
    p.add_argument('--epochs-cap', type=int, default=None,
                   help=f'epochs of the FULL-mode parts (default: ${EPOCHS_CAP_ENV}, else 3; 21_segmenter needs >= 3)')
    p.add_argument('--notebooks', default=None, help='part `notebooks`: a comma-separated subset, e.g. 00_data,12_training')
    p.add_argument('--keep', type=Path, default=None, help='keep the scratch folder here (default: a temporary one)')
    p.add_argument('--fail', default=None, metavar='PART', help='make PART raise at once (tests the report itself)')
    p.add_argument('--worker-train', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.parts:
        a.parts = [s.strip() for s in a.parts.split(',') if s.strip()]
        unknown = [s for s in a.parts if s not in PARTS]
        if unknown: p.error(f"unknown part(s) {unknown}; choose from {list(PARTS)}")
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.worker_train: return worker_train(a.worker_train)
    import torch
    t0 = time.monotonic()
    dev = torch.device(a.device)
    cfg = TINY if a.tiny else FULL_SIZES
    cap = a.epochs_cap if a.epochs_cap is not None else int(os.environ.get(EPOCHS_CAP_ENV, cfg.epochs_cap))
    os.environ[EPOCHS_CAP_ENV] = str(cap)
    cfg = dataclasses.replace(cfg, epochs_cap=cap)
    names = a.parts or [n for n in PARTS if not (a.tiny and n in NOT_TINY)]
    if names != ['setup'] and 'setup' not in names: names = ['setup'] + names
    names = [n for n in PARTS if n in names]
    header = dict(device=str(dev), tiny=a.tiny, started=time.strftime('%Y-%m-%d %H:%M:%S %z'),
                  torch=torch.__version__, cuda=torch.version.cuda, threads=torch.get_num_threads(),
                  device_name=(torch.cuda.get_device_name(dev) if dev.type == 'cuda' and torch.cuda.is_available()
                               else 'cpu'), config=dataclasses.asdict(cfg), argv=sys.argv[1:],
                  tf32=dict(cudnn=torch.backends.cudnn.allow_tf32, matmul=torch.backends.cuda.matmul.allow_tf32))
    report = Report(a.out, header)
    scratch = a.keep or Path(tempfile.mkdtemp(prefix='segcount-gpu-check-'))
    scratch.mkdir(parents=True, exist_ok=True)
    with open(scratch / 'tracebacks.txt', 'a') as log:
        ctx = Ctx(cfg, dev, scratch, log, report=report, fail=a.fail,
                  notebooks=[s.strip() for s in a.notebooks.split(',')] if a.notebooks else None)
        print(f"[gpu-check] device {header['device_name']} ({dev}), sizes {cfg.name}, parts: {', '.join(names)}", flush=True)
        for n in names:
            if dev.type == 'cuda' and not torch.cuda.is_available():
                report.add(n, dict(ok=False, seconds=0.0, reason='CUDA is not available (use --device cpu)'))
                print(f"[gpu-check] {n}: FAILED (CUDA is not available)", flush=True); continue
            run_part(n, PARTS[n], ctx, report)
    report.data['seconds'] = round(time.monotonic() - t0, 2)
    atomic_json(report.data, a.out)
    failed = [n for n, r in report.data['parts'].items() if not r['ok']]
    print(f"[gpu-check] {len(names) - len(failed)}/{len(names)} parts ok in {report.data['seconds']:.1f} s"
          + (f"; failed: {', '.join(failed)} (tracebacks in {scratch / 'tracebacks.txt'})" if failed else '')
          + f"; summary in {a.out}", flush=True)
    if a.keep is None and not failed: shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
