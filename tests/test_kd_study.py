"""The KD study (bench/kd_study.py): arms are what the notebook says, the committed results JSON are exactly what
`report` computes from the committed per-image files, and one run works end to end at toy size."""
import importlib.util, json, math
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('kd_study', ROOT / 'bench' / 'kd_study.py')
ks = importlib.util.module_from_spec(spec); spec.loader.exec_module(ks)


def test_arms_hold_everything_but_the_method_equal():
    from kdd_semnoma.kd import KDWeights
    cfgs = {a: ks.train_config_for('awgn', a, 1, ks.BUDGET) for a in ('scratch', 'nokd', 'kd', 'fa-x2000', 'crosskd-only', 'scratch-total')}
    same = ('lr', 'weight_decay', 'grad_clip', 'lr_schedule', 'warmup_steps', 'batch_size', 'preset', 'seed', 'snr_low', 'snr_high')
    for a, c in cfgs.items():
        assert all(getattr(c, f) == getattr(cfgs['kd'], f) for f in same), a
    assert (cfgs['scratch'].init_from, cfgs['nokd'].init_from, cfgs['kd'].init_from) == ('scratch', 'teacher', 'teacher')
    assert cfgs['kd'].kd == KDWeights() and cfgs['kd'].crosskd_at == 6
    assert ks.train_config_for('rayleigh', 'kd', 0, ks.BUDGET).crosskd_at == 1
    assert math.isclose(cfgs['fa-x2000'].kd.fa, 2000 * 200 / 4096) and cfgs['crosskd-only'].kd.fa == 0
    assert cfgs['scratch-total'].max_steps == ks.BUDGET['teacher_steps'] + ks.BUDGET['student_steps']
    assert cfgs['kd'].grad_clip == 0 and cfgs['kd'].weight_decay == 1e-4
    with pytest.raises(ValueError, match='unknown arm'): ks.arm_spec('distill-harder')


def test_long_budget_is_the_issues_and_keeps_its_own_files():
    "--budget long: >= 9000 student steps (3x the old 3000), its own npz folder and results names; short is untouched."
    try:
        ks.select_budget('long')
        assert ks.BUDGET['student_steps'] >= 9000 and ks.BUDGET['teacher_steps'] >= 3 * ks.BUDGETS['short']['teacher_steps']
        assert ks.NPZ_DIR == ROOT / 'results' / 'kd_study_long' and ks.study_name() == 'kd_study_long'
        assert ks.train_config_for('awgn', 'kd', 0, ks.BUDGET).max_steps == 9000
        assert {k: v for k, v in ks.BUDGET.items() if k not in ('teacher_steps', 'student_steps', 'val_every')} == \
               {k: v for k, v in ks.BUDGETS['short'].items() if k not in ('teacher_steps', 'student_steps', 'val_every')}
        assert 'a7653e8' in ks.run_code({}) and ks.run_code({'code': 'abc1234'}) == 'abc1234'
        with pytest.raises(SystemExit, match='unknown --budget'): ks.select_budget('huge')
    finally:
        ks.select_budget('short')
    assert ks.NPZ_DIR == ROOT / 'results' / 'kd_study' and ks.BUDGET['student_steps'] == 1000
    assert 'short study' in ks.run_code({})                  # its runs are not labelled with the long study's commits


def test_xlong_budget_is_the_zoo_chain_and_arms_filter_the_queue():
    "--budget xlong doubles the long budget's steps (issue 24's zoo chain); --arms keeps the named arms and their teacher."
    try:
        ks.select_budget('xlong')
        assert ks.BUDGET['teacher_steps'] == 2 * ks.BUDGETS['long']['teacher_steps']
        assert ks.BUDGET['student_steps'] == 2 * ks.BUDGETS['long']['student_steps']
        assert ks.NPZ_DIR == ROOT / 'results' / 'kd_study_xlong' and ks.run_code({}) == 'not recorded'
        assert ks.train_config_for('awgn', 'oma', 0, ks.BUDGET).max_steps == 18000
    finally:
        ks.select_budget('short')
    q = ks.queue(['awgn'], 1, extras=True, oma=True, arms=['kd', 'scratch', 'oma'])
    assert q == [('awgn', 'teacher', 0), ('awgn', 'scratch', 0), ('awgn', 'kd', 0), ('awgn', 'oma', 0)]
    with pytest.raises(ValueError, match='unknown arm'): ks.queue(['awgn'], 1, True, True, arms=['kd', 'distil'])


