"""Build the offline docs site from the notebooks as committed: nbdev's processing, nbconvert's HTML, Pagefind search.

    .venv/bin/python tools/build_docs.py [--out _site] [--nbs nbs]

`nbdev-docs` needs Quarto, which cannot be installed offline. This script does what it does up to Quarto and then
lets well-kept tools render:
1. Each notebook of nbs/sidebar.yml (index first) goes through nbdev's own processors (`FilterDefaults`, as
   `nbdev-proc-nbs` runs them): front matter from the title cell, `show_doc` after every exported definition,
   hidden and exported cells dropped, names linked to their docs. Nothing is executed but what nbdev's
   `exec_show_docs` runs for `show_doc` (the exported cells, the cells of imports, the `show_doc` calls: the
   notebooks keep imports in cells of their own, as nbdev asks, but for each chapter's flag cell, which runs on its
   own); every other output is the one saved in the notebook (`make outputs` refreshes them; `make test-nbs` runs
   the notebooks).
2. nbconvert's HTMLExporter renders it with its 'lab' template, extended by tools/docs_page.html.j2 (sidebar,
   search box, previous/next links, local MathJax); pages are named as Quarto names them (nbdev's `nbpath2html`).
3. BeautifulSoup tidies each page: headings get the ids pandoc (hence Quarto) gives them, which nbdev's doc links
   point at; links to the published site become relative; each figure gets alt text (the plot's title and the
   sentence before it).
4. Pagefind (npm, pinned in tools/package-lock.json; `make docs` installs it) indexes the site for full-text search.

The site is built in a temporary folder and moved into place only when all of that succeeded. A notebook that
cannot be read, holds an error in its saved outputs or cannot be processed stops the build with one line naming it.
"""
import argparse, atexit, hashlib, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT/'tools'
NODE = TOOLS/'node_modules'
TAGS = {('echo', 'false'): 'remove_input', ('output', 'false'): 'remove_output', ('include', 'false'): 'remove_cell'}
TITLE = re.compile(r"""(?:set_title|title)\(\s*(['"])([^'"{}]+)\1""")  # a plot title written out in the cell


class BuildError(Exception): pass


def docs_filter():
    "nbdev's FilterDefaults, as `nbdev-proc-nbs` runs it."
    from nbdev.processors import FilterDefaults, exec_show_docs

    class exec_docs(exec_show_docs):
        def end(self):  # else IPython resets each shell at exit, with a gc.collect each (1 s a notebook)
            super().end()
            if hasattr(self, 'k'): self.k.close(); atexit.unregister(self.k.atexit_operations)

    class DocsFilter(FilterDefaults):
        def base_procs(self): return [exec_docs if p is exec_show_docs else p for p in super().base_procs()]
    return DocsFilter()


