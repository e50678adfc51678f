"""The reference implementation's formulation (bench/reference_impl.py, the baseline of bench/train_speed.py) computes
the same function as the kit's one forward path, to fp32 tolerance: outputs, decoder features and gradients."""
import sys
from pathlib import Path
import pytest
import torch
from kdd_semnoma.core import make_generator
from kdd_semnoma.channel import ChannelConfig
from kdd_semnoma.testing import tiny_images, tiny_snr
from kdd_semnoma.deepjscc import get_config, _unit_layer_scale
from kdd_semnoma.semnoma import make_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))
from reference_impl import to_reference, RefLayerNorm2d, RefConvNeXtBlock  # noqa: E402


def _pair(kind, K=3, preset='tiny', **kw):
    m = _unit_layer_scale(make_model(kind, get_config(preset, n_users=K, **kw), ChannelConfig(fading='rayleigh'))).eval()
    return m, to_reference(m).eval()


@pytest.mark.parametrize("kind", ['semnoma', 'teacher', 'single', 'oma', 'sic'])
def test_reference_formulation_equals_kit(kind):
    "Same weights, same channel draws: the NCHW per-user-loop reference gives the kit's outputs and decoder features."
    m, ref = _pair(kind, c_lat=6)                                            # OMA splits c_lat among K = 3
    assert any(isinstance(x, RefLayerNorm2d) for x in ref.modules()) and any(isinstance(x, RefConvNeXtBlock) for x in ref.modules())
    x, s = tiny_images(2, 3), tiny_snr(2)
    with torch.no_grad():
        a, b = m(x, s, generator=make_generator(1)), ref(x, s, generator=make_generator(1))
    torch.testing.assert_close(a.x_hat, b.x_hat, atol=1e-5, rtol=0)
    for f, r in zip(a.feats.dec, b.feats.dec): torch.testing.assert_close(f, r, atol=1e-4, rtol=1e-4)


def test_reference_runs_nchw_and_kit_channels_last():
    "The formulations differ where the issue says: the kit's decoder features are channels-last, the reference's NCHW."
    m, ref = _pair('semnoma', K=2)
    cfg = m.net_cfg
    y, side = torch.randn(2, *cfg.latent_shape), torch.rand(2, cfg.n_side_dec)
    with torch.no_grad():
        a, b = m.decoders[0](y, side), ref.decoders[0](y, side)
    assert a.seq[1].is_contiguous(memory_format=torch.channels_last) and not a.seq[1].is_contiguous()
    assert b.seq[1].is_contiguous()
    torch.testing.assert_close(a.x_hat, b.x_hat, atol=1e-5, rtol=0)


def test_reference_gradients_equal_kit():
    "One L1 training step's gradients agree parameter by parameter (the reference copy shares no storage with the kit)."
    m, ref = _pair('semnoma', K=2, preset='cpu-small', drop_path=0.)
    x, s = tiny_images(2, 2), tiny_snr(2)
    for net in (m, ref):
        (net(x, s, generator=make_generator(3)).x_hat - x).abs().mean().backward()
    gm, gr = dict(m.named_parameters()), dict(ref.named_parameters())
    assert gm.keys() == gr.keys()
    for k in gm:
        assert gm[k].data_ptr() != gr[k].data_ptr()
        torch.testing.assert_close(gm[k].grad, gr[k].grad, atol=1e-6, rtol=1e-3, msg=k)
