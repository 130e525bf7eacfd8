"""Write README.md from nbs/index.ipynb (what `nbdev-readme` does, without Quarto).

Markdown cells are copied; code cells become ```python blocks followed by their text outputs (figures,
which a README cannot embed from a notebook, are left out);
cells marked `#| hide` are left out and `#|` directive lines are dropped.
Usage: python tools/build_readme.py [--check]   (--check: exit 1 if README.md is out of date)
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- Generated from nbs/index.ipynb by tools/build_readme.py: edit the notebook, not this file. -->\n\n"

def _src(cell): return ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']

def _outputs(cell):
    out = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': out.append(''.join(o['text']))
        elif 'data' in o and 'text/markdown' in o['data']: out.append(('MD', ''.join(o['data']['text/markdown'])))
        elif 'data' in o and any(k.startswith('image/') for k in o['data']): continue   # a figure: no text to show
        elif 'data' in o and 'text/plain' in o['data']: out.append(''.join(o['data']['text/plain']))
    return out

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = [HEADER]
    for cell in nb['cells']:
        src = _src(cell)
        lines = src.splitlines()
        directives = [l for l in lines if l.startswith('#|')]
        if any(d.replace(' ', '') in ('#|hide', '#|exporti', '#|export') for d in directives): continue
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
        if cell['cell_type'] == 'markdown':   # images beside the notebook (nbs/images/...) seen from the repo root
            parts.append(re.sub(r'(!\[[^\]]*\]\()(?![a-z][a-z0-9+.-]*:|/)', r'\1nbs/', body) + '\n\n')
        elif cell['cell_type'] == 'code':
            if any(d.replace(' ', '') == '#|echo:false' for d in directives): body = ''
            if body: parts.append(f"```python\n{body}\n```\n\n")
            for o in _outputs(cell):
                if isinstance(o, tuple): parts.append(o[1].strip() + '\n\n')
                else: parts.append(f"```\n{o.rstrip()}\n```\n\n")
    return ''.join(parts).rstrip() + '\n'

if __name__ == '__main__':
    text = render()
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            print("README.md is out of date: run `python tools/build_readme.py`", file=sys.stderr); sys.exit(1)
        print("README.md up to date")
    else:
        readme.write_text(text); print(f"wrote {readme}")
