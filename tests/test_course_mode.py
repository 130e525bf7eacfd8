"The course's fast/full flag: every chapter starts with `FULL = False` and `course_mode(FULL)`; full mode needs FSC-147."
import ast
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segcount.course import CourseMode, course_mode
from segcount.data import FSC147, Sample, SegcountError, write_fsc147

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
CHAPTERS = sorted(p for p in NBS.glob('*.ipynb') if p.name[0].isdigit())
FIRST_CELLS = 9   # the setup cells, the title, its prose and the Colab badge, then the flag


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    "The environment variables would override what these tests pass."
    monkeypatch.delenv('SEGCOUNT_FULL', raising=False)
    monkeypatch.delenv('SEGCOUNT_FSC147', raising=False)


def _src(cell) -> str:
    s = cell['source']
    return ''.join(s) if isinstance(s, list) else s


def _is_flag_cell(cell) -> bool:
    "A code cell that assigns `FULL = False` and calls `course_mode(FULL)`."
    if cell['cell_type'] != 'code': return False
    try: tree = ast.parse(_src(cell))
    except SyntaxError: return False
    assigns = any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == 'FULL' for t in n.targets)
                  and isinstance(n.value, ast.Constant) and n.value.value is False for n in ast.walk(tree))
    calls = any(isinstance(n, ast.Call) and getattr(n.func, 'id', getattr(n.func, 'attr', None)) == 'course_mode'
                and n.args and isinstance(n.args[0], ast.Name) and n.args[0].id == 'FULL' for n in ast.walk(tree))
    return assigns and calls


def test_there_are_chapters():
    names = [p.name for p in CHAPTERS]
    assert len(names) >= 9 and '00_data.ipynb' in names and '12_training.ipynb' in names, names


@pytest.mark.parametrize('nb', CHAPTERS, ids=lambda p: p.stem)
def test_chapter_starts_with_the_flag(nb):
    cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
    found = [i for i, c in enumerate(cells[:FIRST_CELLS]) if _is_flag_cell(c)]
    assert found, f"{nb.name}: no code cell with `FULL = False` and `course_mode(FULL)` in its first {FIRST_CELLS} cells"
    i = found[0]
    src = _src(cells[i])
    first = src.lstrip().splitlines()[0]
    assert not first.startswith('#|'), f"{nb.name}: the flag cell must be visible and not exported ({first!r})"
    prev = cells[i - 1]
    assert prev['cell_type'] == 'markdown' and 'FULL' in _src(prev), \
        f"{nb.name}: the flag cell should follow a markdown cell saying what `FULL = True` changes"
    ns = {}
    exec(compile(src, f'{nb.name}[{i}]', 'exec'), ns)     # the cell runs as written and gives fast mode
    assert ns['FULL'] is False and isinstance(ns['mode'], CourseMode) and ns['mode'].full is False


def test_fast_mode():
    m = course_mode(False)
    assert (m.full, m.backbone, m.device, m.root, m.limit) == (False, 'mobilenet_v2', 'auto', None, 40)   # fast mode uses a GPU when there is one


def test_fast_mode_generates_scenes(tmp_path):
    root = course_mode(False).data(tmp_path/'gen', n_images=3, seed=0)
    assert root == tmp_path/'gen'
    assert len(FSC147(root)) == 3


def test_full_mode_without_fsc147_is_a_clear_error(tmp_path):
    with pytest.raises(SegcountError, match='download_fsc147.py') as e:
        course_mode(True, root=tmp_path/'empty')
    assert str(tmp_path/'empty') in str(e.value) and 'FULL = False' in str(e.value)


def _tiny_sample(name, seed):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    pts = rng.uniform([4, 4], [60, 44], size=(5, 2)).astype(np.float32)
    boxes = np.float32([[2, 2, 12, 12], [20, 10, 30, 20], [40, 30, 52, 42]])
    return Sample(name, img, boxes, pts, klass='dots' if seed == 0 else 'squares')


def test_full_mode_with_fsc147(tmp_path):
    root = write_fsc147(tmp_path/'fsc', [_tiny_sample('1.jpg', 0), _tiny_sample('2.jpg', 1)],
                        splits={'train': ['1.jpg'], 'val': ['2.jpg'], 'test': []})
    m = course_mode(True, root=root)
    assert m.full is True and m.backbone == 'resnet50' and m.device == 'auto'
    assert m.root == root and m.limit is None and (m.counter_epochs, m.segmenter_epochs) == (300, 20)
    assert m.data(tmp_path/'unused') == root and not (tmp_path/'unused').exists()   # nothing generated
    assert len(FSC147(m.data(tmp_path/'unused'), 'train')) == 1


def test_environment_switches_a_chapter_without_editing_it(tmp_path, monkeypatch):
    "SEGCOUNT_FULL overrides the notebook's `FULL = False`; SEGCOUNT_MAX_EPOCHS caps full mode's epochs (smoke runs)."
    root = write_fsc147(tmp_path/'fsc', [_tiny_sample('1.jpg', 0), _tiny_sample('2.jpg', 1)],
                        splits={'train': ['1.jpg'], 'val': ['2.jpg'], 'test': []})
    monkeypatch.setenv('SEGCOUNT_FSC147', str(root))
    monkeypatch.setenv('SEGCOUNT_FULL', '1')
    assert course_mode(False).full is True and course_mode(False).root == root
    monkeypatch.setenv('SEGCOUNT_MAX_EPOCHS', '3')
    assert (course_mode(False).counter_epochs, course_mode(False).segmenter_epochs) == (3, 3)
    monkeypatch.setenv('SEGCOUNT_FULL', '0')
    assert course_mode(True).full is False


