"Bounds contracts: capacity identities, outage closed form, codec payload parsing, separation records schema."
import math
import numpy as np
import pytest
import torch
from kdd_semnoma.bounds import awgn_mac_rates, rayleigh_mac_rates, symmetric_rate, outage_probability, capacity_records
from kdd_semnoma.separation import (available_codecs, codec_table, select_encoding, separation_records, CODEC_SETTINGS,
                                    _encode, PAYLOAD)
from kdd_semnoma.results import make_results


@pytest.mark.parametrize("K", [1, 2, 4])
def test_noma_equals_boosted_oma_on_awgn(K):
    r = awgn_mac_rates(np.linspace(-10, 40, 11), K)
    np.testing.assert_allclose(r.noma_sym, r.oma_boost)
    assert (r.oma_equal <= r.noma_sym + 1e-12).all()
    np.testing.assert_allclose(r.sum_rate, K * r.noma_sym)


def test_symmetric_rate_subset_constraint():
    g = np.array([[0.01, 5.0]])                      # one deep fade: the weak user's single-user bound binds
    assert symmetric_rate(g, 20.)[0] == pytest.approx(math.log2(1 + 100 / 2 * 0.01))


def test_outage_closed_form_k1():
    snr = 10 ** 0.5
    assert outage_probability(1.0, 5., 1, n_draws=1 << 18) == pytest.approx(1 - math.exp(-1 / snr), abs=3e-3)


def test_rates_errors():
    with pytest.raises(ValueError, match="n_users"): awgn_mac_rates(0., 0)
    with pytest.raises(ValueError, match="eps"): rayleigh_mac_rates(0., 2, eps=0.)


def test_unknown_codec():
    with pytest.raises(ValueError, match="unknown codec"): available_codecs(('bpg',))


@pytest.mark.parametrize("codec", list(CODEC_SETTINGS))
def test_payload_smaller_than_file(codec):
    if codec not in available_codecs((codec,)): pytest.skip(f"{codec} not available in this Pillow")
    from PIL import Image
    im = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    for s in CODEC_SETTINGS[codec][2][::4]:
        b = _encode(im, codec, s)
        assert 0 < PAYLOAD[codec](b) < len(b)


def test_separation_records_schema():
    x = torch.rand(4, 3, 32, 32)
    tab = codec_table(x, ('jpeg', 'webp'))
    with pytest.raises(ValueError, match="not in the table"): select_encoding(tab, 100, codecs=('heif',))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"): codec_table(x[0])
    recs = separation_records(tab, np.arange(4).reshape(2, 2), [0., 30.], channel='rayleigh-nocsit')
    assert {tuple(sorted(r)) for r in recs} == {('metric', 'n', 'snr_db', 'user', 'value')}
    res = make_results('s', recs)['results']
    assert {'psnr', 'psnr_hdr', 'psnr_jpeg', 'psnr_webp', 'outage_prob', 'psnr_user1'} <= set(res)
    assert res['psnr'][1] >= res['psnr'][0]


def test_capacity_records_bits():
    res = make_results('c', capacity_records([10.], 2, 512, n_draws=1024))['results']
    assert res['bits_awgn_noma'][0] == pytest.approx(256 * math.log2(11))
