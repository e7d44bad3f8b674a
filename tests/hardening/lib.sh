# Shared helpers of the hardening tests (sourced). The caller sets: agg peer src port work, and
# defines nothing else; fail() prints the aggregator log tail.
#   write_agg_ini FILE DB PORT [EXTRA_ROUND_LINES]   a small-model PSK+certificate aggregator config
#   start_agg INI PORT [ARGS]                         starts serve in the background (sets $srv)
#   psk ID                                            net_peer credentials of store ID
#   status PORT                                       "round=.. state=.. participants=.." of /v1/status
#   field NAME                                        value of NAME=VALUE on stdin
srv=
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -15 "$f" >&2; }; done
  exit 1
}

# A small model (2,064 parameters) so that every upload is a few blocks: the tests are about the
# transport and the service, not bandwidth.
write_agg_ini() {
  cat >"$1" <<INI
[storage]
db = $2
[model]
arch = test-v1
tensor = ${TENSOR_W:-w:64x32}
tensor = b:16
init_seed = 7
[round]
min_participants = 2
target_participants = ${TARGET:-3}
max_participants = 10
duration_s = 600
max_upload_bytes = 100000
upload_dtype = i8
${4:-}
[privacy]
mode = central
clip_norm = 1.0
noise_multiplier = 0
[log]
level = info
[server]
listen = 127.0.0.1:$3
idle_timeout_s = 30
${SERVER_EXTRA:-}
[dtls]
psk_keys = $work/keys/psk.keys
ca = $work/keys/ca.crt
cert = $work/keys/server.crt
key = $work/keys/server.key
INI
}

psk() { echo --psk-id "$1" --psk-key "$work/keys/stores/$1.psk"; }
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }
status() { "$peer" get "$1" v1/status $(psk store-001) 2>/dev/null | sed -n 's/^status //p'; }

start_agg() { # INI PORT [ARGS...]
  local ini=$1 p=$2
  shift 2
  "$agg" serve --config "$ini" "$@" >>"$work/${AGG_LOG:-agg.log}" 2>&1 &
  srv=$!
  for _ in $(seq 150); do
    if "$peer" get "$p" v1/status $(psk store-001) >/dev/null 2>&1; then return 0; fi
    kill -0 "$srv" 2>/dev/null || fail "aggregator exited"
    sleep 0.1
  done
  fail "aggregator did not start on $p"
}

stop_agg() {
  if [ -n "$srv" ]; then
    kill -CONT "$srv" 2>/dev/null || true
    kill -TERM "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
    srv=
  fi
}