# --- Colab: one set-up cell, the course's packages only, full-mode runs on Drive ---------------------------------
def _colab_setup():
    import importlib.util
    spec = importlib.util.spec_from_file_location('colab_setup', ROOT / 'tools' / 'colab_setup.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_every_chapter_has_the_one_colab_cell():
    cs = _colab_setup()
    assert [p.name for p in cs.chapters()] == [p.name for p in CHAPTERS]
    differ = [p.name for p in CHAPTERS if cs.setup_cell(json.loads(p.read_text())) != cs.CELL]
    assert not differ, f"run `python tools/colab_setup.py --write`: {differ}"


# what a notebook imports -> the distribution that provides it (the standard library and Colab's own are not listed)
_DISTS = {'PIL': 'pillow', 'sklearn': 'scikit-learn', 'skimage': 'scikit-image', 'IPython': 'ipywidgets',
          'gradio_image_annotation': 'gradio-image-annotation', 'huggingface_hub': 'huggingface_hub'}


def test_colab_installs_what_the_chapters_import_and_no_dev_tools():
    import re, sys, tomllib
    cs = _colab_setup()
    project = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']
    cmds = [' '.join(c) for c in cs.commands()]
    assert not any(' -e ' in c for c in cmds) and cmds[0].endswith('[course,demo]'), cmds
    name = lambda req: re.split(r'[<>=@ \[;]', req.strip())[0].lower()
    have = {name(r) for r in project['dependencies'] + [r for e in ('course', 'demo') for r in project['optional-dependencies'][e]]}
    assert not have & {'pytest', 'jupyterlab', 'playwright', 'nbconvert'}, have
    imported = set()
    for nb in CHAPTERS:
        for c in json.loads(nb.read_text())['cells']:
            if c['cell_type'] != 'code': continue
            tree = ast.parse(re.sub(r'^\s*[%!].*$', '', _src(c), flags=re.M))
            imported |= {a.name.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {n.module.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    third = {m for m in imported if m not in sys.stdlib_module_names and m not in ('segcount', 'google', '__future__')}
    missing = {m for m in third if _DISTS.get(m, m).lower().replace('_', '-') not in {h.replace('_', '-') for h in have}}
    assert not missing, f"the chapters import {sorted(missing)}, which Colab's install would not bring"


def test_full_mode_runs_are_kept_where_they_survive(tmp_path, monkeypatch):
    import sys, types
    import segcount.course as course
    full = CourseMode(True, 'resnet50', 'auto', tmp_path, None, 1, 1)
    assert full.run_dir('counter', tmp_path / 'tmp').parts[-2:] == ('runs', 'counter')   # elsewhere: runs/ in the repo
    assert course_mode(False).run_dir('counter', tmp_path / 'tmp') == tmp_path / 'tmp'   # fast mode: the folder given
    mounted = []
    def mount(where): mounted.append(where); (Path(where) / 'MyDrive').mkdir(parents=True)
    colab = types.ModuleType('google.colab'); colab.drive = types.SimpleNamespace(mount=mount)
    monkeypatch.setitem(sys.modules, 'google.colab', colab)
    monkeypatch.setattr(course, 'DRIVE', tmp_path / 'drive')
    d = full.run_dir('counter', tmp_path / 'tmp')
    assert d == tmp_path / 'drive' / 'MyDrive' / 'segcount-runs' / 'counter' and mounted == [str(tmp_path / 'drive')]
    full.run_dir('segmenter', tmp_path / 'tmp')
    assert len(mounted) == 1   # mounted once


def test_committed_outputs_are_small_and_shown():
    "The notebooks keep their outputs (figures shown unrun on GitHub and Colab) within the budget `make outputs` keeps."
    import importlib.util
    spec = importlib.util.spec_from_file_location('shrink_outputs', ROOT / 'tools' / 'shrink_outputs.py')
    so = importlib.util.module_from_spec(spec); spec.loader.exec_module(so)
    sizes = {p.name: so.output_bytes(json.loads(p.read_text())) for p in CHAPTERS}
    assert all(n <= so.BUDGET for n in sizes.values()), {k: v for k, v in sizes.items() if v > so.BUDGET}
    assert sum(p.stat().st_size for p in NBS.rglob('*') if p.is_file()) < 6_000_000
    with_images = [p.name for p in CHAPTERS if any('image/' in k for c in json.loads(p.read_text())['cells']
                                                     for o in c.get('outputs', []) for k in o.get('data', {}))]
    assert len(with_images) >= 10, with_images


def test_shrinking_outputs_twice_changes_nothing():
    "`make outputs` may run the shrinker on notebooks it did not re-run: a shrunk figure is left as it is."
    import importlib.util, io
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    spec = importlib.util.spec_from_file_location('shrink_outputs', ROOT / 'tools' / 'shrink_outputs.py')
    so = importlib.util.module_from_spec(spec); spec.loader.exec_module(so)
    fig, ax = plt.subplots(figsize=(10, 3), dpi=100); ax.plot([0, 1, 4, 9]); ax.set_title('a figure')
    buf = io.BytesIO(); fig.savefig(buf, format='png'); plt.close(fig)
    mime, small = so.shrink_image(buf.getvalue())
    assert len(small) < len(buf.getvalue()) and Image.open(io.BytesIO(small)).width == so.MAX_SIDE
    assert so.shrink_image(small) is None
