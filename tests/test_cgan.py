"SemNOMA-CGAN contracts: shapes at 32 and 256 px, a finite training step, L1 falls on tiles, checkpoints."
import math
import pytest
import torch
import torch.nn.functional as F
from kdd_semnoma.core import make_generator
from kdd_semnoma.testing import tiny_images
from kdd_semnoma.diffusion import degrade
from kdd_semnoma.cgan import (CGANConfig, UNetGenerator, PatchDiscriminator, make_cgan, train_step, train_cgan,
                              apply_cgan, save_cgan, load_cgan, evaluate_refiner, cgan_results)


@pytest.mark.parametrize("size", [32, 256])
def test_shapes(size):
    cfg = CGANConfig(img_size=size)
    x = tiny_images(1, 2, size)
    assert UNetGenerator(cfg)(x).shape == x.shape
    out = PatchDiscriminator(cfg)(x, x)
    assert out.logits.shape[:2] == (2, 1) and len(out.feats) == cfg.d_layers + 1


@pytest.mark.parametrize("adv", ["hinge", "lsgan"])
def test_train_step_finite(adv):
    cfg = CGANConfig(adv=adv)
    m = make_cgan(cfg)
    x = tiny_images(2, 2); x_hat = degrade(x, generator=make_generator(0))
    losses = train_step(m, x_hat, x, cfg)
    assert set(losses) == {"d", "g", "l1", "adv", "fm"} and all(math.isfinite(v) for v in losses.values())


def test_short_training_reduces_l1_on_tiles(tmp_path):
    from kdd_semnoma.data import sample_tiles
    ds = sample_tiles(32, 32)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    x_hat = degrade(x, generator=make_generator(0))
    m, hist = train_cgan(x_hat, x, CGANConfig(), steps=20, batch_size=8, device="cpu", show_progress=False)
    assert F.l1_loss(apply_cgan(m.gen, x_hat), x) < F.l1_loss(x_hat, x)
    save_cgan(m, tmp_path / "c.pt", step=20, history=hist)
    m2 = load_cgan(tmp_path / "c.pt")
    assert torch.allclose(apply_cgan(m2.gen, x_hat[:2]), apply_cgan(m.gen, x_hat[:2]), atol=1e-6)
    res = cgan_results(evaluate_refiner(x_hat, x, {"cgan": lambda t: apply_cgan(m.gen, t)}), name="c", description="d",
                       config={}, seed=0, data="tiles")
    assert res["results"]["method"] == ["before", "cgan"]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="power of two"): CGANConfig(img_size=48)
    with pytest.raises(ValueError, match="paired"):
        train_cgan(tiny_images(2, 1), tiny_images(3, 1), steps=1, device="cpu", show_progress=False)
    with pytest.raises(FileNotFoundError, match="train_cgan"): load_cgan(tmp_path / "none.pt")
