#!/usr/bin/env python3
"""Render the executed notebooks as a static HTML site, with Sphinx + myst-nb, that needs no network to display.

    python tools/build_site.py [--out _site] [--nbs nbs] [--verbose]

Why Sphinx + myst-nb (with sphinx-book-theme): it renders a notebook from its committed outputs (nothing is
executed: `nb_execution_mode = "off"`), parses Markdown outputs (nbdev's `#| output: asis`) and Markdown cells as
MyST with `$...$`/`$$...$$` maths, reads the package's docstrings for the API reference (autodoc), builds a search
index that works from file://, and its book theme is the textbook layout (sidebar of chapters, previous/next, page
contents). mkdocs-jupyter converts through nbconvert and needs a separate plugin for each of these. The maths is
typeset in the browser by the MathJax 3 copy that the `sphinx-mathjax-offline` package ships (its SVG output,
which needs no web fonts); no page loads anything from the network.

Every notebook in nbs/ (index.ipynb first, then the others in name order; names starting with `_` are skipped)
becomes one page, `X.ipynb` -> `X.html`; `index.html` is the home page and ends with the contents (every notebook
page in order under its title, the notebook's first Markdown `# ` heading). `api.html` is the API reference (one
section per module, in notebook order, linked to its notebook), `search.html` the search page. `manifest.json`
lists the notebook pages: file, notebook, title, `figures` (the outputs shown as images: image/png, image/svg+xml,
...) and `images` (those figures plus the images of the Markdown cells), and `api`/`search`.

The notebooks are staged (copied, never changed) before Sphinx reads them, with nbdev's directives applied as
nbdev_docs does: `#| hide` and `#| include: false` cells are dropped, `#| echo: false` hides the source,
`#| output: false` the outputs, `#| output: asis` turns the printed text into a Markdown output, and `#| ...`
lines are not shown. A bare `|` inside `$...$` in a Markdown table row is written `\\vert` (it would split the
row). Markdown images (e.g. ../results/*.png) are copied into the site when they lie inside the repository. Widget
outputs (they need a live kernel) become a one-line note; the static figure the cell also displays stays. Stream
outputs that only hold terminal control sequences (a progress bar clearing its line) are dropped.

An existing --out folder is replaced only when it holds a site built by this tool (its manifest.json says so); it is
written only once the whole site has built. Errors are one line on stderr and exit status 1.
"""
import argparse, copy, io, json, re, shutil, sys, tempfile, time
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / 'tools' / 'site'  # Sphinx's conf.py and static files
GENERATOR = 'tools/build_site.py'


class BuildError(Exception):
    "An error reported as one line, without a traceback."


IMAGE_TYPES = {'image/png', 'image/svg+xml', 'image/jpeg', 'image/gif'}
MIME_ORDER = ['application/vnd.jupyter.widget-view+json', 'text/html', 'image/svg+xml', 'image/png', 'image/jpeg', 'image/gif',
              'text/markdown', 'text/latex', 'text/plain']  # myst-nb's HTML priority: the first present is shown
WIDGET = 'application/vnd.jupyter.widget-view+json'
MD_IMAGE_SRC = re.compile(r'(!\[[^\]]*\]\(\s*|<img\b[^>]*?\bsrc=")([^)\s"]+)([^)]*\)|")', re.I)
TABLE_MATH = re.compile(r'(?<!\\)\$[^$]+\$')  # inline math in a table row: its bare | would split the cells
DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')
ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')  # terminal control sequences (progress bars clearing their line)
WIDGET_NOTE = ('<p class="site-widget-note">[an interactive widget: run this notebook in Jupyter to use it; '
               'the static figure above shows its first view]</p>')


def title_of(nb, fallback: str) -> str:
    "The text of the notebook's first markdown `# ` heading."
    for c in nb.cells:
        if c.cell_type != 'markdown': continue
        for line in c.source.splitlines():
            if line.startswith('# '): return line[2:].strip()
    return fallback


