"""Build segcount's documentation site offline, without Quarto, from the executed notebooks.

    .venv/bin/python tools/build_docs.py [--out _site] [--no-execute] [--timeout S] [--workers 2]
                                         [--engine execnb|nbconvert] [--reuse] [--only REGEX ...]

What it does (the offline stand-in for `nbdev-docs`, which needs Quarto):

1. Executes every notebook in `nbs/` (an in-memory copy; the source notebooks are never written), each in
   a fresh interpreter of *this* venv, working directory `nbs/`, two notebooks at a time. The default
   engine is execnb's CaptureShell, the executor `nbdev-test` itself uses; `--engine nbconvert` runs
   nbconvert's ExecutePreprocessor on a Jupyter kernel instead (with ipykernel 7 such a run can wait
   forever on a dropped request, ipython/ipykernel#1554, hence not the default). Cells flagged with one of
   `[tool.nbdev] tst_flags` (`#| slow`, `#| cuda`, ...) or `#| eval: false` are shown but not run, as
   `nbdev-test` skips them; their saved outputs, if any, are kept. A notebook that fails stops the build:
   the message names the notebook, the cell and the error, the exit status is 1, and the previous site
   is left untouched. `--reuse` takes the executed copy of each unchanged notebook from the previous build.
2. Renders one HTML page per notebook (`nbs/00_data.ipynb` -> `data.html`, the names the Quarto site
   uses) with a shared sidebar (sections from `nbs/sidebar.yml`), previous/next links, an
   "on this page" list, figures embedded as data URIs, `#| hide` cells left out, `#| export` cells
   shown as code and every `#| ...` directive line removed.
3. Writes one API reference page per public module of the installed `segcount` package
   (`api_data.html`, ...): signatures, docstrings and parameter comments (docments), as `show_doc`
   shows them, read with `inspect` from the package.
4. Copies the executed notebooks to `notebooks/` and writes `manifest.json` (pages, sources and their
   hashes, figures per chapter) for tests/test_docs.py.

The site is built in a temporary folder and moved into place only when everything succeeded.
"""
from __future__ import annotations

import argparse, ast, base64, hashlib, html, importlib, inspect, json, os, pkgutil, re, shutil, sys
import tempfile, time, traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = 'segcount'
KERNEL_NAME = 'segcount-docs'
_COLAB_BADGE_RE = re.compile(r'\[!\[[^\]]*\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]\([^)]*\)\s*')

# ----------------------------------------------------------------------------------------- settings
def project_settings(root: Path = ROOT) -> dict:
    "Repository URL, branch, title, description and nbdev tst_flags from pyproject.toml."
    try: import tomllib
    except ImportError:  # Python 3.10
        try: import tomli as tomllib
        except ImportError: tomllib = None
    d = {}
    if tomllib and (root/'pyproject.toml').exists(): d = tomllib.loads((root/'pyproject.toml').read_text())
    proj, nbd = d.get('project', {}), d.get('tool', {}).get('nbdev', {})
    urls = proj.get('urls', {})
    git_url = (urls.get('Repository') or urls.get('Source') or 'https://github.com/segcount/segcount').rstrip('/')
    flags = nbd.get('tst_flags', 'notest slow cuda')
    if isinstance(flags, str): flags = flags.split()
    return dict(title=nbd.get('title', proj.get('name', PKG)), description=proj.get('description', ''),
                git_url=git_url, branch=nbd.get('branch', 'main'), tst_flags=list(flags),
                doc_url=urls.get('Documentation', ''), cell_timeout=int(nbd.get('cell_timeout', 600) or 600))

# --------------------------------------------------------------------------------------- directives
_DIRECTIVE_RE = re.compile(r'^\s*#\|\s*(.*?)\s*$')

def cell_source(cell) -> str:
    s = cell.get('source', '')
    return ''.join(s) if isinstance(s, list) else s

def directives(src: str) -> dict:
    "nbdev/Quarto `#| key: value` and `#| flag` lines of a cell, as {key: value-string} (flags map to '')."
    d = {}
    for line in src.splitlines():
        m = _DIRECTIVE_RE.match(line)
        if not m:
            if line.strip(): break  # directives sit at the top of a cell
            continue
        body = m.group(1)
        if ':' in body and not body.startswith(('export', 'default_exp')):
            k, v = body.split(':', 1); d[k.strip().lower()] = v.strip().strip('"\'').lower()
        else:
            parts = body.split()
            if parts: d[parts[0].lower()] = ' '.join(parts[1:])
    return d

def strip_directives(src: str) -> str:
    return '\n'.join(l for l in src.splitlines() if not _DIRECTIVE_RE.match(l)).strip('\n')

def is_hidden(d: dict) -> bool: return 'hide' in d or d.get('include') == 'false'

def skip_reason(d: dict, tst_flags) -> str | None:
    "Why a code cell is not executed in the offline build (None: it is executed)."
    if d.get('eval') == 'false': return 'eval: false'
    for f in tst_flags:
        if f in d: return f
    return None

def nb_skip_exec(nb) -> bool:
    "nbdev's notebook-level `skip_exec: true` front matter (in a raw cell)."
    for c in nb.cells[:2]:
        if c.cell_type == 'raw' and re.search(r'^skip_exec:\s*true\s*$', cell_source(c), re.M): return True
    return False

# --------------------------------------------------------------------------------------- chapters
@dataclass
class Chapter:
    path: Path
    slug: str
    section: str | None = None
    title: str = ''
    description: str = ''
    nb: object = None
    seconds: float = 0.0
    skipped_cells: list = field(default_factory=list)

def chapter_slug(path: Path) -> str:
    "The page name Quarto/nbdev gives a notebook: `00_data.ipynb` -> `data`."
    return 'index' if path.stem == 'index' else (re.sub(r'^\d+[a-z]?_', '', path.stem) or path.stem)

