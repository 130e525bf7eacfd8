"""The offline docs site (tools/build_docs.py: nbdev's processing, nbconvert's HTML, Pagefind), in headless chromium.

The site has the pages of nbs/sidebar.yml, index first, named as Quarto names them. Every page loads without
JavaScript errors and asks for nothing outside the site (but the Colab badge); every chapter shows the figures its
notebook holds, each with alt text; internal links and #anchors resolve; previous/next walk through all pages; and
Pagefind's search box, typed into, finds a chapter. On tiny notebooks: what nbdev's processing shows and hides, and
that a notebook with an error in its saved outputs, or an unreadable one, stops the build with one line naming it
and leaves the previous site as it was. `make test-docs` builds the site first (`make docs`) and passes it in
SEGCOUNT_DOCS_SITE; it is used only if built from exactly the notebooks now in nbs/, else the test builds its own.
Selected with `-m docs`; skipped (with the reason) only where chromium or playwright is missing.
"""
import base64, functools, hashlib, http.server, io, json, os, re, shutil, subprocess, sys, threading
import urllib.error, urllib.request
from pathlib import Path
from urllib.parse import unquote, urldefrag

import nbformat
import pytest
import yaml

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT/'tools'/'build_docs.py'
NBS = ROOT/'nbs'
ARGS = ['--no-sandbox', '--disable-gpu']
COLAB_BADGE = 'https://colab.research.google.com/assets/colab-badge.svg'
_DROPPED = re.compile(r'^\s*#\|\s*(hide|export|exporti|default_exp)\b|^\s*#\|\s*(include|output):\s*false', re.M)


def _sha(p: Path) -> str: return hashlib.sha256(p.read_bytes()).hexdigest()


def _sidebar_order(nbs=NBS) -> list[str]:
    "index.ipynb, then the notebooks of nbs/sidebar.yml in order."
    def walk(items):
        for it in items: yield from ([it] if isinstance(it, str) else walk(it.get('contents', [])))
    listed = list(walk(yaml.safe_load((nbs/'sidebar.yml').read_text())['website']['sidebar']['contents']))
    return ['index.ipynb'] + [n for n in listed if n != 'index.ipynb']


def _fresh(site: Path) -> bool:
    "A site tools/build_docs.py built from exactly the notebooks now in nbs/."
    try:
        m = json.loads((site/'manifest.json').read_text())
        return (Path(m['nbs']) == NBS and [p['source'] for p in m['pages']] == _sidebar_order()
                and all(_sha(NBS/p['source']) == p['sha256'] for p in m['pages']))
    except (OSError, ValueError, KeyError, TypeError): return False


def _shown_figures(nb_path: Path) -> int:
    "Image outputs a reader should see: nbdev drops hidden and exported cells, Quarto `include`/`output: false`."
    nb = nbformat.read(nb_path, as_version=4)
    return sum(1 for c in nb.cells if c.cell_type == 'code' and not _DROPPED.search(c.source)
               for o in c.get('outputs', []) if any(k.startswith('image/') for k in o.get('data', {})))


def _run_build(*args, timeout=900):
    return subprocess.run([sys.executable, str(BUILD), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS='1'))


def _chromium_path():
    "SEGCOUNT_CHROMIUM, else the system's chromium (Debian: apt-get install chromium), else Google Chrome."
    for c in (os.environ.get('SEGCOUNT_CHROMIUM'), shutil.which('chromium'), '/usr/bin/chromium',
              shutil.which('google-chrome')):
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
            pytest.skip(f'no chromium: apt-get install chromium, or playwright install chromium '
                        f'({str(e).splitlines()[0]})')
        yield browser
        browser.close()


@pytest.fixture(scope='module')
def site(chromium, tmp_path_factory):
    given = os.environ.get('SEGCOUNT_DOCS_SITE')
    if given and _fresh(ROOT/given): return ROOT/given  # ROOT/'/abs' is '/abs'
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


