#!/usr/bin/env python3
"""Render the executed notebooks as a static HTML site that needs no network to display.

    python tools/build_site.py [--out _site] [--nbs nbs]

Every notebook in nbs/ (index.ipynb first, then the others in name order; names starting with `_` are skipped)
becomes one page, converted with nbconvert's HTMLExporter from its committed outputs (nothing is executed).
`index.ipynb` becomes `index.html`, the home page: the rendered index notebook with a table of contents that
links every notebook page in order under its title (the notebook's first markdown `# ` heading). Each page has a
nav bar (home / previous / next). `manifest.json` lists the pages: file, notebook, title, `figures` (the outputs
shown as images: image/png, image/svg+xml, ...) and `images` (every <img> the page holds: those figures plus the
images of the markdown cells).

Offline by construction: figures and markdown images are embedded as data: URIs, the CSS is inlined, and the
template drops nbconvert's remote scripts (require.js, MathJax, mermaid, widget manager). LaTeX is therefore left
as its `$...$` source text (no MathJax offline); JavaScript and widget outputs show a one-line note instead (they
need a live kernel). The only script on a page is a small inline one that, once the page has loaded, records on
<body> how many images decoded (`data-images-decoded`) and how many did not (`data-images-broken`); the site test
reads these from the rendered DOM.

nbdev directives are honoured as nbdev_docs does: `#| hide` cells are dropped, `#| echo: false` hides the code,
and `#| ...` directive lines are not shown. Links to `X.ipynb` in markdown point at `X.html`. A bare `|` inside
`$...$` in a markdown table row is written `\\vert` (nbconvert would split the row there and show the whole table as
a paragraph). Markdown images (e.g. ../results/*.png) are embedded when they lie inside the repository.

The output is deterministic (same notebooks, same bytes). An existing --out folder is reused only when it holds a
site built by this tool (its old pages are removed first); it is written only once every page has rendered. Errors
are one line on stderr and exit status 1.
"""
import argparse, base64, copy, json, mimetypes, re, sys, time
from html import escape
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]


class BuildError(Exception):
    "An error reported as one line, without a traceback."


TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}
<style type="text/css">
nav.site-nav { position: sticky; top: 0; z-index: 10; display: flex; gap: 1.5em; padding: 6px 12px;
  background: #f3f4f6; border-bottom: 1px solid #d1d5db; font-family: var(--jp-ui-font-family, sans-serif); font-size: 14px; }
nav.site-nav a { text-decoration: none; color: #1d4ed8; }
nav.site-nav .site-disabled { color: #9ca3af; }
nav.site-toc { margin: 1em var(--jp-notebook-padding, 10px); padding: 0.5em 1.5em; border: 1px solid #d1d5db; border-radius: 4px;
  font-family: var(--jp-ui-font-family, sans-serif); }
nav.site-toc h2 { font-size: 1.2em; margin: 0.4em 0; }
nav.site-toc code { color: #6b7280; font-size: 0.85em; }
.site-omitted { font-style: italic; color: #6b7280; padding: 4px 8px; }
</style>
{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.site.nav }}
{{ resources.site.toc }}
{%- endblock body_header -%}
{% block input %}
{#- as lab's, without bleach-cleaning pygments' own (escaped) markup: that took half the build time -#}
<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline">
     <div class="cm-editor cm-s-jupyter">
{{ cell.source | highlight_code(metadata=cell.metadata) }}
     </div>
</div>
{%- endblock input %}
{%- block data_javascript scoped -%}
<div class="jp-OutputArea-output site-omitted">[a JavaScript output: open the notebook in Jupyter to see it]</div>
{%- endblock data_javascript -%}
{%- block data_widget_view scoped -%}
<div class="jp-OutputArea-output site-omitted">[an interactive widget: open the notebook in Jupyter to use it]</div>
{%- endblock data_widget_view -%}
{%- block footer_js -%}
<script>
window.addEventListener('load', function () {
  var ok = 0, bad = 0;
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    if (im.complete && im.naturalWidth > 0) ok++; else bad++;
  }
  document.body.setAttribute('data-images-decoded', ok);
  document.body.setAttribute('data-images-broken', bad);
});
</script>
{%- endblock footer_js -%}
"""

IMAGE_TYPES = {'image/png', 'image/svg+xml', 'image/jpeg', 'image/gif'}
MD_IMAGE_SRC = re.compile(r'(!\[[^\]]*\]\(\s*|<img\b[^>]*?\bsrc=")([^)\s"]+)([^)]*\)|")', re.I)
MD_IMAGE = re.compile(r'!\[[^\]]*\]\([^)\s]+(?:\s+"[^"]*")?\)|<img\s', re.I)
TABLE_MATH = re.compile(r'(?<!\\)\$[^$]+\$')  # inline math in a table row: its bare | would split the cells
DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')


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


def embed(src: str, where: Path) -> str:
    "A markdown image's `src` as a data: URI (nbconvert embeds only files under the notebook folder; ../results is outside)."
    if re.match(r'^[a-z][\w+.-]*:', src, re.I): return src  # data:, http:, attachment: ... left to nbconvert
    f = (where / unquote(src)).resolve()
    if not f.is_file() or not f.is_relative_to(where.parent.resolve()): return src  # reported as not embedded
    mime = mimetypes.guess_type(f.name)[0] or 'application/octet-stream'
    return f'data:{mime};base64,' + base64.b64encode(f.read_bytes()).decode('ascii')


def markdown(src: str, stems: set, where: Path) -> str:
    "A markdown cell's source for the page: table-row math without bare |, images embedded, links to notebooks -> pages."
    def no_bar(m): return re.sub(r'(?<!\\)\|', r'\\vert ', m.group(0))
    def page(m): return '](' + m.group(1) + ('.html' if m.group(1) in stems else '.ipynb') + (m.group(2) or '') + ')'
    src = '\n'.join(TABLE_MATH.sub(no_bar, ln) if ln.lstrip().startswith('|') else ln for ln in src.split('\n'))
    src = MD_IMAGE_SRC.sub(lambda m: m.group(1) + embed(m.group(2), where) + m.group(3), src)
    return re.sub(r'\]\(([\w.-]+)\.ipynb(#[^)]*)?\)', page, src)


def prepare(nb, stems: set, where: Path):
    "A copy of `nb` as the page shows it: nbdev directives applied, images embedded, .ipynb links pointed at the pages."
    nb = copy.deepcopy(nb)
    cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            d = directives(c.source)
            if 'hide' in d: continue
            if d.get('echo') == 'false': c.metadata.setdefault('transient', {})['remove_source'] = True
            c.source = '\n'.join(ln for ln in c.source.splitlines() if not DIRECTIVE.match(ln)).strip('\n')
            if not c.source and not c.get('outputs'): continue
        elif c.cell_type == 'markdown':
            c.source = markdown(c.source, stems, where)
        cells.append(c)
    nb.cells = cells
    return nb


def count_images(nb, data_type) -> tuple:
    "(figures, images): outputs that render as an <img>, and those plus the markdown images."
    figures = 0
    for c in nb.cells:
        for o in c.get('outputs', []):
            if o.get('output_type') in ('display_data', 'execute_result'):
                shown = data_type(o.get('data', {}))
                if shown and shown[0] in IMAGE_TYPES: figures += 1
    md = sum(len(MD_IMAGE.findall(c.source)) for c in nb.cells if c.cell_type == 'markdown')
    return figures, figures + md


def nav_html(pages, i) -> str:
    def link(j, label):
        if j is None or not 0 <= j < len(pages): return f'<span class="site-disabled">{label}</span>'
        return f'<a href="{pages[j]["file"]}" title="{escape(pages[j]["title"])}">{label}</a>'
    prev = link(i - 1 if i > 0 else None, '&larr; previous')
    nxt = link(i + 1, 'next &rarr;')
    here = escape(pages[i]['title'])
    return (f'<nav class="site-nav"><a href="index.html">home</a>{prev}{nxt}'
            f'<span class="site-here">{here}</span></nav>')


def toc_html(pages) -> str:
    items = ''.join(f'<li><a href="{p["file"]}">{escape(p["title"])}</a> <code>{escape(Path(p["notebook"]).name)}</code></li>'
                    for p in pages if p['file'] != 'index.html')
    return f'<nav class="site-toc"><h2>Notebooks</h2><ol>{items}</ol></nav>'


def parse_args(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise BuildError(message)
    p = Parser(description='Render the executed notebooks in nbs/ as a static HTML site (offline, no execution).')
    p.add_argument('--out', default=str(ROOT / '_site'), help='output folder (default: _site/ in the repository)')
    p.add_argument('--nbs', default=str(ROOT / 'nbs'), help='notebook folder (default: the repository nbs/)')
    return p.parse_args(argv)


def prepare_out(out: Path):
    if out.exists() and not out.is_dir(): raise BuildError(f'--out {out} is a file, not a folder')
    if out.is_dir() and any(out.iterdir()):
        old = out / 'manifest.json'
        if not old.is_file(): raise BuildError(f'--out {out} is a non-empty folder without a manifest.json: use a new or empty folder')
        try: files = [p['file'] for p in json.loads(old.read_text())['pages']] + ['manifest.json']
        except (ValueError, KeyError, TypeError) as e: raise BuildError(f'{old} is not a manifest written by this tool ({e})')
        for f in files:
            if '/' in f or '\\' in f: raise BuildError(f'{old} lists an unexpected file {f!r}')
            (out / f).unlink(missing_ok=True)
    try: out.mkdir(parents=True, exist_ok=True)
    except OSError as e: raise BuildError(f'cannot create --out {out}: {e.strerror}')


def build(out: Path, nbs_dir: Path) -> list:
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
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    nbs = []
    for p, text in zip(paths, texts):
        try: nbs.append(nbformat.reads(text, as_version=4))
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BuildError(f'{p} is not a valid notebook: {msg}')
    stems = {p.stem for p in paths}
    pages = [dict(file='index.html' if p.name == 'index.ipynb' else p.stem + '.html',
                  notebook=str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p), title=title_of(nb, p.stem))
             for p, nb in zip(paths, nbs)]

    exporter = HTMLExporter(template_name='lab', theme='light', embed_images=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            extra_loaders=[DictLoader({'site.html.j2': TEMPLATE})], template_file='site.html.j2')
    data_type = exporter.environment.filters['filter_data_type']
    bodies = []  # all pages are rendered before --out is touched: a failed build leaves it as it was
    for i, (p, nb, page) in enumerate(zip(paths, nbs, pages)):
        nb = prepare(nb, stems, p.parent)
        nb.metadata['title'] = page['title']
        page['figures'], page['images'] = count_images(nb, data_type)
        site = dict(nav=nav_html(pages, i), toc=toc_html(pages) if page['file'] == 'index.html' else '')
        resources = dict(metadata=dict(name=p.stem, path=str(p.parent)), site=site)
        try: body, _ = exporter.from_notebook_node(nb, resources=resources)
        except Exception as e: raise BuildError(f'{p}: nbconvert failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}')
        srcs = re.findall(r'<img\b[^>]*?\bsrc="([^"]*)"', body)
        bad = [s for s in srcs if not s.startswith('data:')]
        if bad: raise BuildError(f'{p}: image {bad[0]!r} could not be embedded (file missing?)')
        if len(srcs) != page['images']:
            raise BuildError(f'{p}: the page holds {len(srcs)} images, the notebook {page["images"]}')
        remote = re.findall(r'<(?:script|link|iframe)\b[^>]*?\b(?:src|href)="(https?:[^"]*)"', body)
        if remote: raise BuildError(f'{p}: the page loads {remote[0]} from the network')
        bodies.append(body)
    prepare_out(out)
    manifest = dict(generator='tools/build_site.py', pages=pages)
    try:
        for page, body in zip(pages, bodies): (out / page['file']).write_text(body, encoding='utf-8')
        (out / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n', encoding='utf-8')
    except OSError as e: raise BuildError(f'cannot write into --out {out}: {e.strerror}')
    return pages


def main(argv=None) -> int:
    t0 = time.perf_counter()
    try:
        args = parse_args(argv)
        out = Path(args.out)
        if out.exists() and not out.is_dir(): raise BuildError(f'--out {out} is a file, not a folder')  # before the slow imports
        pages = build(out, Path(args.nbs).resolve())
    except BuildError as e:
        print(f'build_site: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('build_site: interrupted', file=sys.stderr)
        return 1
    n_fig = sum(p['figures'] for p in pages)
    print(f'build_site: {len(pages)} pages, {n_fig} figures -> {out}/index.html ({time.perf_counter() - t0:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