def find_notebooks(nbs: Path) -> list[Path]:
    nbs_ = [p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.'))]
    return sorted(nbs_, key=lambda p: ('0' if p.stem == 'index' else '1') + p.name)

def sidebar_sections(nbs: Path) -> dict[str, str | None]:
    "Map notebook file name -> section title, read from nbs/sidebar.yml (the Quarto sidebar)."
    f = nbs/'sidebar.yml'
    if not f.exists(): return {}
    import yaml
    try: contents = yaml.safe_load(f.read_text())['website']['sidebar']['contents']
    except Exception as e: raise SystemExit(f"build_docs: error: {f}: cannot read website.sidebar.contents ({e})")
    res = {}
    def walk(items, section):
        for it in items or []:
            if isinstance(it, str): res[Path(it).name] = section
            elif isinstance(it, dict) and 'section' in it: walk(it.get('contents'), it['section'])
            elif isinstance(it, dict) and 'href' in it: res[Path(it['href']).name] = section
    walk(contents, None)
    return res

def plan_chapters(nbs: Path, only=None) -> list[Chapter]:
    paths = find_notebooks(nbs)
    if only: paths = [p for p in paths if p.stem == 'index' or any(re.search(o, p.name) for o in only)]
    sections = sidebar_sections(nbs)
    chs, last = [], 'Chapters'
    for p in paths:
        sec = sections.get(p.name, last if p.stem != 'index' else None)
        if p.stem != 'index': last = sec or last
        chs.append(Chapter(p, chapter_slug(p), sec))
    slugs = [c.slug for c in chs]
    dup = {s for s in slugs if slugs.count(s) > 1}
    if dup: raise SystemExit(f"build_docs: error: notebooks map to the same page name: {sorted(dup)}")
    return chs

# --------------------------------------------------------------------------------------- execution
def _install_kernelspec(tmp: Path) -> None:
    "A kernelspec that runs this interpreter, found first via JUPYTER_PATH (inherited by the workers)."
    kdir = tmp/'kernels'/KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    (kdir/'kernel.json').write_text(json.dumps({
        'argv': [sys.executable, '-m', 'ipykernel_launcher', '-f', '{connection_file}', '--IPKernelApp.log_level=ERROR'],
        'display_name': f'Python 3 ({PKG} docs)', 'language': 'python',
        # the checkout's package first, as nbdev-test sees it (also without `pip install -e .`)
        'env': {'MPLBACKEND': 'module://matplotlib_inline.backend_inline',
                'PYTHONPATH': os.pathsep.join([str(ROOT)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])}}))
    os.environ['JUPYTER_PATH'] = os.pathsep.join([str(tmp)] + [p for p in os.environ.get('JUPYTER_PATH', '').split(os.pathsep) if p])

def skipped_cells(nb, tst_flags) -> list[tuple[int, str]]:
    "(index, reason) of the code cells the build shows without running."
    return [(i, why) for i, c in enumerate(nb.cells)
            if c.cell_type == 'code' and (why := skip_reason(directives(cell_source(c)), tst_flags))]

def _error_summary(path, nb, exc_name, exc_value) -> str:
    "One line naming the notebook, the failing cell (index and first line) and the error."
    idx = next((i for i, c in enumerate(nb.cells) if c.cell_type == 'code' and
                any(o.get('output_type') == 'error' for o in c.get('outputs', []))), None)
    where = f"cell {idx}" if idx is not None else "a cell"
    first = (cell_source(nb.cells[idx]).strip().splitlines() or [''])[0][:80] if idx is not None else ''
    value = (str(exc_value).strip().splitlines() or [''])[0]
    return f"{path}: {where} ({first!r}) raised {exc_name}: {value}"

def _run_execnb(nb, cwd: str, timeout: int, skip: set) -> str | None:
    """Run the cells in this process with execnb's CaptureShell, the executor `nbdev-test` uses (no kernel, no
    ZMQ: ipykernel 7 can drop a request and leave an nbclient run waiting forever, ipython/ipykernel#1554).
    Returns an error message or None."""
    from execnb.shell import CaptureShell
    os.chdir(cwd)
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # the checkout's package, as nbdev-test sees it
    os.environ.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
    k = CaptureShell(path=cwd)
    try:
        for i, c in enumerate(nb.cells):
            if c.cell_type != 'code' or i in skip: continue
            c['idx_'] = i
            try: k.cell(c, timeout=timeout)
            finally: c.pop('idx_', None)
            if k.exc is None: continue
            if directives(cell_source(c)).get('error') == 'true': k.exc = None; continue  # expected to raise
            if isinstance(k.exc, TimeoutError): return f"a cell ran past the {timeout}s timeout (cell {i}: {cell_source(c).strip().splitlines()[0][:80]!r})"
            return _error_summary('', nb, type(k.exc).__name__, k.exc)[2:]
    finally:
        k.close()
    return None

def _run_nbconvert(nb, cwd: str, timeout: int, skip: set) -> str | None:
    "Run the notebook on a Jupyter kernel of this interpreter with nbconvert's ExecutePreprocessor."
    from nbconvert.preprocessors import ExecutePreprocessor
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code': continue
        tags = c.metadata.setdefault('tags', [])
        if i in skip and 'skip-execution' not in tags: tags.append('skip-execution')  # nbclient skips these
        if directives(cell_source(c)).get('error') == 'true' and 'raises-exception' not in tags: tags.append('raises-exception')
    try:
        ExecutePreprocessor(timeout=timeout, kernel_name=KERNEL_NAME, startup_timeout=180).preprocess(nb, {'metadata': {'path': cwd}})
    except CellExecutionError as e: return _error_summary('', nb, e.ename, e.evalue)[2:]
    except CellTimeoutError as e: return f"a cell ran past the {timeout}s timeout ({str(e).splitlines()[0]})"
    except DeadKernelError as e: return f"the kernel died ({e})"
    except Exception as e: return f"execution failed: {type(e).__name__}: {e}"
    finally:
        for c in nb.cells:  # the tags were ours, not the author's
            if c.cell_type == 'code':
                tags = [t for t in c.metadata.get('tags', []) if t not in ('skip-execution', 'raises-exception')]
                if tags: c.metadata['tags'] = tags
                else: c.metadata.pop('tags', None)
    return None

ENGINES = {'execnb': _run_execnb, 'nbconvert': _run_nbconvert}

def execute_notebook(path: str, cwd: str, timeout: int, tst_flags: list, execute: bool = True,
                     engine: str = 'execnb') -> dict:
    "Run one notebook (in a fresh worker process). Returns {'nb': json, 'seconds', 'skipped'} or {'error'}."
    import nbformat
    t0 = time.time()
    try: nb = nbformat.read(path, as_version=4)
    except Exception as e: return dict(error=f"{path}: not a readable notebook ({type(e).__name__}: {e})")
    skipped = skipped_cells(nb, tst_flags)
    if execute and not nb_skip_exec(nb):
        try: err = ENGINES[engine](nb, cwd, timeout, {i for i, _ in skipped})
        except Exception as e: err = f"execution failed: {type(e).__name__}: {e}"
        if err: return dict(error=f"{path}: {err}", seconds=time.time()-t0)
    return dict(nb=nbformat.writes(nb), seconds=time.time()-t0, skipped=skipped)

# --------------------------------------------------------------------------------------- markdown
def _slugify(text: str) -> str:
    s = re.sub(r'<[^>]+>', '', text)
    s = re.sub(r'[^\w\s.-]', '', s).strip().lower()
    return re.sub(r'[\s]+', '-', s) or 'section'

def _math_html(tex: str, display: bool) -> str:
    try:
        from latex2mathml.converter import convert
        return convert(tex, display='block' if display else 'inline')
    except Exception:  # latex2mathml missing or the formula is beyond it: show the TeX
        tag = 'div' if display else 'span'
        return f'<{tag} class="math tex">{html.escape(tex)}</{tag}>'

class Renderer:
    "Markdown -> HTML with heading ids, .ipynb links rewritten, symbols linked to the API pages and math as MathML."
    def __init__(self, page_of_nb: dict, symbols: dict):
        from markdown_it import MarkdownIt
        from mdit_py_plugins.dollarmath import dollarmath_plugin
        from mdit_py_plugins.footnote import footnote_plugin
        self.page_of_nb, self.symbols = page_of_nb, symbols
        md = MarkdownIt('commonmark', {'html': True}).enable(['table', 'strikethrough'])
        md.use(dollarmath_plugin, double_inline=True, allow_digits=False,
               renderer=lambda content, opts: _math_html(content, opts.get('display_mode', False)))
        md.use(footnote_plugin)
        for name, fn in [('heading_open', self._heading_open), ('link_open', self._link_open), ('link_close', self._link_close),
                         ('code_inline', self._code_inline), ('image', self._image)]:
            md.add_render_rule(name, lambda r, *a, _f=fn: _f(r, *a))  # a plain function: markdown-it binds it to its renderer
        self.md = md

    def render(self, text: str, page: 'Page', base_dir: Path | None = None) -> str:
        return self.md.render(text, {'page': page, 'base': base_dir, 'in_link': 0})

    def inline(self, text: str, page: 'Page') -> str:
        return self.md.renderInline(text, {'page': page, 'base': None, 'in_link': 0})

    def _heading_open(self, r, tokens, idx, options, env):
        tok = tokens[idx]
        text = tokens[idx+1].content if idx+1 < len(tokens) else ''
        page = env['page']
        hid = page.new_id(_slugify(text))
        tok.attrSet('id', hid)
        lvl = int(tok.tag[1])
        if lvl in (2, 3): page.toc.append((lvl, hid, _plain(text)))
        return r.renderToken(tokens, idx, options, env)

    def map_href(self, href: str) -> str:
        if re.match(r'^[a-z][a-z0-9+.-]*:', href, re.I) or href.startswith(('#', '/')): return href
        m = re.match(r'^(?:\./)?(?:nbs/)?([\w.-]+)\.ipynb(#.*)?$', href)
        if m and m.group(1) in self.page_of_nb: return self.page_of_nb[m.group(1)] + (m.group(2) or '')
        return href

    def _link_open(self, r, tokens, idx, options, env):
        tok = tokens[idx]
        tok.attrSet('href', self.map_href(tok.attrGet('href') or ''))
        env['in_link'] += 1
        return r.renderToken(tokens, idx, options, env)

    def _link_close(self, r, tokens, idx, options, env):
        env['in_link'] -= 1
        return r.renderToken(tokens, idx, options, env)

    def _code_inline(self, r, tokens, idx, options, env):
        content = tokens[idx].content
        code = f'<code>{html.escape(content)}</code>'
        name = re.sub(r'\(\)$', '', content.strip())
        if name.startswith(PKG + '.'): name = name.split('.', 2)[-1] if name.count('.') >= 2 else name
        stem = re.sub(r'^nbs/|\.ipynb$', '', name)
        target = self.symbols.get(name) or self.page_of_nb.get(stem)  # a symbol, a module or a chapter's notebook
        if target and not env['in_link']: return f'<a class="symbol" href="{target}">{code}</a>'
        return code

    def _image(self, r, tokens, idx, options, env):
        tok = tokens[idx]
        src = tok.attrGet('src') or ''
        base = env.get('base')
        if base and not re.match(r'^[a-z][a-z0-9+.-]*:', src, re.I):
            f = (base/src).resolve()
            if f.is_file():
                mime = {'.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif',
                        '.svg': 'image/svg+xml', '.webp': 'image/webp'}.get(f.suffix.lower(), 'application/octet-stream')
                tok.attrSet('src', f'data:{mime};base64,' + base64.b64encode(f.read_bytes()).decode())
        return r.image(tokens, idx, options, env)

# --------------------------------------------------------------------------------------- pages
@dataclass
class Page:
    file: str            # e.g. data.html
    title: str
    kind: str            # 'chapter' | 'api'
    section: str | None
    body: str = ''
    description: str = ''
    toc: list = field(default_factory=list)
    ids: set = field(default_factory=set)
    actions: str = ''
    meta: dict = field(default_factory=dict)

    def new_id(self, base: str) -> str:
        i, hid = 1, base
        while hid in self.ids: i += 1; hid = f'{base}-{i}'
        self.ids.add(hid)
        return hid

_ANSI_RE = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')

def _highlight(code: str, lang: str = 'python') -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    try: lexer = get_lexer_by_name(lang)
    except Exception: lexer = get_lexer_by_name('text')
    return highlight(code, lexer, HtmlFormatter(cssclass='highlight'))

def _text(o, key='text/plain') -> str:
    v = o.get('data', {}).get(key, '') if key else o.get('text', '')
    return ''.join(v) if isinstance(v, list) else v

def render_output(o, r: Renderer, page: Page) -> tuple[str, int]:
    "HTML for one output and the number of figures (<img>) it holds."
    t = o.get('output_type')
    if t == 'stream':
        cls = 'cell-output-stderr' if o.get('name') == 'stderr' else 'cell-output-stdout'
        return f'<div class="cell-output {cls}"><pre>{html.escape(_ANSI_RE.sub("", _text(o, None)))}</pre></div>', 0
    if t == 'error':
        tb = _ANSI_RE.sub('', '\n'.join(o.get('traceback', [])) or f"{o.get('ename')}: {o.get('evalue')}")
        return f'<div class="cell-output cell-output-error"><pre>{html.escape(tb)}</pre></div>', 0
    data = o.get('data', {})
    for mime in ('image/png', 'image/jpeg', 'image/gif', 'image/webp'):
        if mime in data:
            b64 = ''.join(data[mime]) if isinstance(data[mime], list) else data[mime]
            md = o.get('metadata', {}).get(mime, {}) or {}
            size = ''.join(f' {k}="{int(md[k])}"' for k in ('width', 'height') if isinstance(md.get(k), (int, float)))
            alt = html.escape(_text(o)[:120] or 'figure')
            return (f'<div class="cell-output cell-output-display"><img class="figure" src="data:{mime};base64,'
                    f'{b64.strip()}"{size} alt="{alt}"></div>', 1)
    if 'image/svg+xml' in data:
        svg = _text(o, 'image/svg+xml')
        return (f'<div class="cell-output cell-output-display"><img class="figure" alt="figure" src="data:image/svg+xml;base64,'
                f'{base64.b64encode(svg.encode()).decode()}"></div>', 1)
    if 'text/html' in data:
        return f'<div class="cell-output cell-output-display">{_text(o, "text/html")}</div>', 0
    if 'text/markdown' in data:
        return f'<div class="cell-output cell-output-display cell-output-markdown">{r.render(_text(o, "text/markdown"), page)}</div>', 0
    if 'text/latex' in data:
        tex = _text(o, 'text/latex').strip().strip('$')
        return f'<div class="cell-output cell-output-display">{_math_html(tex, True)}</div>', 0
    if 'text/plain' in data:
        return f'<div class="cell-output cell-output-display"><pre>{html.escape(_ANSI_RE.sub("", _text(o)))}</pre></div>', 0
    return '', 0

def _plain(md_text: str) -> str:
    "Markdown inline text as plain text (for <title>, the sidebar and the pager)."
    return re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', md_text).replace('`', '').replace('**', '').strip()

def _title_and_description(nb) -> tuple[str, str, int | None]:
    "nbdev convention: the first markdown cell holds `# Title` and a `> description` line."
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'markdown' or is_hidden(directives(cell_source(c))): continue
        m = re.search(r'^#\s+(.+?)\s*$', cell_source(c), re.M)
        if m:
            d = re.search(r'^#\s+.+?\n+((?:>.*\n?)+)', cell_source(c), re.M)
            desc = ' '.join(l.lstrip('>').strip() for l in d.group(1).splitlines()) if d else ''
            return m.group(1).strip(), desc, i
        return '', '', None
    return '', '', None

def _defined_names(src: str) -> list[str]:
    try: tree = ast.parse(src)
    except SyntaxError: return []
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    names = []
    for n in tree.body:
        if not isinstance(n, defs): continue
        names.append(n.name)
        if isinstance(n, ast.ClassDef): names += [f'{n.name}.{m.name}' for m in n.body if isinstance(m, defs[:2])]
    return names

_SHOWDOC_ONLY = re.compile(r'^(?:\s*show_doc\(.*\)\s*\n?)+$')

def render_chapter(ch: Chapter, r: Renderer, page: Page, settings: dict) -> int:
    "Fill page.body from the executed notebook; returns the number of figures rendered."
    nb = ch.nb
    title, desc, tcell = _title_and_description(nb)
    title = title or ch.path.stem
    page.title, page.description = _plain(title), _plain(desc)
    page.meta['title_html'], page.meta['desc_html'] = r.inline(title, page), r.inline(desc, page) if desc else ''
    parts, n_fig = [], 0
    skipped = dict(ch.skipped_cells)
    for i, c in enumerate(nb.cells):
        src = cell_source(c)
        d = directives(src)
        if c.cell_type == 'raw' or is_hidden(d): continue
        body = strip_directives(src)
        if c.cell_type == 'markdown':
            if i == tcell:  # title and description go to the page header
                body = re.sub(r'^#\s+.+?\n+(?:>.*\n?)*', '', body, count=1, flags=re.M)
            body = _COLAB_BADGE_RE.sub('', body)  # the page header has its own Colab link
            if body.strip(): parts.append(f'<div class="cell cell-markdown">{r.render(body, page, ch.path.parent)}</div>')
            continue
        if c.cell_type != 'code': continue
        show_src = d.get('echo') != 'false' and bool(body.strip()) and not _SHOWDOC_ONLY.match(body)
        outs = [] if d.get('output') == 'false' else c.get('outputs', [])
        if 'default_exp' in d and not body.strip(): continue
        html_outs = []
        for o in outs:
            h, n = render_output(o, r, page)
            if h: html_outs.append(h); n_fig += n
        if not show_src and not html_outs: continue
        anchors = ''
        if {'export', 'exports', 'exporti'} & d.keys():
            # lower-case `name` / `class.method` anchors: the links nbdev writes into segcount/_modidx.py
            anchors = ''.join(f'<a class="anchor" id="{page.new_id(n.lower())}"></a>' for n in _defined_names(body))
        badges = []
        if {'export', 'exports'} & d.keys(): badges.append('<span class="badge badge-export" title="exported to the library">export</span>')
        if i in skipped:
            badges.append(f'<span class="badge badge-skip" title="not executed by the offline docs build">not run here: {html.escape(skipped[i])}</span>')
        src_html = (f'<div class="cell-input">{"".join(badges) and "<div class=badges>" + "".join(badges) + "</div>"}'
                    f'{_highlight(body)}</div>') if show_src else ''
        parts.append(f'<div class="cell cell-code">{anchors}{src_html}{"".join(html_outs)}</div>')
    page.body = '\n'.join(parts)
    user, repo = settings['git_url'].rstrip('/').split('/')[-2:]
    colab = f"https://colab.research.google.com/github/{user}/{repo}/blob/{settings['branch']}/nbs/{ch.path.name}"
    page.actions = (f'<a class="btn btn-colab" href="{colab}">Open in Colab</a>'
                    f'<a class="btn" href="notebooks/{ch.path.name}" download>Executed notebook</a>'
                    f'<a class="btn" href="{settings["git_url"]}/blob/{settings["branch"]}/nbs/{ch.path.name}">Source</a>')
    return n_fig

# --------------------------------------------------------------------------------------- API pages
def public_modules(pkg: str = PKG) -> list[str]:
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # this checkout's package, installed or not
    mod = importlib.import_module(pkg)
    names = [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + '.') if not any(p.startswith('_') for p in m.name.split('.')[1:])]
    return sorted(names)