def _offline_page(chromium, server, outside: list):
    "A page that may load only the site itself (and data: URLs); anything else is refused and noted in `outside`."
    page = chromium.new_page()
    page.route('**/*', lambda r: r.continue_() if r.request.url.startswith((server, 'data:'))
               else (outside.append(r.request.url), r.abort()))
    return page


@pytest.fixture(scope='module')
def crawl(chromium, server, manifest):
    "Open every page once: status, title, sidebar, figures, alt texts, links, ids, next/prev, errors, requests."
    errors, seen = [], {}
    for p in manifest['pages']:
        errors.clear(); outside = []
        page = _offline_page(chromium, server, outside)
        page.on('pageerror', lambda e: errors.append(str(e)))
        resp = page.goto(server + p['file'], wait_until='load')
        attr = lambda sel, js: page.eval_on_selector_all(sel, f'els => els.map(e => {js})')
        seen[p['file']] = dict(
            status=resp.status if resp else None,
            h1=page.inner_text('main h1').strip(),
            sidebar=attr('nav.sidebar a:not(.brand):not(.repo)', 'e.getAttribute("href")'),
            search=page.locator('#search .pagefind-ui__search-input').count(),
            figures=attr('main .jp-OutputArea-output img', 'e.complete && e.naturalWidth > 0'),
            alts=attr('main img', '(e.getAttribute("alt") || "").trim()'),
            code=attr('main pre', 'e.innerText'),
            links=attr('a[href]', 'e.href'),
            assets=attr('link[href], img[src], script[src]', 'e.href || e.src'),
            ids=set(attr('[id]', 'e.id')),
            next=attr('a[rel=next]', 'e.getAttribute("href")'),
            prev=attr('a[rel=prev]', 'e.getAttribute("href")'),
            errors=list(errors), outside=outside)
        page.close()
    return seen


