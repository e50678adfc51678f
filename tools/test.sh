#!/usr/bin/env bash
# Run every test of the kit: the notebooks (nbdev_test) and tests/ (pytest).
# Ends with one line "N passed, N failed, N skipped" (notebooks count one test each; deselected counts on the line above).
# Real-data cells/tests run when $KDD_SEMNOMA_DATA points at a data folder (see ../shared/data/README.md).
# Extra notebook flags: KDD_TEST_FLAGS="slow cuda" bash tools/test.sh
set -u
cd "$(dirname "$0")/.."
flags="${KDD_TEST_FLAGS:-}"
marks="not slow and not cuda and not download and not data"
if [ -n "${KDD_SEMNOMA_DATA:-}" ] && [ -d "${KDD_SEMNOMA_DATA}" ]; then
  flags="$flags data"; marks="not slow and not cuda and not download"
  echo "real-data tests on: KDD_SEMNOMA_DATA=$KDD_SEMNOMA_DATA"
else
  echo "real-data tests off: set KDD_SEMNOMA_DATA to a data folder to run them"
fi
for f in $flags; do case $f in slow|cuda|download) marks="${marks//not $f and /}"; marks="${marks//and not $f/}";; esac; done
export MPLBACKEND=Agg
log=$(mktemp)
nbs=$(ls nbs/*.ipynb | grep -v '/_' )
n_nb=0; for nb in $nbs; do grep -q '"skip_exec: true' "$nb" || n_nb=$((n_nb+1)); done
echo "== nbdev_test ($n_nb notebooks, flags: ${flags:-none})"
nbdev_test --n_workers "${KDD_TEST_WORKERS:-2}" --timing ${flags:+--flags "$flags"} 2>&1 | tee "$log"
nb_rc=${PIPESTATUS[0]}
nb_failed=$(grep -cE '^\s*[^ ]+\.ipynb\s*$' "$log" || true)
[ "$nb_rc" -ne 0 ] && [ "$nb_failed" -eq 0 ] && nb_failed=1
nb_passed=$((n_nb - nb_failed))
echo "== pytest tests -m \"$marks\""
python -m pytest tests -q -m "$marks" -p no:cacheprovider 2>&1 | tee "$log"
py_rc=${PIPESTATUS[0]}
summary=$(tail -n 1 "$log")
py_passed=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
py_skipped=$(echo "$summary" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
py_deselected=$(echo "$summary" | grep -oE '[0-9]+ deselected' | grep -oE '[0-9]+' || echo 0)
py_failed=$(echo "$summary" | grep -oE '[0-9]+ (failed|error|errors)' | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
[ -z "$py_failed" ] && py_failed=0
if [ "$py_rc" -ne 0 ] && [ "$py_rc" -ne 5 ] && [ "$py_failed" -eq 0 ]; then py_failed=1; fi
rm -f "$log"
echo "notebooks: $nb_passed passed, $nb_failed failed; pytest: $py_passed passed, $py_failed failed, $py_skipped skipped, $py_deselected deselected (-m \"$marks\")"
echo "$((nb_passed + py_passed)) passed, $((nb_failed + py_failed)) failed, $py_skipped skipped"
[ "$nb_rc" -eq 0 ] && { [ "$py_rc" -eq 0 ] || [ "$py_rc" -eq 5 ]; }