def _public_names(mod) -> list[str]:
    if hasattr(mod, '__all__'): return [n for n in mod.__all__ if hasattr(mod, n)]
    return [n for n, v in vars(mod).items() if not n.startswith('_') and getattr(v, '__module__', None) == mod.__name__]

def _source_nb(mod) -> str | None:
    "The notebook an nbdev-exported module comes from (its AUTOGENERATED header)."
    try: head = Path(inspect.getfile(mod)).read_text()[:600]
    except Exception: return None
    m = re.search(r'File to edit: (?:\.\./)*nbs/([^\s]+?\.ipynb)', head)
    return m.group(1) if m else None

def _fmt_anno(a) -> str:
    if a is inspect.Parameter.empty: return ''
    if a is None or a is type(None): return 'None'
    if isinstance(a, str): return a
    if isinstance(a, type): return a.__qualname__
    return str(a).replace('typing.', '')

def _signature(obj, name: str, width: int = 88) -> str:
    "`name(params) -> ret`, one parameter a line when it would be wider than `width`."
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return name
    P = inspect.Parameter
    params, ps = [], list(sig.parameters.values())
    for i, p in enumerate(ps):
        if p.kind == P.KEYWORD_ONLY and not any(q.kind in (P.VAR_POSITIONAL, P.KEYWORD_ONLY) for q in ps[:i]): params.append('*')
        a = _fmt_anno(p.annotation)  # string annotations (PEP 563) without their quotes
        t = {P.VAR_POSITIONAL: '*', P.VAR_KEYWORD: '**'}.get(p.kind, '') + p.name + (f': {a}' if a else '')
        if p.default is not P.empty: t += (' = ' if a else '=') + re.sub(r' at 0x[0-9a-f]+', '', repr(p.default))
        params.append(t)
        if p.kind == P.POSITIONAL_ONLY and (i+1 == len(ps) or ps[i+1].kind != P.POSITIONAL_ONLY): params.append('/')
    ra = _fmt_anno(sig.return_annotation) if sig.return_annotation is not inspect.Signature.empty else ''
    ret = f' -> {ra}' if ra and ra != 'None' or (ra == 'None' and not inspect.isclass(obj)) else ''
    one = f'{name}({", ".join(params)}){ret}'
    if len(one) <= width or not params: return one
    return f'{name}(\n' + ''.join(f'    {p},\n' for p in params) + f'){ret}'

