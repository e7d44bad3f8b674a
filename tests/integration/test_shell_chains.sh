#!/usr/bin/env bash
# A here-document's body starts on the line after its operator, so in
#     python3 - <<'PY' ||
#       fail "checks"
# the "fail" line becomes the first line of the script (an IndentationError) and the "||" chains
# onto whatever follows the terminator: the check can never fail the test. This happened once in
# tests/demo/test_demo.sh; refuse the pattern in every shell file of the repository.
set -euo pipefail
repo=${1:?usage: test_shell_chains.sh REPO}
bad=$(cd "$repo" && git ls-files -- '*.sh' 2>/dev/null | xargs -r grep -nE "<<-?[[:space:]]*['\"]?[A-Za-z_]+['\"]?[[:space:]]*(\|\||&&|\|)[[:space:]]*$" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*#' || true)
if [ -n "$bad" ]; then
  echo "FAIL: a here-document operator ends its line with a chain (||, && or |); the next line would be"
  echo "read as the document's first line, not as the chained command:"
  echo "$bad"
  exit 1
fi
echo "PASS: no here-document operator ends its line with a chain"