@pytest.mark.parametrize('budget', ['short', 'long'])
@pytest.mark.parametrize('channel', ['awgn', 'rayleigh'])
def test_committed_results_are_what_report_computes(channel, budget):
    "Each committed study JSON is `report` of the committed per-image files (the long one is rebuilt as runs land)."
    try:
        ks.select_budget(budget)
        committed = json.loads((ROOT / 'results' / f'{ks.study_name()}_cifar10_{channel}.json').read_text())
        doc = json.loads(json.dumps(ks.report_channel(channel), default=float))
    finally:
        ks.select_budget('short')
    assert doc['results'].keys() == committed['results'].keys()
    assert doc['config']['seeds'] == committed['config']['seeds'], 'run `python bench/kd_study.py report --budget long`'
    assert doc['config']['paired_seeds'] == committed['config']['paired_seeds'], 'rerun `report`: gains pair these seeds'
    for k, v in doc['results'].items():
        np.testing.assert_allclose(np.array(v, float), np.array(committed['results'][k], float), atol=1e-9, err_msg=k)
    assert doc['summary'] == committed['summary'], 'the summary lines are read from the numbers: rerun `report`'
    if budget == 'short':
        assert committed['config']['seeds']['kd'] == committed['config']['seeds']['nokd'] and len(committed['config']['seeds']['kd']) >= 3


def test_gain_sentence_says_where_the_interval_lies():
    "A gain's line names the paired seeds and, per SNR, whether its 95 % interval is above, across or below zero; one seed is no finding."
    res = {'snr_db': [0., 10., 20.], 'gain_psnr_kd_vs_nokd': [0.1, 0.0, -0.2],
           'gain_psnr_kd_vs_nokd_ci95': [[0.05, 0.15], [-0.02, 0.03], [-0.3, -0.1]]}
    line = ks.gain_sentence(res, {'kd_vs_nokd': [0, 1]}, 'kd_vs_nokd', 'kd − nokd')
    assert line == ('kd − nokd, 2 paired seeds: +0.10 / +0.00 / -0.20 dB at 0 / 10 / 20 dB SNR; '
                    '95 % interval above zero at 0 dB; straddling zero at 10 dB; below zero at 20 dB')
    assert ks.gain_sentence(res, {'kd_vs_scratch': [0]}, 'kd_vs_scratch', 'x') is None
    one = ks.gain_sentence(res, {'kd_vs_nokd': [0]}, 'kd_vs_nokd', 'kd − nokd')      # one seed: says it is no finding
    assert one.startswith('kd − nokd, 1 paired seed: ') and one.endswith('two single systems, not a finding)')


def test_gains_pair_seeds_by_id_not_by_position():
    "Arm a has seeds 0 and 2, arm b 0, 1, 2: the gain pairs a's seed 2 with b's seed 2, never with b's seed 1."
    score = lambda seeds: {'psnr': np.stack([np.full((1, 4, 2), 20. + s) for s in seeds]), 'seeds': list(seeds)}
    x, y, common = ks.pair_by_seed(score([0, 2]), score([0, 1, 2]), 'psnr')
    assert common == [0, 2] and x.shape == y.shape == (2, 1, 4, 2)
    np.testing.assert_array_equal(x - y, 0)                                  # same seed, same score
    with pytest.raises(ValueError, match='pair_by_seed'):
        ks.bootstrap_mean(np.zeros((2, 4, 2)), np.zeros((3, 4, 2)))


def test_bootstrap_interval_covers_the_mean_and_pairs():
    rng = np.random.default_rng(0)
    a = rng.normal(20, 1, (3, 200, 2)); b = a - 0.3 + rng.normal(0, 0.01, a.shape)
    m, lo, hi, s = ks.bootstrap_mean(a, b)
    assert s == 3 and lo < m < hi and abs(m - 0.3) < 0.01 and hi - lo < 0.02      # paired: the shared noise cancels
    m1, lo1, hi1, _ = ks.bootstrap_mean(a[:1])
    assert lo1 < m1 < hi1