def directives(src: str) -> dict:
    out = {}
    for line in src.splitlines():
        m = DIRECTIVE.match(line)
        if m: out[m.group(1)] = m.group(2)
        elif line.strip(): break  # directives are the leading comment lines
    return out


def stage_image(src: str, where: Path, stage: Path) -> str:
    "A Markdown image's `src`, copied under `stage`/_repo/ (Sphinx reads only its source folder); its new relative src."
    if src.startswith(('data:', 'attachment:')): return src
    if re.match(r'^[a-z][\w+.-]*:|^//', src, re.I): raise BuildError(f'the image {src!r} would load from the network')
    f = (where / unquote(src)).resolve()
    repo = where.parent.resolve()
    if not f.is_file() or not f.is_relative_to(repo): raise BuildError(f'the image {src!r} could not be found in the repository')
    rel = Path('_repo') / f.relative_to(repo)
    (stage / rel).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f, stage / rel)
    return rel.as_posix()


def markdown(src: str, where: Path, stage: Path) -> str:
    "A markdown cell's source for the page: table-row math without bare |, images staged."
    def no_bar(m): return re.sub(r'(?<!\\)\|', r'\\vert ', m.group(0))
    src = '\n'.join(TABLE_MATH.sub(no_bar, ln) if ln.lstrip().startswith('|') else ln for ln in src.split('\n'))
    return MD_IMAGE_SRC.sub(lambda m: m.group(1) + stage_image(m.group(2), where, stage) + m.group(3), src)


def asis(outputs: list) -> list:
    "nbdev's `#| output: asis`: what the cell printed is Markdown."
    from nbformat.v4 import new_output
    out, text = [], ''
    for o in outputs:
        if o.get('output_type') == 'stream' and o.get('name') == 'stdout': text += o.get('text', '')
        else: out.append(o)
    md = new_output('display_data', data={'text/markdown': text})
    return ([md] if text.strip() else []) + out


def no_widgets(outputs: list) -> list:
    "Widget views need a live kernel: each becomes a one-line note. Streams that only cleared a progress bar go."
    from nbformat.v4 import new_output
    out = []
    for o in outputs:
        if o.get('output_type') == 'stream' and not ANSI.sub('', o.get('text', '')).strip(): continue
        if WIDGET in o.get('data', {}):
            o = new_output('display_data', data={'text/html': WIDGET_NOTE})
        out.append(o)
    return out


def prepare(nb, where: Path, stage: Path):
    "A copy of `nb` as the page shows it: nbdev directives applied, widgets replaced, images staged."
    nb = copy.deepcopy(nb)
    nb.metadata.pop('widgets', None)  # myst-nb would load the widget manager from a CDN for them
    cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            d = directives(c.source)
            if 'hide' in d or d.get('include') == 'false': continue
            tags = c.metadata.setdefault('tags', [])
            if d.get('echo') == 'false': tags.append('remove-input')
            if d.get('output') == 'false': tags.append('remove-output')
            if d.get('output') == 'asis': c.outputs = asis(c.outputs)
            c.outputs = no_widgets(c.outputs)
            c.source = '\n'.join(ln for ln in c.source.splitlines() if not DIRECTIVE.match(ln)).strip('\n')
            if not c.source and not c.outputs: continue
        elif c.cell_type == 'markdown':
            c.source = markdown(c.source, where, stage)
        cells.append(c)
    nb.cells = cells
    return nb


def shown_type(data: dict):
    return next((m for m in MIME_ORDER if m in data), None)


def count_images(nb) -> tuple:
    "(figures, images): outputs that render as an <img>, and those plus the markdown images."
    figures = sum(1 for c in nb.cells for o in c.get('outputs', []) if 'remove-output' not in c.metadata.get('tags', [])
                  and o.get('output_type') in ('display_data', 'execute_result') and shown_type(o.get('data', {})) in IMAGE_TYPES)
    md = sum(len(MD_IMAGE_SRC.findall(c.source)) for c in nb.cells if c.cell_type == 'markdown')
    return figures, figures + md