def pages(nbs: Path) -> list[dict]:
    "The pages in the order of nbs/sidebar.yml (index first), as {file, title, section, source}."
    import yaml
    from nbdev.config import nbpath2html
    def walk(items, section=None):
        for it in items:
            if isinstance(it, str): yield it, section
            elif 'contents' in it: yield from walk(it['contents'], it.get('section'))
    if not (nbs/'sidebar.yml').exists(): raise BuildError(f"{nbs/'sidebar.yml'} is missing: it lists the pages")
    order = dict(walk(yaml.safe_load((nbs/'sidebar.yml').read_text())['website']['sidebar']['contents']))
    order = {'index.ipynb': None} | order
    have = {p.name for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.'))}
    if have ^ set(order):
        raise BuildError(f"{nbs/'sidebar.yml'} and the notebooks differ: {', '.join(sorted(have ^ set(order)))}")
    return [dict(file=nbpath2html(Path(n)).name, section=s, source=n) for n, s in order.items()]


def split_title_cell(nb, path: Path):
    "nbdev keeps only the `# title` and `> description` lines of the title cell: the rest gets a cell of its own."
    from fastcore.nbio import md_frontmatter, mk_cell
    c = next((c for c in nb.cells if c.cell_type == 'markdown' and md_frontmatter(c.source)), None)
    lines = c.source.splitlines() if c else []
    head = [l for l in lines if re.match(r'[#>]\s', l)]
    rest = '\n'.join(l for l in lines if l not in head).strip()
    if not rest: return
    print(f"build_docs: note: {path.name}: its title cell holds more than the title and description, which nbdev "
          f"would drop (give it a cell of its own); kept here", file=sys.stderr)
    c.set_source('\n'.join(head))
    nb.cells.insert(c.idx_ + 1, mk_cell(rest, "markdown"))


def process(path: Path):
    "The notebook as nbdev hands it to Quarto; an error saved in its outputs stops here."
    from fastcore.nbio import read_nb
    try: nb = read_nb(path)
    except Exception as e: raise BuildError(f"cannot read it ({type(e).__name__}: {e})") from None
    for c in nb.cells:
        err = next((o for o in c.get('outputs', []) if o.get('output_type') == 'error'), None)
        if err and c.directives.get('error', 'false') == 'false':
            first = (c.source.strip().splitlines() or [''])[0][:60]
            raise BuildError(f"cell {c.idx_} ({first!r}) has an error in its saved outputs: {err['ename']}: "
                             f"{err['evalue']} (fix it, then `make outputs`)")
    split_title_cell(nb, path)
    try: docs_filter()(nb)
    except Exception as e:  # nbdev says which cell: its first line and the error (the last line)
        lines = str(e).strip().splitlines() or [type(e).__name__]
        raise BuildError(f"nbdev cannot process it: {lines[0]} {lines[-1]}") from None
    return nb


def to_nbformat(nb):
    "For nbconvert: the title block first, Quarto's cell options as tags for its TagRemovePreprocessor."
    import nbformat
    from fastcore.nbio import nb2str
    for c in nb.cells:
        d = c.directives
        c.remove_directives(); c.pop('has_sd', None)  # nbdev's mark on the show_doc cells it added
        tags = [t for (k, v), t in TAGS.items() if d.get(k) == v] + ['remove_cell'] * (c.cell_type == 'raw')
        c.metadata = {'tags': tags}  # raw: the front matter
    res = nbformat.reads(nb2str(nb), as_version=4)
    fm = nb.frontmatter_
    head = f"# {fm.get('title', '')}" + (f"\n\n> {fm['description']}" if fm.get('description') else '')
    res.cells.insert(0, nbformat.v4.new_markdown_cell(head))
    res.metadata.pop('widgets', None)
    return res


def exporter():
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    exp = HTMLExporter(template_name='lab', extra_template_paths=[str(TOOLS)], template_file='docs_page.html.j2',
                       exclude_input_prompt=True, exclude_output_prompt=True)
    tags = TagRemovePreprocessor(remove_cell_tags={'remove_cell'}, remove_input_tags={'remove_input'},
                                 remove_all_outputs_tags={'remove_output'})
    exp.register_preprocessor(tags, enabled=True)
    return exp


def pandoc_id(text: str) -> str:
    "The id pandoc gives a heading (lower case, punctuation but _ - . dropped, spaces to -), which nbdev links to."
    s = re.sub(r'\s+', '-', re.sub(r'[^\w\s.-]', '', text).strip().lower())
    return re.sub(r'^[^a-z]+', '', s) or 'section'


def last_sentence(md) -> str:
    "The last sentence of a markdown cell's last paragraph (or list item)."
    p = md and (md.find_all(['p', 'li']) or [md])[-1]
    text = ' '.join(p.get_text().replace('¶', '').split()) if p else ''
    return re.split(r'(?<=[.!?])\s+(?=[A-Z])', text)[-1]


def tidy(html: str, site_url: str, nbs: Path, stage: Path) -> tuple[str, int]:
    "Heading ids, relative links, local images copied, alt text on figures. Returns the page and its figure count."
    from bs4 import BeautifulSoup
    from nbdev.config import nbpath2html
    soup = BeautifulSoup(html, 'html.parser')
    for h in soup.select('main :is(h1, h2, h3, h4, h5, h6)[id]'):
        h['id'] = pandoc_id(h.get_text().rstrip('¶'))
        for a in h.select('a.anchor-link'): a.attrs.update({'href': '#' + h['id'], 'data-pagefind-ignore': ''})
    for a in soup.select('main a[href]'):
        href = a['href'].removeprefix(site_url) if a['href'] != site_url else 'index.html'
        m = re.match(r'([^:/#]+)\.ipynb(#.*)?$', href)  # a link to a notebook: its page
        a['href'] = nbpath2html(Path(m[1])).name + (m[2] or '') if m else href
    for img in soup.select('main img[src]'):
        if not re.match(r'\w+:', img['src']) and (nbs/img['src']).is_file():
            (stage/img['src']).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(nbs/img['src'], stage/img['src'])
    figures = soup.select('main .jp-OutputArea-output img')
    for img in figures:
        cell = img.find_parent(class_='jp-Cell')
        code = cell.select_one('.jp-InputArea')
        title = TITLE.search(code.get_text()) if code else None
        before = last_sentence(cell.find_previous(class_='jp-MarkdownCell'))
        img['alt'] = ' — '.join(filter(None, [title[2] if title else '', before])) or 'Figure'
    return str(soup), len(figures)


def need(path: Path) -> Path:
    if path.exists(): return path
    raise BuildError(f"{path.relative_to(ROOT)} is missing: run `npm ci --prefix tools` (make docs does)")


def build(out: Path, nbs: Path) -> dict:
    from nbdev.config import get_config
    t0 = time.time()
    cfg = get_config()
    site_url = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/') + '/'
    site, exp, nbks = pages(nbs), exporter(), {}
    for p in site:
        try: nbks[p['file']] = nb = process(nbs/p['source'])
        except BuildError as e: raise BuildError(f"{nbs/p['source']}: {e}") from None
        p.update(title=nb.frontmatter_.get('title', p['source']).replace('`', ''),
                 sha256=hashlib.sha256((nbs/p['source']).read_bytes()).hexdigest())
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f'.{out.name}.tmp-', dir=out.parent))
    try:
        stage.chmod(0o755)
        (stage/'assets').mkdir()
        shutil.copyfile(TOOLS/'docs_site.css', stage/'assets'/'site.css')
        for css in ('index.css', 'theme-light.css'):  # the lab template's styles, shared instead of inlined
            text = exp.environment.loader.get_source(exp.environment, f'static/{css}')[0]
            (stage/'assets'/f'lab-{css}').write_text(text)
        shutil.copyfile(need(NODE/'mathjax'/'es5'/'tex-svg-full.js'), stage/'assets'/'tex-svg-full.js')
        name, blob = cfg.lib_path.name, f"{cfg.git_url}/blob/{cfg.branch}/{cfg.nbs_path.relative_to(ROOT)}"
        for i, p in enumerate(site):
            nb = to_nbformat(nbks[p['file']])
            nb.metadata['title'] = f"{p['title']} – {name}"
            res = dict(name=name, repo=cfg.git_url, pages=site, page=p, source=f"{blob}/{p['source']}",
                       prev=site[i-1] if i else None, next=site[i+1] if i + 1 < len(site) else None)
            html, _ = exp.from_notebook_node(nb, resources=dict(site=res))
            html, p['figures'] = tidy(html, site_url, nbs, stage)
            (stage/p['file']).write_text(html)
        r = subprocess.run([need(NODE/'.bin'/'pagefind'), '--site', stage], capture_output=True, text=True)
        if r.returncode: raise BuildError(f"pagefind failed: {(r.stderr or r.stdout).strip()[-500:]}")
        manifest = dict(generator='tools/build_docs.py', nbs=str(nbs), built=time.time(),
                        seconds=round(time.time() - t0, 1), pages=site)
        (stage/'manifest.json').write_text(json.dumps(manifest, indent=1))
        (stage/'.nojekyll').write_text('')
        if out.exists():
            old = out.with_name(f'.{out.name}.tmp-old-{os.getpid()}')  # *.tmp-* is git-ignored
            out.rename(old); stage.rename(out); shutil.rmtree(old, ignore_errors=True)
        else: stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True); raise
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='output folder (default: _site)')
    ap.add_argument('--nbs', default=str(ROOT/'nbs'), help='notebook folder (default: nbs)')
    a = ap.parse_args(argv)
    out, nbs = Path(a.out).resolve(), Path(a.nbs).resolve()
    os.chdir(ROOT)  # as nbdev-docs does: nbdev's processors read the project's settings from here
    try: m = build(out, nbs)
    except BuildError as e:
        print(f"build_docs: error: {e}", file=sys.stderr); return 1
    figs = sum(p['figures'] for p in m['pages'])
    print(f"built {len(m['pages'])} pages ({figs} figures, searchable) in {m['seconds']:.1f}s -> {out}/index.html")
    return 0


if __name__ == '__main__':
    sys.exit(main())
