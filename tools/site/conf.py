"""Sphinx configuration of the rendered-notebook site; `python tools/build_site.py` is the command that uses it.

build_site.py stages the notebooks (nbdev directives applied) into a temporary source folder and runs Sphinx with
this folder as its configuration directory. Nothing here is fetched from the network: MathJax is the copy that the
`sphinx-mathjax-offline` package ships (copied into `_static/mathjax/`), the theme's fonts and scripts are its own.
"""
import importlib.util, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # autodoc documents this checkout's kdd_semnoma, not another installed copy

project = 'kdd-semnoma'
author = 'kdd-semnoma developers'
copyright = '2026 onwards, kdd-semnoma developers'
root_doc = 'index'

extensions = ['myst_nb', 'sphinx.ext.autodoc', 'sphinx.ext.mathjax']

# the notebooks as committed: nothing is executed, Markdown outputs (nbdev's `#| output: asis`) are parsed as MyST
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath']
myst_dmath_double_inline = True  # `$$...$$` inside a paragraph is display maths, as in Jupyter
myst_heading_anchors = 3
suppress_warnings = ['mystnb.unknown_mime_type', 'myst.header']

# API reference: autodoc reads the docstrings (one line each, house style); `x` in a docstring is code, as in Markdown
default_role = 'code'
autodoc_member_order = 'bysource'
autodoc_preserve_defaults = True
autodoc_typehints = 'signature'


def markdown_docstring(app, what, name, obj, options, lines):
    "Docstrings are nbdev's Markdown one-liners: outside `code`, RST's inline markup characters (| * trailing _) are text."
    for i, line in enumerate(lines):
        parts = re.split(r'(`[^`]*`)', line)
        lines[i] = ''.join(p if p.startswith('`') else re.sub(r'([|*]|_(?=\W|$))', r'\\\1', p) for p in parts)

html_theme = 'sphinx_book_theme'
html_title = 'kdd-semnoma'
html_static_path = ['_static']
html_css_files = ['site.css']
html_copy_source = False
html_show_sourcelink = False
html_theme_options = dict(use_download_button=False, use_fullscreen_button=False, use_repository_button=False,
                          show_toc_level=2, navigation_with_keys=False)


# MathJax 3 from the sphinx-mathjax-offline package (its own Sphinx extension would point at the CHTML build, whose
# web fonts Chromium refuses to load from file:// pages, and turns parallel reading off): the SVG build draws its
# glyphs itself; the TeX extensions, menu and accessibility parts it loads on demand come along
mathjax_path = 'mathjax/tex-svg.js'
MATHJAX_ENTRY = 'tex-svg.js'


def mathjax_dir() -> Path:
    spec = importlib.util.find_spec('sphinx-mathjax-offline')
    d = Path(next(iter(spec.submodule_search_locations or []), '')) / 'static' / 'mathjax' if spec else None
    if d is None or not (d / MATHJAX_ENTRY).is_file():
        raise RuntimeError('no offline MathJax: pip install sphinx-mathjax-offline (it ships MathJax 3)')
    return d


def copy_mathjax(app, exc):
    if exc is not None: return
    src = mathjax_dir()
    other_builds = lambda d, names: [n for n in names if Path(d) == src and n.endswith('.js') and n != MATHJAX_ENTRY]
    shutil.copytree(src, Path(app.outdir) / '_static' / 'mathjax', ignore=other_builds, dirs_exist_ok=True)


def setup(app):
    mathjax_dir()  # fail before the build, not after it
    app.connect('build-finished', copy_mathjax)
    app.connect('autodoc-process-docstring', markdown_docstring)
    return dict(parallel_read_safe=True, parallel_write_safe=True)
