"""The rendered notebook site (tools/build_site.py, Sphinx + myst-nb): it builds, and every page renders in headless
Chromium with no network, its maths typeset, its Markdown outputs as Markdown, its images decoded and its links whole.

The browser is $KDD_SEMNOMA_BROWSER, else `chromium` on PATH, driven by Playwright (a dev requirement; it never
downloads a browser of its own here); without one the browser tests skip (install it with `apt-get install chromium`),
unless KDD_SEMNOMA_REQUIRE_BROWSER=1 (set by .ci/run when it has one), then they fail.
"""
import ast, json, os, re, shutil, subprocess, sys, time
from pathlib import Path
from urllib.parse import unquote, urlsplit
from conftest import offline_route
import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "tools" / "build_site.py"
NBS = sorted((p for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_")), key=lambda p: (p.name != "index.ipynb", p.name))
PAGES = ["index.html" if p.name == "index.ipynb" else p.stem + ".html" for p in NBS]
BUILD_LIMIT_S = 180  # the build takes ~40-70 s on 2 busy cores (imports, autodoc, 27 notebooks); this only catches a runaway
RAW = ["$$", "\\mathbf", "\\sum_", "\\frac", "|---|", "#| "]  # what unrendered maths, Markdown or nbdev directives show
SHOTS = ["index.html", "01_channel.html", "14_demo.html"]


def _build(out, *args):
    return subprocess.run([sys.executable, str(BUILD), "--out", str(out), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def _cells(nb: Path) -> list:
    return [dict(c, source="".join(c["source"])) for c in json.loads(nb.read_text())["cells"]]


def _directives(src: str) -> dict:
    out = {}
    for line in src.splitlines():
        m = re.match(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$", line)
        if not m: break
        out[m.group(1)] = m.group(2)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    "The site built into a fresh folder: (folder, manifest)."
    out = tmp_path_factory.mktemp("site") / "_site"
    t0 = time.perf_counter()
    r = _build(out)
    dt = time.perf_counter() - t0
    assert r.returncode == 0, f"build_site failed:\n{r.stdout}\n{r.stderr}"
    assert dt < BUILD_LIMIT_S, f"build_site took {dt:.0f} s"
    print(f"build_site: {dt:.1f} s")
    return out, json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def browser():
    b = os.environ.get("KDD_SEMNOMA_BROWSER") or shutil.which("chromium")
    why = None
    if not (b and os.access(b, os.X_OK)):
        where = f"KDD_SEMNOMA_BROWSER={b} is not executable" if b else "not on PATH"
        why = f"no headless Chromium ({where}): apt-get install chromium"
    else:
        try: import playwright.sync_api  # noqa: F401
        except ImportError: why = 'no Playwright: pip install -e ".[dev]" (it drives the system Chromium)'
    if why is None: return b
    if os.environ.get("KDD_SEMNOMA_REQUIRE_BROWSER") == "1": pytest.fail(why + " (KDD_SEMNOMA_REQUIRE_BROWSER=1)")
    pytest.skip(why)


# What a page shows once its scripts (MathJax, the theme, search) have run. Visible text is every rendered text node
# outside code-cell sources and inline code (they may show `$` or `\mathbf` on purpose), outputs included.
PROBE = r"""async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const art = document.querySelector('article.bd-article') || document.body;
  const walker = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  let text = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest('.cell_input, code, script, style, mjx-container, .headerlink')) continue;
    if (!el.getClientRects().length) continue;  // not displayed
    text.push(n.data);
  }
  const h1 = art.querySelector('h1');
  const own = el => Array.from(el.childNodes).filter(c => !(c.classList && c.classList.contains('headerlink')));
  return {
    title: document.title,
    h1: h1 ? own(h1).map(c => c.textContent).join('').trim() : null,
    text: text.join(''),
    math: document.querySelectorAll('.math').length,
    math_typeset: document.querySelectorAll('.math mjx-container').length,
    mjx: document.querySelectorAll('mjx-container').length,
    images: Array.from(document.images).map(im => ({src: im.currentSrc || im.src, ok: im.complete && im.naturalWidth > 0,
                                                    article: art.contains(im)})),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    toc: Array.from(art.querySelectorAll('.toctree-wrapper a.reference.internal')).map(a => a.getAttribute('href')),
    prevnext: Array.from(document.querySelectorAll('.prev-next-area a')).map(a => a.getAttribute('href')),
    tables: art.querySelectorAll('table').length,
    inner: art.innerText,
  };
}"""


@pytest.fixture(scope="module")
def rendered(browser, site):
    "Every page (notebooks, API reference, search for 'awgn') after its scripts ran, offline: (probe per file, network requests)."
    from playwright.sync_api import sync_playwright
    out, manifest = site
    files = [p["file"] for p in manifest["pages"]] + [manifest["api"]]
    requests, errors, res = [], {}, {}

    route = offline_route(("file:",), requests)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu"])
        ctx = b.new_context(viewport=dict(width=1200, height=2400))
        ctx.route("**/*", route)
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.setdefault(page.url, []).append(str(e)))
        for f in files:
            page.goto((out / f).as_uri(), wait_until="load")
            res[f] = page.evaluate(PROBE)
            if f in SHOTS: page.screenshot(path=str(out.parent / f"shot_{f}.png"))
        page.goto((out / manifest["search"]).as_uri() + "?q=awgn", wait_until="load")
        done = "() => /Search finished/.test((document.querySelector('.search-summary') || {}).innerText || '')"
        page.wait_for_function(done, timeout=30000)
        res["search"] = dict(hits=page.eval_on_selector_all("ul.search li a", "as => as.map(a => a.getAttribute('href'))"))
        b.close()
    return res, requests, errors


def test_manifest_lists_every_notebook(site):
    out, manifest = site
    pages = manifest["pages"]
    assert manifest["generator"] == "tools/build_site.py"
    assert [p["file"] for p in pages] == PAGES, "one page per notebook, index first, then name order"
    for nb, p in zip(NBS, pages):
        assert (out / p["file"]).is_file()
        cells = [c for c in _cells(nb) if "hide" not in _directives(c["source"])]
        md = [ln for c in cells if c["cell_type"] == "markdown" for ln in c["source"].splitlines()]
        heads = [ln[2:].strip() for ln in md if ln.startswith("# ")]
        assert p["title"] == (heads[0] if heads else nb.stem), f"{nb.name}: title"
        figs = sum(1 for c in cells for o in c.get("outputs", []) if {"image/png", "image/svg+xml"} & set(o.get("data", {})))
        assert p["figures"] == figs, f"{nb.name}: {p['figures']} figures in the manifest, {figs} image outputs in the notebook"
        assert p["images"] >= p["figures"]
    assert sum(p["figures"] > 0 for p in pages) >= 10, "at least 10 notebooks show figures"
    for f in (manifest["api"], manifest["search"], "_static/mathjax/tex-svg.js"): assert (out / f).is_file(), f


def test_pages_need_no_network(site, rendered):
    out, manifest = site
    for f in sorted(out.glob("*.html")):
        html = f.read_text()
        remote = re.findall(r'<(?:script|link|iframe|img)\b[^>]*?\b(?:src|href)\s*=\s*"?(?:https?:)?//[^"\s>]*', html, re.I)
        assert not remote, f"{f.name} loads from the network: {remote[:2]}"
    for f in sorted((out / "_static").rglob("*.css")):
        assert not re.search(r'@import\s+(?:url\()?["\']?(?:https?:)?//|url\(\s*["\']?(?:https?:)?//', f.read_text(errors="replace")), \
            f"{f.relative_to(out)}: CSS loads from the network"
    _, requests, _ = rendered
    assert not requests, f"the pages asked the network for {len(requests)} resources, e.g. {requests[:3]}"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(rendered, site, page):
    "Title and heading, maths typeset, no raw LaTeX/Markdown/directives, every image decoded, nav to previous/next."
    out, manifest = site
    res, _, errors = rendered
    p = next((q for q in manifest["pages"] if q["file"] == page), None)
    assert p is not None, f"{page} is not in the manifest"
    r = res[page]
    title = re.sub(r"[`*]", "", p["title"])
    assert r["title"].startswith(title), f"{page}: <title> {r['title']!r}, expected it to start with {title!r}"
    assert r["h1"] == title, f"{page}: first heading {r['h1']!r}, expected {title!r}"
    raw = [s for s in RAW if s in r["text"]]
    if raw:
        at = r["text"].index(raw[0])
        pytest.fail(f"{page}: raw {raw} in the visible text, e.g. ...{r['text'][max(0, at - 60):at + 60]!r}...")
    assert r["math_typeset"] == r["math"], f"{page}: {r['math'] - r['math_typeset']} of {r['math']} maths nodes not typeset by MathJax"
    nb_md = "".join(c["source"] for c in _cells(NBS[PAGES.index(page)]) if c["cell_type"] == "markdown")
    nb_md = re.sub(r"`[^`]*`", "", re.sub(r"```.*?```", "", nb_md, flags=re.S))   # code ($VARS, shell) is not maths
    if re.search(r"\$[^$\s][^$]*\$", nb_md): assert r["mjx"] > 0, f"{page}: the notebook has maths, the page shows none typeset"
    bad = [im["src"][-80:] for im in r["images"] if not im["ok"]]
    assert not bad, f"{page}: {len(bad)} images did not decode: {bad[:3]}"
    shown = sum(im["article"] for im in r["images"])
    assert shown == p["images"], f"{page}: {shown} images on the page, {p['images']} expected ({p['figures']} figures)"
    assert not errors.get((out / page).as_uri()), f"{page}: script errors {errors[(out / page).as_uri()][:2]}"
    i = PAGES.index(page)
    nav = PAGES[i - 1:i] + (PAGES[i + 1:i + 2] or [manifest["api"]])
    assert r["prevnext"] == nav, f"{page}: previous/next links {r['prevnext']}, expected {nav}"


def test_images_decode_in_full(site, rendered):
    "Every image file the pages show decodes to the end (PIL for bitmaps, an XML parse for SVG)."
    import xml.etree.ElementTree as ET
    from PIL import Image
    res, _, _ = rendered
    srcs = {im["src"] for r in res.values() for im in r.get("images", [])}
    assert srcs, "no images at all"
    for src in sorted(srcs):
        assert src.startswith("file:"), f"an image outside the site: {src[:80]}"
        f = Path(unquote(urlsplit(src).path))
        try:
            if f.suffix == ".svg": ET.parse(f)
            else:
                with Image.open(f) as im: im.load()
        except Exception as e: pytest.fail(f"{f.name} does not decode: {type(e).__name__}: {e}")


def test_internal_links_resolve(site, rendered):
    "Every link into the site names a file that exists, and its #fragment an id on that page."
    out, _ = site
    res, _, _ = rendered
    ids = {}
    for r in res.values():
        for href in r.get("links", []):
            u = urlsplit(href)
            if u.scheme != "file": continue
            f = Path(unquote(u.path))
            assert f.is_relative_to(out) and f.exists(), f"a link to {href} (missing)"
            if u.fragment and f.suffix == ".html":
                if f not in ids: ids[f] = set(re.findall(r'\bid="([^"]+)"', f.read_text()))
                assert unquote(u.fragment) in ids[f], f"a link to {href}: no id {u.fragment!r} there"


def test_nbdev_directives_and_markdown_outputs(rendered):
    "`#| hide` and `#| echo: false` sources are not shown, other code is; `#| output: asis` prints tables and lists, widgets a note."
    res, _, _ = rendered
    for nb, page in zip(NBS, PAGES):
        text = {ln.strip() for ln in res[page]["inner"].splitlines()}
        cells = [c for c in _cells(nb) if c["cell_type"] == "code"]
        shown = {ln.strip() for c in cells if not ({"hide", "echo"} & set(_directives(c["source"]))) for ln in c["source"].splitlines()}
        for c in cells:
            d = _directives(c["source"])
            printed = json.dumps(c.get("outputs", []))  # a line the cell also prints may be on the page
            lines = [ln.strip() for ln in c["source"].splitlines()
                     if len(ln.strip()) >= 25 and not ln.strip().startswith("#") and json.dumps(ln.strip())[1:-1] not in printed]
            hidden = "hide" in d or d.get("echo") == "false"
            for ln in lines:
                if hidden and ln not in shown: assert ln not in text, f"{page}: a hidden cell's source is shown: {ln!r}"
                if not hidden: assert ln in text, f"{page}: a code cell's source is missing: {ln!r}"
    quick, index = res["15_quickstart.html"], res["index.html"]   # the results tables live in 15_quickstart since the landing page
    assert quick["tables"] >= 2, f"15_quickstart.html: {quick['tables']} tables; the `#| output: asis` results are Markdown tables"
    assert "The main job" in index["inner"] and "* **The main job**" not in index["inner"], "index.html: the findings list is raw Markdown"
    assert "VBox(children" not in res["14_demo.html"]["inner"] and "interactive widget" in res["14_demo.html"]["inner"]


def test_home_page_lists_every_page(site, rendered):
    out, manifest = site
    res, _, _ = rendered
    toc = res["index.html"]["toc"]
    assert toc == [p["file"] for p in manifest["pages"][1:]] + [manifest["api"]], "the home page's contents list every page in order"
    for href in toc: assert (out / href).is_file(), f"the home page links {href}, which does not exist"


def test_api_reference_documents_every_module(site, rendered):
    "api.html holds autodoc's entry (signature and docstring) for every exported function and class."
    out, manifest = site
    html = (out / manifest["api"]).read_text()
    mods = sorted(p.stem for p in (ROOT / "kdd_semnoma").glob("*.py") if not p.stem.startswith("_"))
    n = 0
    for m in mods:
        tree = ast.parse((ROOT / "kdd_semnoma" / f"{m}.py").read_text())
        names = next((ast.literal_eval(s.value) for s in tree.body if isinstance(s, ast.Assign)
                      and any(getattr(t, "id", None) == "__all__" for t in s.targets)), [])
        defs = {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(s)}
        for name in sorted(set(names) & defs):
            assert f'id="kdd_semnoma.{m}.{name}"' in html, f"api.html has no entry for kdd_semnoma.{m}.{name}"
            n += 1
    assert n >= 100, f"only {n} documented symbols checked"
    res, _, _ = rendered
    assert res[manifest["api"]]["h1"] == "API reference"
    hits = res["search"]["hits"]
    assert any(h.startswith("01_channel.html") for h in hits), f"searching 'awgn' does not find the channel notebook: {hits[:5]}"


@pytest.mark.parametrize("page", SHOTS)
def test_screenshot_is_not_blank(site, rendered, page):
    "Pixels, not just DOM: a screenshot of the page's top shows text, maths and figures (many colours, not one flat fill)."
    from PIL import Image, ImageStat
    out, _ = site
    im = Image.open(out.parent / f"shot_{page}.png").convert("RGB")
    assert im.size == (1200, 2400)
    assert max(ImageStat.Stat(im).var) > 100, f"{page}: the screenshot is blank"
    assert len(im.getcolors(1 << 24)) > 200, f"{page}: the screenshot has few colours (no figure rendered?)"


def test_out_is_a_file_is_a_one_line_error(tmp_path):
    f = tmp_path / "not_a_folder"
    f.write_text("x")
    r = _build(f)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "is a file" in r.stderr and f.read_text() == "x"


def test_foreign_out_folder_is_a_one_line_error(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    r = _build(tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "without a manifest.json" in r.stderr and (tmp_path / "mine.txt").read_text() == "keep"


def test_bad_notebook_is_a_one_line_error(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    shutil.copy(ROOT / "nbs" / "index.ipynb", nbs)
    (nbs / "01_broken.ipynb").write_text('{"cells": [')
    r = _build(tmp_path / "out", "--nbs", str(nbs))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "01_broken.ipynb is not a valid notebook" in r.stderr
    assert not (tmp_path / "out").exists()
