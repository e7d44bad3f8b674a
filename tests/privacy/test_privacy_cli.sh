#!/usr/bin/env bash
# storefl-aggregator privacy epsilon|sigma: published figure, JSON round trip, errors for bad input.
set -u
agg=$1
fail() { echo "FAIL: $*" >&2; exit 1; }

# TensorFlow Privacy's MNIST tutorial table (tutorials/README.md): noise 1.12, 60 epochs of
# 60000 // 256 = 234 steps at q = 256/60000, delta 1e-5, classic conversion -> eps 2.92.
out=$("$agg" privacy epsilon --q 0.0042666666666666667 --sigma 1.12 --rounds 14040 --delta 1e-5 --classic --json) ||
  fail "epsilon exited $?"
python3 - "$out" <<'PY' || fail "published value: $out"
import json, sys
o = json.loads(sys.argv[1])
assert o["conversion"] == "classic" and o["rounds"] == 14040, o
assert abs(o["epsilon"] - 2.92) <= 0.005, o
PY

# sigma inverts epsilon: the printed sigma reaches the target, 1e-6 less does not.
out=$("$agg" privacy sigma --q 0.02 --epsilon 1.5 --rounds 500 --delta 1e-6 --json) || fail "sigma exited $?"
s=$(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["epsilon"] <= 1.5; print(repr(o["sigma"]))' "$out") ||
  fail "sigma output: $out"
e=$("$agg" privacy epsilon --q 0.02 --sigma "$s" --rounds 500 --delta 1e-6 --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["epsilon"])') || fail "epsilon at calibrated sigma"
python3 -c "import sys; assert float('$e') <= 1.5" || fail "eps $e at sigma $s exceeds 1.5"
s_lo=$(python3 -c "print(repr($s * (1 - 1e-6)))")
e=$("$agg" privacy epsilon --q 0.02 --sigma "$s_lo" --rounds 500 --delta 1e-6 --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["epsilon"])')
python3 -c "assert float('$e') > 1.5" || fail "sigma $s is not the smallest (eps $e at $s_lo)"

# Text output names the figure.
"$agg" privacy epsilon --q 1 --sigma 5 --rounds 10 --delta 1e-5 | grep -q '^epsilon = ' || fail "text output"
"$agg" privacy --help | grep -q 'EXIT STATUS' || fail "--help"

# Bad input: usage errors (exit 2) with a message naming the option.
expect_usage() {
  local what=$1
  shift
  err=$("$agg" privacy "$@" 2>&1 >/dev/null)
  rc=$?
  [ "$rc" -eq 2 ] || fail "$* exited $rc, expected 2"
  echo "$err" | grep -q -- "$what" || fail "$*: message '$err' does not mention $what"
}
expect_usage "--q" epsilon --q 0 --sigma 1 --rounds 1 --delta 1e-5
expect_usage "--q" epsilon --q 1.5 --sigma 1 --rounds 1 --delta 1e-5
expect_usage "--sigma" epsilon --q 0.1 --sigma 0 --rounds 1 --delta 1e-5
expect_usage "--sigma" epsilon --q 0.1 --sigma -1 --rounds 1 --delta 1e-5
expect_usage "--delta" epsilon --q 0.1 --sigma 1 --rounds 1 --delta 1
expect_usage "--delta" epsilon --q 0.1 --sigma 1 --rounds 1 --delta 0
expect_usage "--rounds" epsilon --q 0.1 --sigma 1 --rounds 2.5 --delta 1e-5
expect_usage "--rounds" epsilon --q 0.1 --sigma 1 --delta 1e-5
expect_usage "--epsilon" sigma --q 0.1 --epsilon -3 --rounds 1 --delta 1e-5
expect_usage "--q" epsilon --q abc --sigma 1 --rounds 1 --delta 1e-5
expect_usage "--bogus" epsilon --bogus 1
expect_usage "frobnicate" frobnicate
echo "privacy cli: ok"
