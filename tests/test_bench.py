"Smoke test of bench/train_speed.py (timings themselves are never asserted: speed lives in the benchmark)."
import subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.mark.slow
def test_train_speed_quick_runs(tmp_path):
    out = tmp_path / 'rows.json'
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'train_speed.py'), '--quick', '--presets', 'tiny', '--users', '2',
                        '--devices', 'cpu', '--batch', '4', '--json', str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'speed-up' in r.stdout and 'matmul throughput' in r.stdout
    import json
    rows = json.loads(out.read_text())
    assert {row['impl'] for row in rows} == {'reference', 'fast'}
    assert all(row['train_img_s'] > 0 and row['infer_img_s'] > 0 and row['peak_mem_mb'] > 0 for row in rows)

def test_help():
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'train_speed.py'), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and '--quick' in r.stdout
