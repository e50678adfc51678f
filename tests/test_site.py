"""The rendered notebook site (tools/build_site.py): it builds, and every page renders in headless Chromium with its figures.

The browser is $KDD_SEMNOMA_BROWSER, else `chromium` on PATH; without one the browser tests skip (install it with
`apt-get install chromium`), unless KDD_SEMNOMA_REQUIRE_BROWSER=1 (set by .ci/run when it has one), then they fail.
"""
import base64, io, json, os, re, shutil, subprocess, sys, tempfile, time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote
import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "tools" / "build_site.py"
NBS = sorted((p for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_")), key=lambda p: (p.name != "index.ipynb", p.name))
PAGES = ["index.html" if p.name == "index.ipynb" else p.stem + ".html" for p in NBS]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000"]
BUILD_LIMIT_S = 120  # the build takes ~15 s on 2 busy cores; this only catches a runaway


def _build(out, *args):
    return subprocess.run([sys.executable, str(BUILD), "--out", str(out), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


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
    if b and os.access(b, os.X_OK): return b
    why = f"no headless Chromium ({'KDD_SEMNOMA_BROWSER=' + b + ' is not executable' if b else 'not on PATH'}): apt-get install chromium"
    if os.environ.get("KDD_SEMNOMA_REQUIRE_BROWSER") == "1": pytest.fail(why + " (KDD_SEMNOMA_REQUIRE_BROWSER=1)")
    pytest.skip(why)


def chromium(browser, url, *args, timeout=60):
    "Run headless Chromium once on `url` with a throw-away profile; its stdout."
    with tempfile.TemporaryDirectory(prefix="kdd-chromium-") as profile:
        r = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args, url], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"chromium failed on {url} (exit {r.returncode}):\n{r.stderr[-2000:]}"
    return r.stdout


class Dom(HTMLParser):
    "What the tests read from a dumped DOM: title, h1 texts, <img> srcs, body attributes, nav links, error markers."
    def __init__(self, html):
        super().__init__()
        self.title, self.h1, self.imgs, self.body, self.nav, self.toc, self.errors = "", [], [], {}, [], [], []
        self._stack, self._anchor = [], 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("img", "br", "meta", "link", "input", "hr"):
            if tag == "img": self.imgs.append(a.get("src") or "")
            return
        self._stack.append((tag, a.get("class") or ""))
        classes = [c for _, cls in self._stack for c in cls.split()]
        if tag == "body": self.body = a
        if tag == "h1": self.h1.append("")
        if tag == "parsererror": self.errors.append("parsererror element")
        if tag == "a" and "anchor-link" in (a.get("class") or ""): self._anchor += 1
        if tag == "a" and "site-nav" in classes: self.nav.append(a.get("href"))
        if tag == "a" and "site-toc" in classes: self.toc.append(a.get("href"))

    def handle_endtag(self, tag):
        while self._stack:
            t, cls = self._stack.pop()
            if t == "a" and "anchor-link" in cls: self._anchor -= 1
            if t == tag: break

    def handle_data(self, data):
        tags = [t for t, _ in self._stack]
        if tags and tags[-1] == "title": self.title += data
        if "h1" in tags and not self._anchor: self.h1[-1] += data
        if "Traceback (most recent call last)" in data: self.errors.append("a Python traceback on the page")


def image_error(src: str):
    "Why the image in a data: URI does not decode in full (PIL for bitmaps, an XML parse for SVG), or None."
    from PIL import Image
    head, _, payload = src.partition(",")
    try:
        raw = base64.b64decode(payload, validate=True) if head.endswith(";base64") else unquote(payload).encode()
        if "svg" in head: ET.fromstring(raw)
        else:
            with Image.open(io.BytesIO(raw)) as im: im.load()  # raises on a truncated or corrupt file
    except Exception as e: return f"{type(e).__name__}: {e}"


@pytest.fixture(scope="module")
def doms(browser, site):
    "Every page's rendered DOM, two Chromium processes at a time."
    out, manifest = site
    files = [p["file"] for p in manifest["pages"]]
    with ThreadPoolExecutor(2) as pool:
        html = list(pool.map(lambda f: chromium(browser, (out / f).as_uri(), "--dump-dom"), files))
    return dict(zip(files, html))


def test_manifest_lists_every_notebook(site):
    out, manifest = site
    pages = manifest["pages"]
    assert [p["file"] for p in pages] == PAGES, "one page per notebook, index first, then name order"
    for nb, p in zip(NBS, pages):
        assert (out / p["file"]).is_file()
        cells = [c for c in json.loads(nb.read_text())["cells"] if not re.search(r"^#\|\s*hide\s*$", "".join(c["source"]), re.M)]
        md = [ln for c in cells if c["cell_type"] == "markdown" for ln in "".join(c["source"]).splitlines()]
        heads = [ln[2:].strip() for ln in md if ln.startswith("# ")]
        assert p["title"] == (heads[0] if heads else nb.stem), f"{nb.name}: title"
        figs = sum(1 for c in cells for o in c.get("outputs", []) if {"image/png", "image/svg+xml"} & set(o.get("data", {})))
        assert p["figures"] == figs, f"{nb.name}: {p['figures']} figures in the manifest, {figs} image outputs in the notebook"
        assert p["images"] >= p["figures"]
    assert sum(p["figures"] > 0 for p in pages) >= 10, "at least 10 notebooks show figures"


def test_pages_need_no_network(site):
    out, manifest = site
    for p in manifest["pages"]:
        html = (out / p["file"]).read_text()
        remote = re.findall(r'<(?:script|link|iframe|img)\b[^>]*?\b(?:src|href)\s*=\s*"?(?:https?:)?//[^"\s>]*', html, re.I)
        assert not remote, f"{p['file']} loads from the network: {remote[:2]}"
        assert not re.search(r'@import|url\(\s*["\']?(?:https?:)?//', html), f"{p['file']}: CSS loads from the network"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_with_its_figures(doms, site, page):
    _, manifest = site
    p = next((q for q in manifest["pages"] if q["file"] == page), None)
    assert p is not None, f"{page} is not in the manifest"
    dom = Dom(doms[page])
    title = re.sub(r"[`*]", "", p["title"])
    assert dom.title.strip() == p["title"], f"{page}: <title> {dom.title!r}"
    assert dom.h1 and dom.h1[0].strip() == title, f"{page}: first heading {dom.h1[:1]!r}, expected {title!r}"
    data = [s for s in dom.imgs if s.startswith("data:image/")]
    assert len(data) == len(dom.imgs), f"{page}: images not embedded: {[s[:80] for s in dom.imgs if not s.startswith('data:image/')]}"
    assert len(data) == p["images"], f"{page}: {len(data)} embedded images rendered, {p['images']} expected ({p['figures']} figures)"
    if p["figures"]: assert len(data) >= 1
    for k, src in enumerate(data): assert image_error(src) is None, f"{page}: image {k + 1} does not decode: {image_error(src)}"
    # the page's own load-time check: every <img> finished loading with a non-zero natural size
    assert dom.body.get("data-images-broken") == "0", f"{page}: {dom.body.get('data-images-broken')} images did not decode"
    assert dom.body.get("data-images-decoded") == str(p["images"]), f"{page}: {dom.body.get('data-images-decoded')} images decoded"
    assert not dom.errors, f"{page}: {dom.errors}"
    i = PAGES.index(page)
    nav = ["index.html"] + ([PAGES[i - 1]] if i > 0 else []) + ([PAGES[i + 1]] if i + 1 < len(PAGES) else [])
    assert dom.nav == nav, f"{page}: nav links {dom.nav}, expected home/previous/next {nav}"


def test_home_page_links_every_notebook(doms, site):
    out, manifest = site
    toc = Dom(doms["index.html"]).toc
    assert toc == [p["file"] for p in manifest["pages"][1:]], "the home page's contents list every notebook page in order"
    for href in toc: assert (out / href).is_file(), f"the home page links {href}, which does not exist"


@pytest.mark.parametrize("page", ["index.html", "01_channel.html"])
def test_screenshot_is_not_blank(browser, site, tmp_path, page):
    "Pixels, not just DOM: a screenshot of the page's top shows text and figures (many distinct colours, not one flat fill)."
    from PIL import Image, ImageStat
    out, _ = site
    shot = tmp_path / "shot.png"
    chromium(browser, (out / page).as_uri(), f"--screenshot={shot}", "--window-size=1200,2400", "--hide-scrollbars")
    im = Image.open(shot).convert("RGB")
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
