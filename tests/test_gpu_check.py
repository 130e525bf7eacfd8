"The GPU check (tools/gpu_check.py) runs on the CPU with --tiny in under 3 minutes, so the script cannot rot."
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'tools' / 'gpu_check.py'
BUDGET_S = 180   # the bound for the CPU run


def _run(tmp_path, *args, timeout=BUDGET_S):
    "Run the check on the CPU (one thread, never a GPU); (return code, JSON summary, output, seconds)."
    out = tmp_path / 'gpu-check.json'
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu', '--tiny', '--out', str(out), *args],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, json.loads(out.read_text()), p.stdout + p.stderr, time.monotonic() - t0


def _part_names():
    "Every part the script runs with --tiny (all of them but the notebooks)."
    import importlib.util
    spec = importlib.util.spec_from_file_location('gpu_check', SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules['gpu_check'] = mod   # dataclasses look their module up there
    try: spec.loader.exec_module(mod)
    finally: sys.modules.pop('gpu_check', None)
    return [n for n in mod.PARTS if n not in mod.NOT_TINY]


def test_tiny_cpu_run_passes_every_part(tmp_path):
    rc, summary, log, secs = _run(tmp_path)
    parts = summary['parts']
    failed = {n: r.get('reason') for n, r in parts.items() if not r['ok']}
    assert not failed, failed
    assert rc == 0, log[-3000:]
    assert list(parts) == _part_names()
    for name, r in parts.items():
        assert r['ok'] is True and isinstance(r['seconds'], float) and r['seconds'] > 0, (name, r)
    assert summary['ok'] is True and summary['device'] == 'cpu' and summary['tiny'] is True
    assert summary['format'] == 'segcount-gpu-check/1' and summary['config']['name'] == 'tiny'
    p = parts['predictor']
    assert p['max_rel_err_fp32'] <= 1e-3 and p['max_rel_err_autocast'] <= 1e-2
    t = parts['counter_training']
    assert t['frozen']['last_loss'] < t['frozen']['first_loss'] and t['frozen']['images_per_s'] > 0
    assert parts['torchrun']['nproc_2']['backend'] == 'gloo' and parts['torchrun']['nproc_2']['world_size'] == 2
    assert parts['kmeans_sweep']['masks_equal_fraction'] == 1.0
    assert parts['full_12_training']['backbone'] == 'resnet50'   # random init unless its ImageNet file is here
    assert secs < BUDGET_S


def test_a_failed_part_is_a_record_not_a_crash(tmp_path):
    rc, summary, log, _ = _run(tmp_path, '--parts', 'full_02_metrics', '--fail', 'full_02_metrics',
                               '--keep', str(tmp_path / 'scratch'), timeout=120)   # a failed run keeps its scratch
    assert 'raised on purpose' in (tmp_path / 'scratch' / 'tracebacks.txt').read_text()
    assert rc == 1
    assert 'Traceback' not in log
    assert summary['ok'] is False and list(summary['parts']) == ['setup', 'full_02_metrics']
    assert summary['parts']['setup']['ok'] is True
    r = summary['parts']['full_02_metrics']
    assert r['ok'] is False and r['seconds'] > 0
    assert 'raised on purpose' in r['reason'] and '\n' not in r['reason']


def test_unknown_part_is_a_usage_error(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), '--parts', 'nope', '--out', str(tmp_path / 'x.json')],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and 'unknown part' in p.stderr and not (tmp_path / 'x.json').exists()