def _docments_rows(obj) -> list[tuple]:
    "(param, type, default, comment) rows from fastcore's docments (show_doc's parameter table)."
    try:
        import warnings
        from fastcore.docments import docments
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            d = docments(obj, full=True)
    except Exception: return []
    rows = []
    for k, v in d.items():
        if k == 'self': continue
        default = v.get('default', inspect.Parameter.empty)
        default = '' if default is inspect.Parameter.empty else re.sub(r' at 0x[0-9a-f]+', '', repr(default))
        anno = _fmt_anno(v.get('anno', inspect.Parameter.empty))
        doc = v.get('docment') or ''
        if k == 'return' and not (anno or doc): continue
        rows.append(('**Returns**' if k == 'return' else k, anno, default, doc))
    return rows if any(r[3] for r in rows) else []

def _doc_card(obj, qualname: str, page: Page, r: Renderer, kind: str, level: int = 3, src_link: str = '') -> str:
    hid = page.new_id(qualname)
    if kind in ('function', 'method', 'class'):
        sig = html.escape(_signature(obj, qualname.split('.')[-1] if kind == 'method' else qualname))
    elif kind == 'property':
        try: ret = inspect.signature(obj).return_annotation
        except (TypeError, ValueError): ret = inspect.Signature.empty
        ra = '' if ret is inspect.Signature.empty else _fmt_anno(ret)
        sig = html.escape(qualname.split('.')[-1] + (f' -> {ra}' if ra else ''))
    else:
        rep = re.sub(r' at 0x[0-9a-f]+', '', repr(obj))  # no memory addresses: the page is the same each build
        sig = html.escape(f'{qualname} = {rep if len(rep) < 200 else rep[:200] + " ..."}')
    doc = inspect.getdoc(obj) if kind != 'value' else None
    if kind == 'value' and isinstance(obj, (dict, list, tuple, str, int, float, bool)) is False: doc = None
    doc_html = r.render(doc, page) if doc else ''
    rows = _docments_rows(obj) if kind in ('function', 'method', 'class') else []
    table = ''
    if rows:
        trs = ''.join(f'<tr><td><code>{html.escape(p)}</code></td><td><code>{html.escape(t)}</code></td>'
                      f'<td><code>{html.escape(dflt)}</code></td><td>{r.render(c, page) if c else ""}</td></tr>'
                      for p, t, dflt, c in rows)
        table = f'<table class="docments"><thead><tr><th></th><th>Type</th><th>Default</th><th>Details</th></tr></thead><tbody>{trs}</tbody></table>'
    if level <= 3: page.toc.append((level - 1, hid, qualname))
    src = f' <a class="src" href="{src_link}">source</a>' if src_link else ''
    return (f'<section class="doc doc-{kind}"><h{level} id="{hid}" class="doc-name"><code>{html.escape(qualname)}</code>'
            f'<span class="kind">{kind}</span>{src}</h{level}><pre class="signature"><code>{sig}</code></pre>'
            f'{doc_html}{table}</section>')

