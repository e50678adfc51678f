"Metrics contracts: failure cases, missing-weights messages, no downloads, results JSON round-trip."
import json, math
import pytest
import torch
from kdd_semnoma.metrics import (psnr, psnr_of_mean_mse, ssim, ms_ssim, lpips_model, inception_features_model,
                                 find_weights, frechet_distance, feature_stats, jain_index)
from kdd_semnoma.results import save_results, load_results, make_results, records_to_table, aggregate_records


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    "Empty weights folder and torch hub cache."
    monkeypatch.setenv("KDD_SEMNOMA_WEIGHTS", str(tmp_path / "w"))
    old = torch.hub.get_dir(); torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path
    torch.hub.set_dir(old)


@pytest.fixture
def no_network(monkeypatch):
    "Any download attempt fails the test."
    def boom(*a, **k): raise AssertionError("a download was attempted")
    import urllib.request
    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", boom)
    monkeypatch.setattr(urllib.request, "urlopen", boom)


def test_psnr_shape_and_range_errors():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="same shape"): psnr(x[:1], x)
    with pytest.raises(ValueError, match="divide"): psnr(x * 255, x * 255)
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"): psnr(x * 2 - 1, x)
    with pytest.raises(ValueError, match="NaN"): psnr(torch.full_like(x, float("nan")), x)
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\)"): psnr(torch.rand(8, 8), torch.rand(8, 8))
    assert psnr(x * 255, x * 255, data_range=255.).shape == (2,)


def test_psnr_conventions_known_values():
    x = torch.rand(4, 2, 3, 16, 16) * 0.8
    torch.testing.assert_close(psnr(x + 0.05, x), torch.full((4, 2), 20 * math.log10(20)), atol=1e-3, rtol=0)
    torch.testing.assert_close(psnr_of_mean_mse(x + 0.05, x), torch.full((2,), 20 * math.log10(20)), atol=1e-3, rtol=0)


def test_ssim_size_errors():
    with pytest.raises(ValueError, match="at least 11x11"): ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="use ssim instead"): ms_ssim(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))


@pytest.mark.parametrize("net,fname", [("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth"),
                                       ("squeeze", "squeezenet1_1-b8a52dc0.pth")])
def test_lpips_missing_weights_message(no_weights, no_network, net, fname):
    with pytest.raises(FileNotFoundError) as e: lpips_model(net)
    msg = str(e.value)
    assert fname in msg and "curl -L -o" in msg and "KDD_SEMNOMA_WEIGHTS" in msg and str(no_weights / "w") in msg


def test_lpips_builds_without_network(no_network):
    import torchvision
    for net, ctor in (("alex", torchvision.models.alexnet), ("squeeze", torchvision.models.squeezenet1_1)):
        lp = lpips_model(net, backbone_state=ctor(weights=None).state_dict())   # random backbone: plumbing only
        x = torch.rand(2, 3, 32, 32)
        assert lp(x * 2 - 1, x * 2 - 1).abs().max() < 1e-6


def test_lpips_bad_net():
    with pytest.raises(ValueError, match="net must be one of"): lpips_model("resnet")


def test_hub_cache_is_searched_and_verified(no_weights):
    hub = no_weights / "hub" / "checkpoints"; hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="sha256"): find_weights("alexnet")
    assert find_weights("alexnet", verify=False).parent == hub


def test_inception_missing_weights_message(no_weights, no_network):
    with pytest.raises(FileNotFoundError, match="inception_v3_google-0cc3c7bd.pth"): inception_features_model()


def test_frechet_errors_and_symmetry():
    g = torch.Generator().manual_seed(0)
    m1, s1 = feature_stats(torch.randn(500, 5, generator=g, dtype=torch.float64))
    m2, s2 = feature_stats(2 * torch.randn(500, 5, generator=g, dtype=torch.float64))
    assert abs(frechet_distance(m1, s1, m2, s2) - frechet_distance(m2, s2, m1, s1)) < 1e-6
    with pytest.raises(ValueError, match="N >= 2"): feature_stats(torch.randn(1, 5))


def test_results_roundtrip(tmp_path):
    recs = [dict(snr_db=s, user=u, metric=m, value=v + s + u, n=10)
            for s in (0., 5.) for u in (0, 1) for m, v in (("psnr", 20.), ("ssim", 0.5))]
    recs.append(dict(snr_db=5., user=-1, metric="jain_psnr", value=float("inf"), n=10))
    p = save_results(tmp_path / "a" / "r.json", name="m", records=recs, seed=3, data="tiny",
                     config={"k": torch.tensor(2)}, conventions={"psnr": "x"}, description="d")
    json.loads(p.read_text())                                   # strict JSON (inf -> null)
    r = load_results(p)
    assert r["name"] == "m" and r["seed"] == 3 and r["config"] == {"k": 2} and r["conventions"]["psnr"] == "x"
    assert r["results"]["snr_db"] == [0., 5.] and r["results"]["psnr_user1"] == [21., 26.]
    assert r["results"]["psnr"] == [20.5, 25.5] and r["results"]["jain_psnr"] == [None, None]
    assert len(r["records"]) == len(recs) and r["records"][-1]["value"] is None
    assert not list(p.parent.glob(".*tmp*"))                    # atomic write leaves no temp file
    assert "| snr_db | psnr | ssim |" in records_to_table(recs, metrics=["psnr", "ssim"])


def test_aggregate_weights_by_n():
    recs = [dict(snr_db=0, user=0, metric="psnr", value=10., n=1), dict(snr_db=0, user=0, metric="psnr", value=20., n=3)]
    assert aggregate_records(recs)["psnr"] == [17.5]


def test_results_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="kdd_eval"): load_results(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a kdd-semnoma results file"): load_results(tmp_path / "x.json")
    with pytest.raises(ValueError, match="lacks"): make_results("m", [dict(snr_db=0, metric="psnr", value=1.)])
    with pytest.raises(ValueError, match="needs name= and records="): save_results(tmp_path / "y.json", name="m")
    with pytest.raises(ValueError, match="path is missing"): save_results({"name": "m", "results": {}})


def test_jain_bounds():
    q = torch.rand(100, 4) + 0.01
    j = jain_index(q)
    assert ((j >= 0.25 - 1e-6) & (j <= 1 + 1e-6)).all()
