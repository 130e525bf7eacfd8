"""The GitHub workflows' own command lines, run here: every `run:` line that calls nbdev-test or pytest is executed
with its exact flags on a tiny stand-in target, so a flag a tool stops accepting fails `make test` instead of a
workflow nobody watches. Also: actions pinned to release tags, and the demo's extras installed where tests run."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / '.github' / 'workflows').glob('*.y*ml'))
BIN = Path(sys.executable).parent


def _steps():
    for wf in WORKFLOWS:
        for job, spec in yaml.safe_load(wf.read_text())['jobs'].items():
            for step in spec.get('steps', []): yield wf.name, job, step


def _lines(tool: str):
    "(workflow, job, command line) of every `run:` line calling `tool`."
    return [(wf, job, line.strip()) for wf, job, step in _steps() for line in step.get('run', '').splitlines()
            if re.search(rf'(^|\s){tool}(\s|$)', line)]


def _stand_ins(tmp: Path) -> dict:
    "A one-cell notebook folder (for nbdev-test) and a test file with one plain and one `docs` test (for pytest)."
    nbs = tmp / 'nbs'; nbs.mkdir()
    cell = dict(cell_type='code', id='c0', metadata={}, execution_count=None, outputs=[], source=['x = 1 + 1\n', 'assert x == 2'])
    (nbs / 'tiny.ipynb').write_text(json.dumps(dict(cells=[cell], metadata={}, nbformat=4, nbformat_minor=5)))
    t = tmp / 'test_stand_in.py'
    t.write_text('import pytest\ndef test_plain(): pass\n@pytest.mark.docs\ndef test_docs(): pass\n')
    return dict(nbs=nbs, tests=t)


def _run(line: str, tmp: Path) -> subprocess.CompletedProcess:
    "Run a workflow line with its flags, its repository targets replaced by the stand-ins."
    env, args = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}"), shlex.split(line)
    while args and re.match(r'^[A-Z_]+=', args[0]): k, v = args.pop(0).split('=', 1); env[k] = v
    s = _stand_ins(tmp)
    if 'nbdev-test' in args: args += [str(s['nbs'])]
    else: args = [a for a in args if not (ROOT / a).exists() or a.startswith('-')] + [str(s['tests'])]
    if args[0] == 'python': args[0] = sys.executable
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_workflows_call_the_tools():
    assert WORKFLOWS and _lines('nbdev-test') and _lines('pytest'), "the workflows no longer run the notebook or pytest suites"


@pytest.mark.parametrize('wf,job,line', _lines('nbdev-test') + _lines('pytest'), ids=lambda v: str(v)[:40])
def test_workflow_command_lines_are_accepted(wf, job, line, tmp_path):
    r = _run(line, tmp_path)
    assert r.returncode == 0, f"{wf} [{job}]: `{line}` fails here:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}"


def test_a_retired_flag_spelling_is_caught(tmp_path):
    "The check above can fail: fastcore spells the flag --n-workers, and the old --n_workers is refused."
    assert _run('nbdev-test --n_workers 2', tmp_path).returncode != 0


def test_actions_are_pinned_and_demo_extras_installed():
    uses = [step['uses'] for _, _, step in _steps() if 'uses' in step]
    assert uses and all(re.search(r'@v\d+\.\d+\.\d+$', u) for u in uses), uses
    installs = [l for _, _, l in _lines('pip') if ' -e ' in l]
    assert installs and all('[dev,demo]' in l for l in installs), installs


def test_the_stand_in_notebook_is_really_run(tmp_path):
    "With the workflow's own flags, a stand-in notebook whose check fails makes nbdev-test fail: it is executed."
    wf, job, line = _lines('nbdev-test')[0]
    s = _stand_ins(tmp_path)
    nb = s['nbs'] / 'tiny.ipynb'
    nb.write_text(nb.read_text().replace('x == 2', 'x == 3'))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    args = [a for a in shlex.split(line) if not re.match(r'^[A-Z_]+=', a)] + [str(s['nbs'])]
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and 'AssertionError' in r.stderr + r.stdout


def test_the_space_workflow_pins_the_release_and_its_upload_flags_are_accepted(tmp_path):
    """The release workflow's own lines, run in order ('${{ }}' filled in as GitHub would for tag v9.9.9): the Space
    folder is demo/ pinned to the tag, and `hf upload` accepts its arguments and stops only at the network (offline)."""
    steps = [s for wf, _, s in _steps() if wf == 'space.yaml' and 'run' in s]
    lines = [l.strip() for s in steps for l in s['run'].splitlines() if l.strip() and 'pip install' not in l]
    fill = lambda l: re.sub(r'\$\{\{[^}]*\}\}', lambda m: 'v9.9.9' if 'sha' in m.group(0) else 'segcount/segcount', l)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", HF_HUB_OFFLINE='1', HF_TOKEN='hf_not_a_token')
    outs = []
    for line in map(fill, lines):
        args = [sys.executable if a == 'python' else str(ROOT / a) if a.startswith('tools/') else a for a in shlex.split(line)]
        outs.append(subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120))
    assert [a.split()[0] for a in lines] == ['python', 'hf'], lines
    assert outs[0].returncode == 0, outs[0].stderr
    assert 'seg-then-count @ git+https://github.com/segcount/segcount.git@v9.9.9' in (tmp_path / '_space' / 'requirements.txt').read_text()
    assert outs[1].returncode == 1 and 'offline mode is enabled' in outs[1].stdout + outs[1].stderr, outs[1].stderr[-800:]
