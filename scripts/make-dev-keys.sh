#!/usr/bin/env bash
# Creates development credentials for storefl (never for production):
#   DIR/ca.crt, ca.key                 a development CA (ECDSA P-256)
#   DIR/server.crt, server.key         the aggregator's certificate (CN=storefl-aggregator, SAN 127.0.0.1)
#   DIR/stores/ID.crt, ID.key          one certificate per store, subject CN = store id
#   DIR/stores/ID.psk                  that store's pre-shared key, hex (mode 0600)
#   DIR/psk.keys                       the aggregator's PSK table "ID HEXKEY" per line (mode 0600)
# Usage: scripts/make-dev-keys.sh DIR [STORE_ID...]   (default ids: store-001 .. store-003)
#        scripts/make-dev-keys.sh DIR --count N       (ids store-001 .. store-N, zero-padded to 3)
#        STOREFL_PSK_ONLY=1 scripts/make-dev-keys.sh ...  no store certificates (thousands of stores:
#                                                   scripts/scale-campaign.sh)
set -euo pipefail
if [ $# -lt 1 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -lt 1 ] && exit 2 || exit 0
fi
dir=$1
shift
ids=()
if [ "${1:-}" = "--count" ]; then
  n=${2:?--count needs a number}
  for i in $(seq 1 "$n"); do ids+=("$(printf 'store-%03d' "$i")"); done
elif [ $# -gt 0 ]; then
  ids=("$@")
else
  ids=(store-001 store-002 store-003)
fi
for id in "${ids[@]}"; do
  # Same rule as the wire protocol: [A-Za-z0-9._-]{1,64}
  if ! [[ "$id" =~ ^[A-Za-z0-9._-]{1,64}$ ]]; then
    echo "make-dev-keys: invalid store id '$id' (allowed: [A-Za-z0-9._-]{1,64})" >&2
    exit 2
  fi
done

umask 077
mkdir -p "$dir/stores"
days=825
ossl() { openssl "$@" 2>/dev/null; }

if [ ! -f "$dir/ca.key" ]; then
  ossl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
  ossl req -new -x509 -key "$dir/ca.key" -sha256 -days $days -subj "/O=storefl-dev/CN=storefl development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.crt"
fi

# Issues DIR/NAME.crt for the key DIR/NAME.key with subject CN=$3 and extensions $4.
issue() {
  local base=$1 cn=$2 ext=$3
  ossl ecparam -name prime256v1 -genkey -noout -out "$base.key"
  ossl req -new -key "$base.key" -sha256 -subj "/O=storefl-dev/CN=$cn" -out "$base.csr"
  printf '%b' "$ext" >"$base.ext"
  ossl x509 -req -in "$base.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -sha256 -days $days \
    -extfile "$base.ext" -out "$base.crt"
  rm -f "$base.csr" "$base.ext"
}

if [ ! -f "$dir/server.crt" ]; then
  issue "$dir/server" storefl-aggregator \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
fi

touch "$dir/psk.keys"
chmod 600 "$dir/psk.keys"
for id in "${ids[@]}"; do
  base="$dir/stores/$id"
  # No subjectAltName: libcoap reports the SAN in place of the CN when there is one.
  [ -n "${STOREFL_PSK_ONLY:-}" ] || [ -f "$base.crt" ] || issue "$base" "$id" "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
  if [ ! -f "$base.psk" ]; then
    openssl rand -hex 32 >"$base.psk"
    chmod 600 "$base.psk"
  fi
  if ! grep -q "^$id " "$dir/psk.keys"; then
    printf '%s %s\n' "$id" "$(cat "$base.psk")" >>"$dir/psk.keys"
  fi
done
rm -f "$dir/ca.srl"
echo "make-dev-keys: ${#ids[@]} store(s) in $dir (CA, server certificate, store certificates, psk.keys)"