def _members(cls):
    for n, v in vars(cls).items():
        if n.startswith('_') and n not in ('__call__',): continue
        if isinstance(v, (staticmethod, classmethod)): yield n, v.__func__, 'method'
        elif isinstance(v, property): yield n, v, 'property'
        elif inspect.isfunction(v): yield n, v, 'method'

def api_symbol_index(modules) -> dict[str, str]:
    "symbol name (and Class.member) -> api page anchor, for linking `code` spans."
    idx = {}
    for mname, mod in modules:
        page = api_file(mname)
        idx[mname] = page
        for n in _public_names(mod):
            obj = getattr(mod, n)
            idx.setdefault(n, f'{page}#{n}')
            if inspect.isclass(obj):
                for m, _, _ in _members(obj): idx.setdefault(f'{n}.{m}', f'{page}#{n}.{m}')
    return idx

def api_file(modname: str) -> str: return 'api_' + modname.split('.', 1)[1].replace('.', '_') + '.html'

def render_api(mname: str, mod, r: Renderer, page: Page, settings: dict, nb_to_page: dict) -> None:
    parts = []
    doc = inspect.getdoc(mod)
    if doc: doc = re.sub(r'^Docs: \S+\s*$', '', doc, flags=re.M).strip()  # nbdev 3's link to the Quarto page
    nbname = _source_nb(mod)
    try: relfile = Path(inspect.getfile(mod)).resolve().relative_to(ROOT).as_posix()
    except Exception: relfile = None
    base_src = f'{settings["git_url"]}/blob/{settings["branch"]}/{relfile}' if relfile else ''
    lead = []
    if doc: lead.append(r.render(doc.split('\n\n')[0] if len(doc) > 2000 else doc, page))
    if nbname and Path(nbname).stem in nb_to_page:
        file, title = nb_to_page[Path(nbname).stem]
        lead.append(f'<p class="from-nb">Explained, with examples, in the chapter '
                    f'<a href="{file}">{html.escape(title)}</a> (<code>nbs/{html.escape(nbname)}</code>).</p>')
    page.description = f'API reference for <code>{mname}</code>'
    for n in _public_names(mod):
        obj = getattr(mod, n)
        kind = 'class' if inspect.isclass(obj) else 'function' if callable(obj) else 'value'
        try: line = inspect.getsourcelines(obj)[1] if kind != 'value' else None
        except Exception: line = None
        link = f'{base_src}#L{line}' if base_src and line else ''
        parts.append(_doc_card(obj, n, page, r, kind, 3, link))
        if kind == 'class':
            for m, v, mk in _members(obj):
                target = v.fget if mk == 'property' and v.fget else v
                try: mline = inspect.getsourcelines(target)[1]
                except Exception: mline = None
                mlink = f'{base_src}#L{mline}' if base_src and mline else ''
                parts.append('<div class="member">' + _doc_card(target, f'{n}.{m}', page, r,
                             'method' if mk == 'method' else 'property', 4, mlink) + '</div>')
    if not parts: parts.append('<p>This module has no public symbols.</p>')
    page.body = ''.join(lead) + '\n'.join(parts)
    if base_src: page.actions = f'<a class="btn" href="{base_src}">Source</a>'