def test_site_has_the_pages_of_the_sidebar(site, manifest):
    from nbdev.config import nbpath2html
    order = _sidebar_order()
    assert sorted(order) == sorted(p.name for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    assert [p['source'] for p in manifest['pages']] == order
    assert [p['file'] for p in manifest['pages']] == [nbpath2html(Path(n)).name for n in order]
    assert all((site/p['file']).exists() for p in manifest['pages'])
    assert not list(site.glob('api_*.html')), 'the offline-only API pages are gone: show_doc is in the chapters'


def test_every_page_loads_with_its_figures(crawl, manifest, capsys):
    files = [p['file'] for p in manifest['pages']]
    for p in manifest['pages']:
        got = crawl[p['file']]
        assert got['status'] == 200, p['file']
        assert got['h1'] == p['title'] and got['h1'], p['file']
        assert not got['errors'], f"{p['file']}: JavaScript errors {got['errors']}"
        assert set(got['outside']) <= {COLAB_BADGE}, f"{p['file']}: asks outside the site for {got['outside']}"
        assert got['sidebar'] == files, f"{p['file']}: sidebar does not list every page in order"
        assert got['search'] == 1, f"{p['file']}: no search box"
        assert not any(re.search(r'^\s*#\|', c, re.M) for c in got['code']), f"{p['file']}: a #| directive is shown"
        expected = _shown_figures(NBS/p['source'])
        assert len(got['figures']) == expected == p['figures'], \
            f"{p['file']}: {len(got['figures'])} figures shown, the notebook holds {expected}"
        assert all(got['figures']), f"{p['file']}: a figure does not decode"
        assert all(got['alts']), f"{p['file']}: an image without alt text"
    with capsys.disabled():
        print('\nfigures per page: ' + ', '.join(f"{f} {len(g['figures'])}" for f, g in crawl.items()))
    shown = {p['file']: len(crawl[p['file']]['figures']) for p in manifest['pages'] if p['source'] != 'index.ipynb'}
    assert all(n >= 2 for n in shown.values()), f"chapters with fewer than 2 figures: {[f for f, n in shown.items() if n < 2]}"
    assert shown['seg_then_count.html'] >= 3, 'the method chapter shows at least 3 figures'


def test_a_screenshot_of_the_method_page(chromium, server, tmp_path_factory, capsys):
    "The seg-then-count page as a reader sees it (sidebar, search box, code, figures), saved for a look."
    page = chromium.new_page(viewport=dict(width=1300, height=1000))
    page.goto(server + 'seg_then_count.html', wait_until='load')
    shot = tmp_path_factory.mktemp('docs') / 'seg_then_count.png'
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert shot.stat().st_size > 50_000
    with capsys.disabled(): print(f'\nscreenshot of the seg-then-count page: {shot}')


def test_internal_links_and_anchors_resolve(crawl, server):
    status, broken = {}, []
    for src, got in crawl.items():
        for url in got['links'] + got['assets']:
            if not url.startswith(server): continue
            base, frag = urldefrag(url)
            if base not in status:
                try:
                    with urllib.request.urlopen(base, timeout=10) as r: status[base] = r.status
                except urllib.error.HTTPError as e: status[base] = e.code
            if status[base] != 200: broken.append(f'{src} -> {url} ({status[base]})'); continue
            target = base[len(server):] or 'index.html'
            if frag and target in crawl and unquote(frag) not in crawl[target]['ids']:
                broken.append(f'{src} -> {url} (no element with id {frag!r})')
    assert not broken, 'broken internal links:\n' + '\n'.join(broken[:30])
    assert len(status) >= len(crawl)


def test_previous_next_walk_through_every_page(crawl, manifest):
    files = [p['file'] for p in manifest['pages']]
    for step, start, expect in (('next', files[0], files), ('prev', files[-1], files[::-1])):
        walk, cur = [], start
        while cur and cur not in walk:
            walk.append(cur)
            cur = (crawl[cur][step] or [None])[0]
        assert walk == expect, step


def test_search_finds_a_chapter(chromium, server, manifest):
    "Type a phrase into Pagefind's box (on the index page): a result links to a chapter that holds it."
    chapters = {server + p['file'] for p in manifest['pages'][1:]}
    outside = []
    page = _offline_page(chromium, server, outside)
    page.goto(server + 'index.html', wait_until='load')
    page.fill('#search .pagefind-ui__search-input', 'pseudo mask')
    page.wait_for_selector('.pagefind-ui__result-link', timeout=15000)
    links = page.eval_on_selector_all('.pagefind-ui__result-link', 'els => els.map(e => e.href)')
    hits = [urldefrag(h)[0] for h in links]
    assert any(h in chapters for h in hits), hits
    page.goto(next(h for h in hits if h in chapters), wait_until='load')
    assert 'pseudo mask' in page.inner_text('main').lower()
    assert set(outside) <= {COLAB_BADGE}, outside
    page.close()


# ------------------------------------------------------------------ the builder itself, on tiny notebooks
def _png() -> str:
    from PIL import Image
    buf = io.BytesIO(); Image.new('RGB', (8, 6), 'red').save(buf, 'PNG')
    return base64.b64encode(buf.getvalue()).decode()


def _write_nbs(folder: Path, cells_by_nb: dict):
    "Notebooks {name: cells} and their sidebar.yml; a cell: 'md:...', code, or (code, [saved outputs])."
    folder.mkdir(parents=True, exist_ok=True)
    for name, cells in cells_by_nb.items():
        nb = nbformat.v4.new_notebook()
        for c in cells:
            if isinstance(c, str) and c.startswith('md:'): nb.cells.append(nbformat.v4.new_markdown_cell(c[3:]))
            else:
                src, outs = c if isinstance(c, tuple) else (c, [])
                nb.cells.append(nbformat.v4.new_code_cell(src, outputs=[nbformat.from_dict(o) for o in outs]))
        nbformat.write(nb, folder/name)
    names = [n for n in cells_by_nb if n != 'index.ipynb']
    contents = ['index.ipynb', {'section': 'Tiny', 'contents': names}]
    (folder/'sidebar.yml').write_text(yaml.dump({'website': {'sidebar': {'contents': contents}}}))


def _stream(text): return dict(output_type='stream', name='stdout', text=text)


def test_nbdev_processing_on_tiny_notebooks(tmp_path):
    nbs = tmp_path/'nbs'
    _write_nbs(nbs, {
        'index.ipynb': ['md:# Tiny\n\n> A tiny course.\n\nSee [the plot](00_tiny.ipynb#a-plot).'],
        '00_tiny.ipynb': [
            '#| default_exp tiny', 'md:# Tiny chapter\n\n> One of each.',
            "#| export\ndef box_area(w, h):\n    'Area of a box'\n    return w*h",
            ("#| hide\nprint('HIDDEN-' + 'OUTPUT')", [_stream('HIDDEN-OUTPUT\n')]),
            'md:## A plot\n\nA red rectangle, eight by six.',
            ("raise RuntimeError('run by the build')",  # shown as saved: the build does not execute it
             [dict(output_type='display_data', data={'image/png': _png(), 'text/plain': '<Figure>'}, metadata={}),
              _stream('saved 6\n')]),
            ("#| echo: false\nprint('SOURCE-' + 'SHOWN')", [_stream('only the output\n')])]})
    out = tmp_path/'site'
    r = _run_build('--nbs', nbs, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    page = (out/'tiny.html').read_text()
    text = re.sub(r'<[^>]+>', '', page)
    assert '<h1 id="tiny-chapter"' in page and 'One of each.' in text               # front matter: title, description
    assert '<h3 id="box_area"' in page and 'Area of a box' in text                  # show_doc of the exported def
    assert 'return w*h' not in text and 'default_exp' not in text                   # exported/hidden cells dropped
    assert 'HIDDEN-OUTPUT' not in text and "print('HIDDEN-'" not in text
    assert 'run by the build' in text and 'RuntimeError:' not in text and 'saved 6' in text  # saved outputs, not run
    assert "print('SOURCE-'" not in text and 'only the output' in text              # echo: false
    assert '#|' not in text
    assert re.search(r'<img alt="A red rectangle, eight by six\."[^>]* src="data:image/png;base64,', page)
    assert 'href="tiny.html#a-plot"' in (out/'index.html').read_text() and 'id="a-plot"' in page
    assert 'index.ipynb: its title cell holds more' in r.stderr  # nbdev would drop 'See the plot': kept, with a note
    m = json.loads((out/'manifest.json').read_text())
    assert [(p['file'], p['figures']) for p in m['pages']] == [('index.html', 0), ('tiny.html', 1)]
    assert (out/'pagefind'/'pagefind-ui.js').exists()


_ZERO = dict(output_type='error', ename='ZeroDivisionError', evalue='division by zero', traceback=[])


@pytest.mark.parametrize('broken,says', [
    (['md:# Broken', 'x = 1', ('1/0', [_ZERO])],
     ["cell 2 ('1/0')", 'saved outputs', 'ZeroDivisionError: division by zero']),
    ('{"cells": [', ['cannot read it'])], ids=['saved-error', 'unreadable'])
def test_a_broken_notebook_names_itself_and_leaves_the_site(tmp_path, broken, says):
    nbs = tmp_path/'nbs'
    _write_nbs(nbs, {'index.ipynb': ['md:# Tiny'], '00_broken.ipynb': broken if isinstance(broken, list) else []})
    if isinstance(broken, str): (nbs/'00_broken.ipynb').write_text(broken)
    out = tmp_path/'site'
    out.mkdir(); (out/'keep.txt').write_text('previous build')
    r = _run_build('--nbs', nbs, '--out', out)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr      # one clear line
    assert all(s in r.stderr for s in ['00_broken.ipynb', *says]), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['nbs', 'site']                 # no half-built site left
    assert sorted(p.name for p in out.iterdir()) == ['keep.txt']                         # the previous one untouched
