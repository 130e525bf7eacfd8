"""The course is written in fastcore's rhythm: a sentence of prose, one function or class in an exported cell, a
small check after it; exported lines short enough not to scroll in the docs site; each chapter ends with a few
exercises whose answers sit in a collapsed block."""
import ast
import json
import re
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parents[1]/'nbs'
CHAPTERS = sorted(p for p in NBS.glob('*.ipynb') if p.name[0].isdigit())
MAX_LINE = 100        # characters: what the docs site's code column shows without scrolling
MAX_CELL_LINES = 60   # an exported cell longer than this is split (methods added with fastcore's `@patch`)
EXPORT = re.compile(r'^#\|\s*export', re.M)


def _src(cell) -> str:
    return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']


def _exported(cell) -> bool:
    return cell['cell_type'] == 'code' and bool(EXPORT.search(_src(cell)))


def _definitions(src: str) -> list[str]:
    "Names of the functions and classes a cell defines at its top level."
    tree = ast.parse('\n'.join(l for l in src.splitlines() if not l.startswith('#|')))
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _problems(nb_path: Path) -> list[str]:
    cells = json.loads(nb_path.read_text())['cells']
    out = []
    for i, c in enumerate(cells):
        if not _exported(c): continue
        src, where = _src(c), f'{nb_path.name} cell {i}'
        defs = _definitions(src)
        long = [l for l in src.splitlines() if len(l) > MAX_LINE]
        if len(defs) > 1: out.append(f'{where}: {len(defs)} definitions in one exported cell ({", ".join(defs)})')
        if long: out.append(f'{where}: {len(long)} lines over {MAX_LINE} characters')
        if len(src.splitlines()) > MAX_CELL_LINES: out.append(f'{where}: {len(src.splitlines())} lines')
        if not defs: continue
        if i == 0 or cells[i - 1]['cell_type'] != 'markdown': out.append(f'{where} ({defs[0]}): no prose before it')
        nxt = cells[i + 1] if i + 1 < len(cells) else None
        if nxt is None or nxt['cell_type'] != 'code' or _exported(nxt):
            out.append(f'{where} ({defs[0]}): no check after it')
    return out


@pytest.mark.parametrize('nb', CHAPTERS, ids=lambda p: p.stem)
def test_fastcore_rhythm(nb):
    "Every exported cell: one definition, prose before, a check after, short lines, not too long."
    problems = _problems(nb)
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('nb', CHAPTERS, ids=lambda p: p.stem)
def test_chapter_ends_with_exercises(nb):
    "A `## Try it` section with two or three exercises, and their answers in a collapsed `<details>` block."
    cells = json.loads(nb.read_text())['cells']
    tries = [i for i, c in enumerate(cells) if c['cell_type'] == 'markdown' and _src(c).startswith('## Try it')]
    assert tries, f'{nb.name}: no "## Try it" section'
    text = _src(cells[tries[-1]])
    assert '<details>' in text and '</details>' in text, f'{nb.name}: the answers are not in a <details> block'
    n = len(re.findall(r'^\d+\. ', text.split('<details>')[0], re.M))
    assert 2 <= n <= 3, f'{nb.name}: {n} exercises'
    later = [c for c in cells[tries[-1] + 1:] if c['cell_type'] == 'markdown' and _src(c).startswith('## ')]
    assert not later, f'{nb.name}: the "## Try it" section is not the last one'


def test_problems_are_found(tmp_path):
    "The checker itself: a cell with two functions, a long line, and no prose or check around it."
    bad = {'cells': [{'cell_type': 'code', 'source': '#| export\ndef f(): pass\ndef g(): return "' + 'x' * 100 + '"'}]}
    p = tmp_path/'99_bad.ipynb'; p.write_text(json.dumps(bad))
    found = '\n'.join(_problems(p))
    for what in ('2 definitions', 'over 100 characters', 'no prose', 'no check'): assert what in found