# --------------------------------------------------------------------------------------- layout
_CSS = """
:root { --fg:#1f2328; --muted:#59636e; --bg:#fff; --side:#f6f8fa; --line:#d1d9e0; --accent:#0969da; --code:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; color:var(--fg); background:var(--bg); font:16px/1.6 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
header.topbar { position:sticky; top:0; z-index:5; display:flex; gap:1rem; align-items:center; padding:.55rem 1.2rem;
  background:#24292f; color:#fff; } header.topbar a { color:#fff; } header.topbar .brand { font-weight:700; font-size:1.1rem; }
header.topbar .tag { color:#c9d1d9; font-size:.85rem; flex:1; overflow:hidden; white-space:nowrap; text-overflow:ellipsis; }
.layout { display:grid; grid-template-columns: 16rem minmax(0,1fr) 14rem; min-height:calc(100vh - 3rem); }
nav.sidebar { background:var(--side); border-right:1px solid var(--line); padding:1rem .8rem; font-size:.92rem;
  position:sticky; top:2.8rem; height:calc(100vh - 2.8rem); overflow-y:auto; }
nav.sidebar .sec { margin:.9rem 0 .25rem; font-weight:600; color:var(--muted); text-transform:uppercase; font-size:.75rem; letter-spacing:.04em; }
nav.sidebar ul { list-style:none; margin:0; padding:0; } nav.sidebar li a { display:block; padding:.15rem .5rem; border-radius:4px; color:var(--fg); }
nav.sidebar li a.active { background:#ddf4ff; color:var(--accent); font-weight:600; }
main { padding:1.5rem 2.2rem 3rem; max-width:66rem; }
aside.toc { padding:1.5rem .8rem; font-size:.85rem; position:sticky; top:2.8rem; height:calc(100vh - 2.8rem); overflow-y:auto; }
aside.toc ul { list-style:none; padding-left:.6rem; margin:0; } aside.toc li.l3 { padding-left:.8rem; } aside.toc .h { font-weight:600; color:var(--muted); }
.page-header h1 { margin:.2rem 0 .3rem; font-size:2rem; } .description { color:var(--muted); font-size:1.15rem; margin:0 0 .7rem; }
.page-actions { display:flex; flex-wrap:wrap; gap:.5rem; margin-bottom:1.2rem; }
.btn { display:inline-block; padding:.2rem .7rem; border:1px solid var(--line); border-radius:6px; font-size:.85rem; background:#fff; }
.btn-colab { background:#f9ab00; border-color:#e37400; color:#000; font-weight:600; }
.cell { margin:0 0 1rem; } .cell-input { position:relative; }
.highlight, pre { background:var(--code); border-radius:6px; padding:.7rem .9rem; overflow-x:auto; font-size:.88rem; line-height:1.45; }
.highlight pre { margin:0; padding:0; background:none; }
.cell-output > pre { margin:.3rem 0 0 .8rem; background:none; border-left:2px solid lightsalmon; border-radius:0; }
.cell-output-stderr > pre { border-left-color:#d4a72c; color:#6e5b00; } .cell-output-error > pre { border-left-color:#cf222e; color:#82071e; }
.cell-output-display { margin:.4rem 0 0 .8rem; overflow-x:auto; } .cell-output img.figure { max-width:100%; height:auto; }
.badges { position:absolute; right:.5rem; top:.35rem; display:flex; gap:.3rem; }
.badge { font-size:.7rem; padding:0 .4rem; border-radius:1rem; border:1px solid var(--line); background:#fff; color:var(--muted); }
.badge-export { color:#1a7f37; border-color:#1a7f37; } .badge-skip { color:#9a6700; border-color:#d4a72c; }
table { border-collapse:collapse; margin:.5rem 0 1rem; font-size:.9rem; } th, td { border:1px solid var(--line); padding:.25rem .6rem; text-align:left; vertical-align:top; }
th { background:var(--side); } td p { margin:0; }
code { font-family: ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:.9em; }
:not(pre) > code { background:var(--code); padding:.05rem .3rem; border-radius:4px; }
blockquote { margin:0 0 1rem; padding:.2rem 1rem; border-left:4px solid var(--line); color:var(--muted); }
section.doc { border-top:1px solid var(--line); padding-top:.6rem; margin-top:1.2rem; }
.member { margin-left:1.5rem; } .member section.doc { border-top-style:dashed; margin-top:.8rem; }
.doc-name { margin:.2rem 0 .4rem; font-size:1.1rem; } h4.doc-name { font-size:1rem; }
.doc-name .kind { font-size:.72rem; font-weight:400; color:var(--muted); margin-left:.6rem; text-transform:uppercase; }
.doc-name .src { font-size:.75rem; font-weight:400; margin-left:.6rem; } pre.signature { margin:.2rem 0 .6rem; }
nav.pager { display:flex; justify-content:space-between; gap:1rem; margin-top:2.5rem; border-top:1px solid var(--line); padding-top:1rem; }
nav.pager a { display:block; padding:.5rem .8rem; border:1px solid var(--line); border-radius:6px; max-width:48%; }
nav.pager .next { margin-left:auto; text-align:right; } nav.pager small { display:block; color:var(--muted); }
footer { margin-top:2rem; color:var(--muted); font-size:.8rem; }
.math.tex { font-family:ui-monospace,monospace; } div.math, math[display="block"] { margin:.6rem 0; overflow-x:auto; }
@media (max-width: 70rem) { .layout { grid-template-columns: 14rem minmax(0,1fr); } aside.toc { display:none; } }
@media (max-width: 44rem) { .layout { display:block; } nav.sidebar { position:static; height:auto; } main { padding:1rem; } }
"""

