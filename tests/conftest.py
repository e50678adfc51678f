"Shared pytest fixtures and options: markers slow/cuda/download/data, --device, per-test seeding."
import os
import pytest
import torch

def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for device-parametrised tests (cpu or cuda)")

@pytest.fixture
def device(request):
    d = request.config.getoption("--device")
    if d.startswith("cuda") and not torch.cuda.is_available(): pytest.skip("CUDA not available")
    return torch.device(d)

@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

@pytest.fixture
def kdd_home(tmp_path, monkeypatch):
    "An isolated KDD_SEMNOMA_HOME for tests that write files."
    monkeypatch.setenv("KDD_SEMNOMA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"

@pytest.fixture
def real_data():
    "The real data folder from $KDD_SEMNOMA_DATA; skips (with the reason) when it is not configured."
    p = os.environ.get("KDD_SEMNOMA_DATA")
    if not p or not os.path.isdir(p): pytest.skip("set KDD_SEMNOMA_DATA to the real data folder to run this test")
    from pathlib import Path
    return Path(p)

def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="CUDA not available")
        for it in items:
            if "cuda" in it.keywords: it.add_marker(skip)


def offline_route(allowed: tuple, blocked: list):
    "A Playwright route handler for the browser tests: requests starting with `allowed` go through, others are aborted and listed."
    def route(r):
        if r.request.url.startswith(allowed): return r.continue_()
        blocked.append(r.request.url)
        r.abort()
    return route
