"""The offline docs site (tools/build_docs.py), opened in headless chromium.

Every page of the site loads, every chapter shows the figures its executed notebook holds, every internal
link (and #anchor) resolves, previous/next links walk through all pages, and a notebook that fails names
itself and leaves no site. `make test-docs` builds the site first and passes it in SEGCOUNT_DOCS_SITE;
that build is reused only if it is fresh (same notebooks, byte for byte), otherwise the test builds its own.
Selected with `-m docs`; skipped (with the reason) only where chromium or playwright is missing.
"""
import functools, hashlib, http.server, json, os, re, shutil, subprocess, sys, threading, urllib.error, urllib.request
from pathlib import Path
from urllib.parse import unquote, urldefrag

import nbformat
import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT/'tools'/'build_docs.py'
NBS = ROOT/'nbs'
ARGS = ['--no-sandbox', '--disable-gpu']
_HIDE = re.compile(r'^\s*#\|\s*(hide\b|include:\s*false|output:\s*false)', re.M)


def _notebooks(nbs=NBS):
    return sorted(p.name for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))


def _fresh(site: Path) -> bool:
    "A site built by tools/build_docs.py from exactly the notebooks now in nbs/, executed."
    try: m = json.loads((site/'manifest.json').read_text())
    except (OSError, ValueError): return False
    chapters = {Path(p['source']).name: p['sha256'] for p in m['pages'] if p['kind'] == 'chapter'}
    return (m.get('executed') and Path(m.get('nbs', '')).resolve() == NBS.resolve()
            and sorted(chapters) == _notebooks()
            and all(hashlib.sha256((NBS/n).read_bytes()).hexdigest() == h for n, h in chapters.items()))


def _visible_image_outputs(nb_path: Path) -> int:
    "Image outputs a reader should see: code cells not hidden, `output: false` not set."
    nb = nbformat.read(nb_path, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == 'code' and not _HIDE.search(c.source)
               for o in c.get('outputs', []) if any(k.startswith('image/') for k in o.get('data', {})))