def _sidebar_html(pages: list[Page], current: Page) -> str:
    out, sec = [], object()
    for p in pages:
        if p.section != sec:
            if out: out.append('</ul>')
            sec = p.section
            if sec: out.append(f'<div class="sec">{html.escape(sec)}</div>')
            out.append('<ul>')
        cls = ' class="active" aria-current="page"' if p is current else ''
        label = html.escape(p.meta.get('nav_label') or p.title)
        out.append(f'<li><a href="{p.file}"{cls}>{label}</a></li>')
    out.append('</ul>')
    return ''.join(out)

def _toc_html(page: Page) -> str:
    items = [(l, i, t) for l, i, t in page.toc if l in (2, 3)]
    if len(items) < 2: return ''
    lis = ''.join(f'<li class="l{l}"><a href="#{i}">{html.escape(t)}</a></li>' for l, i, t in items)
    return f'<div class="h">On this page</div><ul>{lis}</ul>'

def page_html(page: Page, pages: list[Page], settings: dict, prev: Page | None, nxt: Page | None, stamp: str) -> str:
    pager = ''
    if prev: pager += f'<a class="prev" rel="prev" href="{prev.file}"><small>Previous</small>{html.escape(prev.title)}</a>'
    if nxt: pager += f'<a class="next" rel="next" href="{nxt.file}"><small>Next</small>{html.escape(nxt.title)}</a>'
    desc_html = page.meta.get('desc_html') or (page.description if page.kind == 'api' else html.escape(page.description))
    desc = f'<p class="description">{desc_html}</p>' if page.description else ''
    title, title_html = html.escape(page.title), page.meta.get('title_html') or html.escape(page.title)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – {html.escape(settings['title'])}</title>
