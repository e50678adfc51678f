"Channel contracts and failure cases used by every model."
import pytest, torch
from kdd_semnoma.core import make_generator, to_complex, to_real
from kdd_semnoma.channel import (Channel, ChannelConfig, normalize_power, power_split, sample_fading,
                                 noma_mac, snr_grid, check_snr_db)
from kdd_semnoma.testing import tiny_latent

@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("fading", ["none", "rayleigh", "rician", "fast"])
@pytest.mark.parametrize("access", ["noma", "oma"])
def test_channel_shapes_and_power(k, fading, access):
    ch = Channel(ChannelConfig(fading=fading, access=access))
    z = normalize_power(tiny_latent(3, k, 64), ch.tx_power(k))
    out = ch(z, torch.tensor([0., 10., 20.]), generator=make_generator(0))
    assert out.y.shape == ((3, 64) if access == "noma" else (3, k, 64))
    assert out.side_tx.shape == out.side_rx.shape == (3, k, 3)
    assert torch.allclose(z.abs().pow(2).mean(-1), ch.tx_power(k).expand(3, k), atol=1e-5)

def test_same_generator_same_output():
    ch = Channel(ChannelConfig(fading="rayleigh", csi_err_var=0.1))
    z = normalize_power(tiny_latent(2, 2, 32), ch.tx_power(2))
    a, b = ch(z, 5., generator=make_generator(3)), ch(z, 5., generator=make_generator(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b))

def test_odd_latent_cannot_be_packed():
    with pytest.raises(ValueError, match="even number of latent channels"):
        to_complex(torch.randn(2, 3, 5, 1))

def test_k_mismatch_messages():
    z = tiny_latent(2, 3, 16)
    with pytest.raises(ValueError, match="same batch and n_users"):
        noma_mac(z, sample_fading(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="K=3"):
        normalize_power(z, power_split(2))

def test_snr_errors():
    with pytest.raises(ValueError, match="not linear"): check_snr_db(1000.)
    with pytest.raises(ValueError, match="step must be positive"): snr_grid("0:20:0")
    with pytest.raises(ValueError, match=r"\(B,\)=2"): check_snr_db(torch.zeros(3), 2)

def test_complex_roundtrip_shapes():
    zr = torch.randn(4, 2, 16, 8, 8)
    assert torch.equal(to_real(to_complex(zr), (16, 8, 8)), zr)