def _run_build(*args, timeout=3000):
    return subprocess.run([sys.executable, str(BUILD), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def _chromium_path():
    "SEGCOUNT_CHROMIUM, else the system's chromium (Debian: apt-get install chromium), else Google Chrome."
    for c in (os.environ.get('SEGCOUNT_CHROMIUM'), shutil.which('chromium'), '/usr/bin/chromium', shutil.which('google-chrome')):
        if c and Path(c).exists(): return c
    return None


@pytest.fixture(scope='module')
def chromium():
    try: from playwright.sync_api import Error, sync_playwright
    except ImportError: pytest.skip('playwright is not installed (pip install playwright)')
    exe = _chromium_path()
    with sync_playwright() as pw:
        try: browser = pw.chromium.launch(executable_path=exe, headless=True, args=ARGS)
        except Error as e:
            if exe: raise
            # no system browser: playwright's own build if `playwright install chromium` fetched it
            pytest.skip(f'no chromium: apt-get install chromium, or playwright install chromium ({str(e).splitlines()[0]})')
        yield browser
        browser.close()


@pytest.fixture(scope='module')
def site(chromium, tmp_path_factory):
    given = os.environ.get('SEGCOUNT_DOCS_SITE')
    if given and _fresh(Path(given).resolve() if Path(given).is_absolute() else ROOT/given):
        return Path(given) if Path(given).is_absolute() else ROOT/given
    out = tmp_path_factory.mktemp('docs')/'_site'
    r = _run_build('--out', out)
    assert r.returncode == 0, f'docs build failed:\n{r.stderr[-4000:]}'
    assert re.search(r'built \d+ pages .* in [\d.]+s', r.stdout), r.stdout
    return out


@pytest.fixture(scope='module')
def server(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # the browser dropping a connection is not a failure
            if not isinstance(sys.exc_info()[1], ConnectionError): super().handle_error(request, client_address)
    httpd = Server(('127.0.0.1', 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{httpd.server_port}/'
    httpd.shutdown()


@pytest.fixture(scope='module')
def manifest(site): return json.loads((site/'manifest.json').read_text())


@pytest.fixture(scope='module')
def crawl(chromium, server, manifest):
    "Open every page once: status, title, figures, links, ids, next/prev, JS errors."
    page = chromium.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    seen = {}
    for p in manifest['pages']:
        errors.clear()
        resp = page.goto(server + p['file'], wait_until='load')
        seen[p['file']] = dict(
            status=resp.status if resp else None,
            h1=page.inner_text('main h1').strip(),
            sidebar=page.eval_on_selector_all('nav.sidebar a', 'els => els.map(e => e.getAttribute("href"))'),
            figures=page.eval_on_selector_all('main .cell-output img',
                                              'els => els.map(e => e.complete && e.naturalWidth > 0)'),
            code=page.eval_on_selector_all('main pre', 'els => els.map(e => e.innerText)'),
            links=page.eval_on_selector_all('a[href]', 'els => els.map(e => e.href)'),
            assets=page.eval_on_selector_all('link[href], img[src], script[src]',
                                             'els => els.map(e => e.href || e.src)'),
            ids=set(page.eval_on_selector_all('[id]', 'els => els.map(e => e.id)')),
            next=page.eval_on_selector_all('a[rel=next]', 'els => els.map(e => e.getAttribute("href"))'),
            prev=page.eval_on_selector_all('a[rel=prev]', 'els => els.map(e => e.getAttribute("href"))'),
            errors=list(errors))
    page.close()
    return seen


def test_site_has_a_page_per_notebook_and_api_pages(site, manifest):
    chapters = [p for p in manifest['pages'] if p['kind'] == 'chapter']
    assert sorted(Path(p['source']).name for p in chapters) == _notebooks(), 'a notebook has no page (or a stale one)'
    assert chapters[0]['file'] == 'index.html' and (site/'index.html').exists()
    api = [p for p in manifest['pages'] if p['kind'] == 'api']
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    import segcount, pkgutil
    mods = sorted(m.name.split('.', 1)[1] for m in pkgutil.walk_packages(segcount.__path__, 'segcount.')
                  if not any(part.startswith('_') for part in m.name.split('.')[1:]))
    assert sorted(p['title'].split('.', 1)[1] for p in api) == mods


def test_every_page_loads_with_its_figures(crawl, manifest, site):
    files = [p['file'] for p in manifest['pages']]
    for p in manifest['pages']:
        got = crawl[p['file']]
        assert got['status'] == 200, p['file']
        assert got['h1'] == p['title'] and got['h1'], p['file']
        assert not got['errors'], f"{p['file']}: JavaScript errors {got['errors']}"
        assert got['sidebar'] == files, f"{p['file']}: sidebar does not list every page in order"
        assert not any(re.search(r'^\s*#\|', c, re.M) for c in got['code']), f"{p['file']}: a #| directive is shown"
        if p['kind'] != 'chapter': continue
        expected = _visible_image_outputs(site/'notebooks'/Path(p['source']).name)  # what execution produced
        assert len(got['figures']) == expected, f"{p['file']}: {len(got['figures'])} figures shown, notebook has {expected}"
        if expected: assert all(got['figures']), f"{p['file']}: a figure does not decode"


def test_plotting_chapters_exist_and_show_figures(crawl, manifest):
    "At least one chapter plots (the course is about pictures), and it shows them."
    shown = {p['file']: len(crawl[p['file']]['figures']) for p in manifest['pages'] if p['kind'] == 'chapter'}
    assert any(shown.values()), f'no chapter shows a figure: {shown}'


def test_internal_links_and_anchors_resolve(crawl, server):
    status, broken = {}, []
    for src, got in crawl.items():
        for url in got['links'] + got['assets']:
            if not url.startswith(server) or url.startswith('data:'): continue
            base, frag = urldefrag(url)
            if base not in status:
                try:
                    with urllib.request.urlopen(base, timeout=10) as r: status[base] = r.status
                except urllib.error.HTTPError as e: status[base] = e.code
            if status[base] != 200: broken.append(f'{src} -> {url} ({status[base]})'); continue
            if frag:
                target = base[len(server):] or 'index.html'
                if target in crawl and unquote(frag) not in crawl[target]['ids']:
                    broken.append(f'{src} -> {url} (no element with id {frag!r})')
    assert not broken, 'broken internal links:\n' + '\n'.join(broken[:30])
    assert len(status) >= len(crawl)


def test_previous_next_walk_through_every_page(crawl, manifest):
    files = [p['file'] for p in manifest['pages']]
    walk, cur = [], files[0]
    while cur and cur not in walk:
        walk.append(cur)
        nxt = crawl[cur]['next']
        cur = nxt[0] if nxt else None
    assert walk == files
    back, cur = [], files[-1]
    while cur and cur not in back:
        back.append(cur)
        prv = crawl[cur]['prev']
        cur = prv[0] if prv else None
    assert back == files[::-1]


# ------------------------------------------------------------------ the builder itself, on tiny notebooks
def _write_nbs(folder: Path, cells_by_nb: dict):
    folder.mkdir(parents=True, exist_ok=True)
    for name, cells in cells_by_nb.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(s[3:]) if s.startswith('md:') else nbformat.v4.new_code_cell(s)
                    for s in cells]
        nbformat.write(nb, folder/name)


def test_directives_hidden_exported_and_skipped_cells(tmp_path):
    nbs = tmp_path/'nbs'
    _write_nbs(nbs, {
        'index.ipynb': ['md:# Tiny\n\n> A tiny course.\n\nSee [the chapter](00_tiny.ipynb#a-plot).'],
        '00_tiny.ipynb': [
            '#| default_exp tiny', 'md:# Tiny chapter\n\n> One of each.',
            "#| export\ndef area(w, h):\n    'Area of a box'\n    return w*h",
            "#| hide\nprint('HIDDEN-' + 'OUTPUT')",
            'md:## A plot',
            "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0]); plt.show()",
            "#| slow\nraise RuntimeError('a slow cell ran')",
            "#| eval: false\nraise RuntimeError('an eval: false cell ran')",
            "print('visible', area(2, 3))"]})
    out = tmp_path/'site'
    r = _run_build('--nbs', nbs, '--out', out, '--workers', '1', timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    page = (out/'tiny.html').read_text()
    text = re.sub(r'<[^>]+>', '', page)
    assert 'HIDDEN-OUTPUT' not in text and "print('HIDDEN-'" not in text   # hidden cell: neither source nor output
    assert 'def area' in text and 'Area of a box' in text                 # exported cell shown as code
    assert '#|' not in text                                               # directive lines stripped
    assert 'a slow cell ran' in text and 'an eval: false cell ran' in text  # shown ...
    assert 'RuntimeError:' not in text and 'Traceback' not in text          # ... but not run
    assert 'visible 6' in text
    assert page.count('<img class="figure"') == 1 and 'data:image/png;base64,' in page
    assert 'href="tiny.html#a-plot"' in (out/'index.html').read_text()     # .ipynb links point at pages
    m = json.loads((out/'manifest.json').read_text())
    assert [p['file'] for p in m['pages'] if p['kind'] == 'chapter'] == ['index.html', 'tiny.html']


def test_failing_notebook_is_named_and_no_site_is_written(tmp_path):
    nbs = tmp_path/'nbs'
    _write_nbs(nbs, {'index.ipynb': ['md:# Tiny'], '00_broken.ipynb': ['md:# Broken', 'x = 1', '1/0']})
    out = tmp_path/'site'
    out.mkdir(); (out/'keep.txt').write_text('previous build')
    r = _run_build('--nbs', nbs, '--out', out, '--workers', '1', timeout=600)
    assert r.returncode == 1
    assert '00_broken.ipynb' in r.stderr and 'ZeroDivisionError' in r.stderr and 'cell 2' in r.stderr
    assert 'Traceback' not in r.stderr                                   # one clear message, no stack dump
    assert sorted(p.name for p in out.iterdir()) == ['keep.txt']          # the previous site is untouched