<meta name="description" content="{html.escape(re.sub('<[^>]+>', '', page.description or settings['description']))}">
<link rel="icon" href="data:,"><link rel="stylesheet" href="assets/site.css"><link rel="stylesheet" href="assets/pygments.css"><link rel="stylesheet" href="assets/styles.css">
</head><body class="page-{page.kind}">
<header class="topbar"><a class="brand" href="index.html">{html.escape(settings['title'])}</a>
<span class="tag">{html.escape(settings['description'])}</span><a href="{settings['git_url']}">GitHub</a></header>
<div class="layout">
<nav class="sidebar" aria-label="Chapters">{_sidebar_html(pages, page)}</nav>
<main id="content"><div class="page-header"><h1 id="title">{title_html}</h1>{desc}<div class="page-actions">{page.actions}</div></div>
{page.body}
<nav class="pager" aria-label="Previous and next">{pager}</nav>
<footer>{stamp}</footer></main>
<aside class="toc">{_toc_html(page)}</aside>
</div></body></html>
"""

# --------------------------------------------------------------------------------------- build
def _nb_hash(p: Path) -> str: return hashlib.sha256(p.read_bytes()).hexdigest()

def count_image_outputs(nb) -> int:
    "Image outputs of the cells a reader sees (hidden cells and `output: false` left out)."
    n = 0
    for c in nb.cells:
        if c.cell_type != 'code': continue
        d = directives(cell_source(c))
        if is_hidden(d) or d.get('output') == 'false': continue
        n += sum(1 for o in c.get('outputs', []) if any(k.startswith('image/') for k in o.get('data', {})))
    return n

def _reusable(out: Path, chapters, tst_flags) -> dict[str, str]:
    "Executed notebooks of the previous build in `out` whose source is byte-identical now (name -> json)."
    try: m = json.loads((out/'manifest.json').read_text())
    except (OSError, ValueError): return {}
    if not m.get('executed'): return {}
    old = {Path(p['source']).name: p.get('sha256') for p in m['pages'] if p['kind'] == 'chapter'}
    return {c.path.name: (out/'notebooks'/c.path.name).read_text() for c in chapters
            if old.get(c.path.name) == _nb_hash(c.path) and (out/'notebooks'/c.path.name).exists()}

def build(out: Path, nbs: Path, execute: bool = True, timeout: int | None = None, workers: int = 2,
          only=None, quiet: bool = False, reuse: bool = False, engine: str = 'execnb') -> dict:
    import nbformat
    t0 = time.time()
    settings = project_settings()
    timeout = timeout or settings['cell_timeout']
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    chapters = plan_chapters(nbs, only)
    if not chapters: raise SystemExit(f"build_docs: error: no notebooks in {nbs}")
    # 1. execute
    tmp_kernels = Path(tempfile.mkdtemp(prefix='segcount-docs-kernel-'))
    errors = []
    try:
        _install_kernelspec(tmp_kernels)
        os.environ.setdefault('PYDEVD_DISABLE_FILE_VALIDATION', '1')
        log(f"build_docs: {'executing' if execute else 'reading'} {len(chapters)} notebooks with {engine} "
            f"({workers} at a time, cell timeout {timeout}s; skipping cells flagged {settings['tst_flags'] + ['eval: false']})")
        reused = _reusable(out, chapters, settings['tst_flags']) if reuse else {}
        if reused: log(f"  reusing the executed copies of {len(reused)} unchanged notebooks from {out}")
        args = [(str(c.path), str(nbs), timeout, settings['tst_flags'], execute and c.path.name not in reused, engine)
                for c in chapters]
        # one fresh interpreter per notebook (spawn, one task per child): no state leaks between chapters
        import multiprocessing as mp
        with mp.get_context('spawn').Pool(max(1, min(workers, len(chapters))), maxtasksperchild=1) as pool:
            futs = [pool.apply_async(execute_notebook, a) for a in args]
            results = []
            for c, f in zip(chapters, futs):
                res = f.get(); results.append(res)
                log(f"  {c.path.name}: {'FAILED' if res.get('error') else 'reused' if c.path.name in reused else 'ok'} "
                    f"({res.get('seconds', 0):.1f}s)")
    finally:
        shutil.rmtree(tmp_kernels, ignore_errors=True)
    for c, res in zip(chapters, results):
        if c.path.name in reused: res = dict(nb=reused[c.path.name], seconds=0.0, skipped=skipped_cells(nbformat.reads(reused[c.path.name], as_version=4), settings['tst_flags']))
        if res.get('error'): errors.append(res['error'])
        else:
            c.nb, c.seconds, c.skipped_cells = nbformat.reads(res['nb'], as_version=4), res['seconds'], res['skipped']
    if errors:
        msg = '\n'.join(f"  {Path(e.split(':', 1)[0]).relative_to(ROOT) if e.startswith(str(ROOT)) else e.split(':', 1)[0]}:{e.split(':', 1)[1]}"
                        for e in errors)
        raise BuildError(f"{len(errors)} of {len(chapters)} notebooks failed to execute; the site was not written:\n{msg}")
    # 2. API modules (imported from the installed package)
    modules = []
    try: modnames = public_modules()
    except Exception as e: raise BuildError(f"cannot import the {PKG} package: {type(e).__name__}: {e}")
    for m in modnames:
        try: modules.append((m, importlib.import_module(m)))
        except Exception as e: raise BuildError(f"cannot import {m}: {type(e).__name__}: {e}")
    symbols = api_symbol_index(modules)
    page_of_nb = {c.path.stem: c.slug + '.html' for c in chapters}
    r = Renderer(page_of_nb, symbols)
    # 3. pages
    pages, figures = [], {}
    for c in chapters:
        p = Page(file=c.slug + '.html', title=c.slug, kind='chapter', section=c.section)
        try: figures[p.file] = render_chapter(c, r, p, settings)
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)[-1]
            raise BuildError(f"{c.path.name}: cannot render the page ({type(e).__name__}: {e}; "
                             f"tools/build_docs.py line {tb.lineno})") from e
        if c.slug == 'index': p.meta['nav_label'] = 'Overview'
        p.meta.update(source=f'nbs/{c.path.name}', sha256=_nb_hash(c.path), seconds=round(c.seconds, 2),
                      image_outputs=count_image_outputs(c.nb), skipped_cells=len(c.skipped_cells))
        pages.append(p)
    chapter_of_nb = {c.path.stem: (p.file, p.title) for c, p in zip(chapters, pages)}
    for mname, mod in modules:
        p = Page(file=api_file(mname), title=mname, kind='api', section='API reference')
        p.meta['nav_label'] = mname.split('.', 1)[1]
        render_api(mname, mod, r, p, settings, chapter_of_nb)
        pages.append(p)
    # 4. write into a fresh folder, then swap it in
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    stage.chmod(0o755)
    try:
        (stage/'assets').mkdir(); (stage/'notebooks').mkdir()
        from pygments.formatters import HtmlFormatter
        (stage/'assets'/'site.css').write_text(_CSS)
        (stage/'assets'/'pygments.css').write_text(HtmlFormatter(style='default').get_style_defs('.highlight'))
        css = nbs/'styles.css' if (nbs/'styles.css').exists() else ROOT/'nbs'/'styles.css'
        (stage/'assets'/'styles.css').write_text(css.read_text() if css.exists() else '')
        when = time.strftime('%Y-%m-%d %H:%M')
        for i, p in enumerate(pages):
            what = ('from the notebook executed ' + when) if p.kind == 'chapter' and execute else \
                   ('from the notebook as saved (not executed)' if p.kind == 'chapter' else 'from the installed package')
            stamp = f'Built by <code>tools/build_docs.py</code> {what}.'
            if p.meta.get('skipped_cells'): stamp += f" {p.meta['skipped_cells']} cell(s) flagged slow/cuda/eval:false were shown but not run."
            (stage/p.file).write_text(page_html(p, pages, settings, pages[i-1] if i else None,
                                                pages[i+1] if i+1 < len(pages) else None, stamp))
        for c in chapters: nbformat.write(c.nb, stage/'notebooks'/c.path.name)
        manifest = dict(generator='tools/build_docs.py', executed=execute, built=time.time(),
                        seconds=round(time.time() - t0, 1), nbs=str(nbs),
                        pages=[dict(file=p.file, title=p.title, kind=p.kind, section=p.section, figures=figures.get(p.file),
                                    **{k: v for k, v in p.meta.items() if not k.endswith('_html')}) for p in pages])
        (stage/'manifest.json').write_text(json.dumps(manifest, indent=1))
        (stage/'.nojekyll').write_text('')
        if out.exists():
            old = out.with_name(f'.{out.name}.tmp-old-{os.getpid()}')  # *.tmp-* is git-ignored
            out.rename(old); stage.rename(out); shutil.rmtree(old, ignore_errors=True)
        else: stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True); raise
    manifest['seconds'] = round(time.time() - t0, 1)
    return manifest

class BuildError(Exception): pass

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'_site'), help='output folder (default: _site)')
    ap.add_argument('--nbs', default=str(ROOT/'nbs'), help='notebook folder (default: nbs)')
    ap.add_argument('--no-execute', dest='execute', action='store_false', help='render notebooks as saved, without running them')
    ap.add_argument('--timeout', type=int, default=None, help='seconds per cell (default: [tool.nbdev] cell_timeout)')
    ap.add_argument('--workers', type=int, default=2, help='notebooks executed at a time (default: 2)')
    ap.add_argument('--engine', choices=sorted(ENGINES), default='execnb',
                    help="execnb (default): nbdev-test's in-process executor; nbconvert: ExecutePreprocessor on a Jupyter kernel")
    ap.add_argument('--reuse', action='store_true',
                    help="reuse the previous build's executed copy of each notebook whose source has not changed "
                         "(faster; outputs may be stale if the library changed under it)")
    ap.add_argument('--only', nargs='*', help='build only notebooks whose file name matches one of these regexes (index always)')
    a = ap.parse_args(argv)
    try: m = build(Path(a.out), Path(a.nbs).resolve(), a.execute, a.timeout, max(1, a.workers), a.only, reuse=a.reuse, engine=a.engine)
    except BuildError as e:
        print(f"build_docs: error: {e}", file=sys.stderr); return 1
    n_ch = sum(p['kind'] == 'chapter' for p in m['pages'])
    print(f"built {len(m['pages'])} pages ({n_ch} chapters, {len(m['pages']) - n_ch} API pages) "
          f"in {m['seconds']:.1f}s -> {Path(a.out)}/index.html")
    return 0

if __name__ == '__main__':
    sys.exit(main())