def api_page(modules: list) -> str:
    "The API reference: autodoc of each exported module, in notebook order."
    parts = ['# API reference', '',
             'Generated from the docstrings of the `kdd_semnoma` modules (Sphinx autodoc). Each module is one notebook, '
             'where the maths, demos and tests sit next to the code.', '']
    for mod, stem, title in modules:
        parts += [f'## `kdd_semnoma.{mod}`', '', f'Notebook: [{title}]({stem}.ipynb)', '',
                  '```{eval-rst}', f'.. automodule:: kdd_semnoma.{mod}', '   :members:', '```', '']
    return '\n'.join(parts)


def toctree(stems: list) -> str:
    return '\n'.join(['## Contents', '', '```{toctree}', ':maxdepth: 1', ':titlesonly:', '', *stems, '```', ''])


def parse_args(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise BuildError(message)
    p = Parser(description='Render the executed notebooks in nbs/ as a static HTML site (Sphinx + myst-nb; offline, no execution).')
    p.add_argument('--out', default=str(ROOT / '_site'), help='output folder (default: _site/ in the repository)')
    p.add_argument('--nbs', default=str(ROOT / 'nbs'), help='notebook folder (default: the repository nbs/)')
    p.add_argument('--verbose', action='store_true', help="show Sphinx's log and warnings")
    return p.parse_args(argv)


def check_out(out: Path):
    "An --out that may be replaced: missing, empty, or a site this tool built."
    if out.exists() and not out.is_dir(): raise BuildError(f'--out {out} is a file, not a folder')
    if out.is_dir() and any(out.iterdir()):
        old = out / 'manifest.json'
        if not old.is_file(): raise BuildError(f'--out {out} is a non-empty folder without a manifest.json: use a new or empty folder')
        try: ok = json.loads(old.read_text()).get('generator') == GENERATOR
        except (ValueError, AttributeError): ok = False
        if not ok: raise BuildError(f'{old} was not written by {GENERATOR}: use a new or empty folder')


def read_notebooks(nbs_dir: Path) -> list:
    if not nbs_dir.is_dir(): raise BuildError(f'notebook folder {nbs_dir} not found')
    paths = sorted(p for p in nbs_dir.glob('*.ipynb') if not p.name.startswith('_'))
    paths.sort(key=lambda p: p.name != 'index.ipynb')  # stable: index first, then name order
    if not paths or paths[0].name != 'index.ipynb': raise BuildError(f'{nbs_dir}/index.ipynb not found (it is the home page)')
    texts = []
    for p in paths:  # plain JSON first: a broken notebook is reported before the slow imports
        try:
            texts.append(p.read_text(encoding='utf-8'))
            d = json.loads(texts[-1])
            if not isinstance(d, dict) or not isinstance(d.get('cells'), list): raise ValueError('JSON, but no list of cells')
        except (OSError, ValueError) as e: raise BuildError(f'{p} is not a valid notebook: {e}')
    import nbformat
    nbs = []
    for p, text in zip(paths, texts):
        try: nbs.append(nbformat.reads(text, as_version=4))
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BuildError(f'{p} is not a valid notebook: {msg}')
    return list(zip(paths, nbs))


def sphinx(src: Path, html: Path, doctrees: Path, verbose: bool) -> list:
    "Run Sphinx (2 processes); its warnings."
    try:
        import myst_nb, sphinx_book_theme  # noqa: F401  (loaded by conf.py; missing ones are reported here in one line)
        from sphinx.application import Sphinx
        from sphinx.util.docutils import docutils_namespace, patch_docutils
    except ImportError as e: raise BuildError(f'{e.name} is not installed: pip install -e ".[dev]"')
    log, warn = (sys.stdout, sys.stderr) if verbose else (io.StringIO(), io.StringIO())
    try:
        with patch_docutils(CONF), docutils_namespace():
            app = Sphinx(str(src), str(CONF), str(html), str(doctrees), 'html', status=log, warning=warn, freshenv=True, parallel=2)
            app.build(force_all=True)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ''
        raise BuildError(f'Sphinx failed: {type(e).__name__}: {msg}')
    if app.statuscode: raise BuildError(f'Sphinx failed (status {app.statuscode}): run with --verbose to see its log')
    return [] if verbose else [ln for ln in warn.getvalue().splitlines() if 'WARNING' in ln or 'ERROR' in ln]


def check_pages(html: Path, pages: list):
    for page in pages:
        f = html / page['file']
        if not f.is_file(): raise BuildError(f'{page["notebook"]}: Sphinx wrote no {page["file"]}')
    for f in sorted(html.glob('*.html')):
        body = f.read_text(encoding='utf-8')
        remote = re.findall(r'<(?:script|link|iframe|img)\b[^>]*?\b(?:src|href)\s*=\s*"((?:https?:)?//[^"]*)"', body)
        if remote: raise BuildError(f'{f.name} loads {remote[0]} from the network')


def build(out: Path, nbs_dir: Path, verbose: bool = False) -> tuple:
    notebooks = read_notebooks(nbs_dir)
    check_out(out)
    pages, modules = [], []
    for p, nb in notebooks:
        pages.append(dict(file='index.html' if p.name == 'index.ipynb' else p.stem + '.html',
                          notebook=str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p), title=title_of(nb, p.stem)))
        exp = next((d['default_exp'] for c in nb.cells if c.cell_type == 'code' and 'default_exp' in (d := directives(c.source))), None)
        if exp and (ROOT / 'kdd_semnoma' / f'{exp}.py').is_file(): modules.append((exp, p.stem, pages[-1]['title']))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix='.build-site-', dir=out.parent) as tmp:
        stage, html = Path(tmp) / 'src', Path(tmp) / 'html'
        stage.mkdir()
        import nbformat
        for (p, nb), page in zip(notebooks, pages):
            nb = prepare(nb, p.parent, stage)
            page['figures'], page['images'] = count_images(nb)
            if p.name == 'index.ipynb':
                body = toctree([q.stem for q, _ in notebooks[1:]] + ['api'])
                nb.cells.append(nbformat.v4.new_markdown_cell(body))
            nbformat.write(nb, stage / p.name)
        (stage / 'api.md').write_text(api_page(modules), encoding='utf-8')
        warnings = sphinx(stage, html, Path(tmp) / 'doctrees', verbose)
        check_pages(html, pages)
        shutil.rmtree(html / '.doctrees', ignore_errors=True)
        (html / '.buildinfo').unlink(missing_ok=True)
        manifest = dict(generator=GENERATOR, pages=pages, api='api.html', search='search.html')
        (html / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n', encoding='utf-8')
        check_out(out)  # still ours (nothing wrote there meanwhile)
        if out.exists(): shutil.rmtree(out)
        try: html.rename(out)
        except OSError as e: raise BuildError(f'cannot write --out {out}: {e.strerror}')
    return pages, warnings


def main(argv=None) -> int:
    t0 = time.perf_counter()
    try:
        args = parse_args(argv)
        out = Path(args.out).resolve()
        if out.exists() and not out.is_dir(): raise BuildError(f'--out {out} is a file, not a folder')  # before the slow imports
        pages, warnings = build(out, Path(args.nbs).resolve(), args.verbose)
    except BuildError as e:
        print(f'build_site: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('build_site: interrupted', file=sys.stderr)
        return 1
    except OSError as e:
        print(f'build_site: error: {e.filename or ""}: {e.strerror or e}', file=sys.stderr)
        return 1
    n_fig = sum(p['figures'] for p in pages)
    note = f', {len(warnings)} Sphinx warnings (--verbose shows them)' if warnings else ''
    print(f'build_site: {len(pages)} pages, {n_fig} figures, API reference, search -> {out}/index.html '
          f'({time.perf_counter() - t0:.1f} s{note})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
