#!/usr/bin/env bash
# storefl-agent campaign plan's options for the privacy-utility curve and the countries campaign,
# on the real export (no network):
#   --by country   the countries with lines before the adaptation window's end, largest first, with
#                  the ids 'storefl-agent partition --by country' gives their stores (spaces -> _),
#                  and partition writes exactly those stores
#   --epsilon-cap inf   sigma 0, epsilon_planned inf
#   --mode local   sigma calibrated at q = 1 (no amplification): the same sigma as --q 1, larger than
#                  central mode's at q = 0.5
# Usage: test_campaign_plan.sh BINARY_DIR
set -euo pipefail
bin=$1
agent=$bin/agent/storefl-agent
data=${STOREFL_DATA_DIR:?}/online-retail/online_retail.csv.gz
work=$(mktemp -d /tmp/storefl-plan-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
val() { sed -n "s/^$1=//p" "$2" | tr -d "'"; }

"$agent" campaign plan --data "$data" --by country --stores 100 --rounds 8 --q 1 --epsilon-cap 8 \
  --ids-out "$work/ids.txt" >"$work/country.env"
n=$(val stores "$work/country.env")
[ "$n" -ge 30 ] && [ "$n" -le 38 ] || fail "countries: $n stores"
[ "$(wc -l <"$work/ids.txt")" = "$n" ] || fail "ids file does not list $n stores"
[ "$(head -1 "$work/ids.txt")" = United_Kingdom ] || fail "largest country: $(head -1 "$work/ids.txt")"
grep -qx EIRE "$work/ids.txt" || fail "EIRE missing"
grep -q ' ' "$work/ids.txt" && fail "an id with a space"
[ "$(val by "$work/country.env")" = country ] || fail "by= not country"
"$agent" partition --data "$data" --by country --min-lines "$(val min_lines "$work/country.env")" \
  --before "$(val adapt_end "$work/country.env")" --out "$work/stores" >"$work/partition.log" 2>&1 ||
  fail "partition: $(tail -1 "$work/partition.log")"
while read -r id; do
  [ -f "$work/stores/$id.db" ] || fail "partition wrote no store for $id"
done <"$work/ids.txt"

"$agent" campaign plan --data "$data" --stores 12 --rounds 8 --q 0.5 --epsilon-cap inf >"$work/inf.env"
[ "$(val sigma "$work/inf.env")" = 0 ] || fail "inf: sigma $(val sigma "$work/inf.env")"
[ "$(val epsilon_planned "$work/inf.env")" = inf ] || fail "inf: epsilon_planned"

"$agent" campaign plan --data "$data" --stores 12 --rounds 8 --q 0.5 --epsilon-cap 4 --mode local >"$work/local.env"
"$agent" campaign plan --data "$data" --stores 12 --rounds 8 --q 1 --epsilon-cap 4 >"$work/q1.env"
"$agent" campaign plan --data "$data" --stores 12 --rounds 8 --q 0.5 --epsilon-cap 4 >"$work/central.env"
sl=$(val sigma "$work/local.env") s1=$(val sigma "$work/q1.env") sc=$(val sigma "$work/central.env")
[ "$sl" = "$s1" ] || fail "local sigma $sl != q=1 sigma $s1"
awk -v a="$sl" -v b="$sc" 'BEGIN { exit !(a > b) }' || fail "local sigma $sl not above central $sc"
[ "$(val q "$work/local.env")" = 0.5 ] || fail "local: q must stay the announced 0.5"
"$agent" campaign plan --data "$data" --stores 12 --rounds 8 --q 0.5 --epsilon-cap 0 >/dev/null 2>&1 &&
  fail "epsilon cap 0 accepted"
"$agent" campaign plan --data "$data" --stores 12 --rounds 8 --q 0.5 --epsilon-cap 4 --by store >/dev/null 2>&1 &&
  fail "--by store accepted"
echo "ok: $n countries; sigma local $sl = q1 $s1 > central $sc; inf -> sigma 0"