def _toy_teacher_and_kd(tmp_path, monkeypatch):
    "Train a toy teacher and KD student of the selected study on the tiles; the student's npz."
    monkeypatch.setenv('KDD_SEMNOMA_HOME', str(tmp_path / 'home'))
    monkeypatch.setattr(ks, 'NPZ_DIR', tmp_path / 'npz')
    monkeypatch.setattr(ks, 'test_pairs', lambda: __import__('torch').rand(3, 2, 3, 32, 32))
    budget = dict(preset='tiny', teacher_steps=2, student_steps=2, batch_size=4, val_every=2)
    for arm in ('teacher', 'kd'): ks.do_run('awgn', arm, 0, tmp_path / 'runs', budget, data='tiles')
    return np.load(tmp_path / 'npz' / 'awgn' / 'kd-s0.npz')


def test_one_run_end_to_end_at_toy_size(tmp_path, monkeypatch):
    z = _toy_teacher_and_kd(tmp_path, monkeypatch)
    meta = json.loads(str(z['meta']))
    assert z['psnr'].shape == (5, 3, 2) and meta['train_config']['stage'] == 'student'
    assert meta['code'] == ks.code_version() != ''          # the commit that trained it (unknown outside a git checkout)


def test_queue_puts_what_the_study_needs_first():
    "Teachers, then the zoo's systems (seed 0 of the main arms, OMA), the main arms' other seeds, then the AWGN extras."
    q = ks.queue(['awgn', 'rayleigh'], 3, extras=True, oma=True)
    assert q[:2] == [('awgn', 'teacher', 0), ('rayleigh', 'teacher', 0)] and q[8] == ('awgn', 'oma', 0)
    assert all(r[2] == 0 for r in q[:9]) and all(r[2] > 0 for r in q[9:21])
    main = [i for i, r in enumerate(q) if r[1] in ks.MAIN_ARMS]
    assert len(main) == 18 and max(main) < min(i for i, r in enumerate(q) if r[1] in ks.EXTRA_ARMS)
    assert len(set(q)) == len(q) and ks.queue(['rayleigh'], 1, extras=True, oma=True)[-1] == ('rayleigh', 'kd', 0)


def test_out_act_none_study_keeps_its_own_files_and_trains_raw_decoders(tmp_path, monkeypatch):
    "Issue 28's arm: `--out_act none` writes to kd_study_outact-none, trains the reference's raw output, records outside."
    try:
        ks.select_budget('short', 'none')
        assert ks.study_name() == 'kd_study_outact-none' and ks.NPZ_DIR == ROOT / 'results' / 'kd_study_outact-none'
        assert ks.train_config_for('awgn', 'kd', 1, ks.BUDGET).output_act == 'none'
        with pytest.raises(SystemExit, match='unknown --out_act'): ks.select_budget('short', 'tanh')
        z = _toy_teacher_and_kd(tmp_path, monkeypatch)
        assert json.loads(str(z['meta']))['out_act'] == 'none' and z['outside'].shape == (5,)
        assert z['outside'].max() > 0          # an untrained raw conv leaves outputs below 0
    finally:
        ks.select_budget('short')
    assert ks.study_name() == 'kd_study' and ks.train_config_for('awgn', 'kd', 1, ks.BUDGET).output_act == 'sigmoid'


def test_committed_out_act_results_are_what_outact_computes():
    "results/out_act_cifar10_awgn.json (issue 28) is what `kd_study.py outact` computes from the committed npz files."
    committed = json.loads((ROOT / 'results' / 'out_act_cifar10_awgn.json').read_text())
    doc = json.loads(json.dumps(ks.out_act_report('awgn'), default=float))
    for k, v in committed['results'].items():
        assert np.allclose(np.array(doc['results'][k], dtype=float), np.array(v, dtype=float), atol=1e-9, equal_nan=True), k
    assert committed['summary'] == doc['summary'] and committed['config']['paired_seeds'] == doc['config']['paired_seeds']
    assert all(len(s) == 3 for a, s in committed['config']['paired_seeds'].items() if a != 'teacher')   # >= 3 seeds per student arm


def test_t_interval_is_wider_than_the_spread_suggests_with_few_seeds():
    m, lo, hi = ks.t_interval(np.array([1.0, 2.0, 3.0]))
    assert m == 2.0 and abs((hi - lo) / 2 - 4.303 * 1.0 / np.sqrt(3)) < 1e-3      # t(0.975, 2) = 4.303
    assert np.isnan(ks.t_interval(np.array([1.0]))[1])
