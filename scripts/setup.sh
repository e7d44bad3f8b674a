#!/usr/bin/env bash
# storefl set-up: installs what the build and the tests need on Debian 12 (run as root).
# Idempotent: a second run checks and skips what is already in place.
#
#   scripts/setup.sh            Debian packages + libcoap 4.3.5 built with Mbed TLS
#
# Environment:
#   STOREFL_COAP_PREFIX   where libcoap is installed (default /opt/storefl/libcoap-4.3.5-mbedtls)
#   STOREFL_CACHE         download/build scratch (default /var/cache/storefl)
set -euo pipefail

COAP_PREFIX=${STOREFL_COAP_PREFIX:-/opt/storefl/libcoap-4.3.5-mbedtls}
CACHE=${STOREFL_CACHE:-/var/cache/storefl}
COAP_SRC_PKG=libcoap3
COAP_SRC_VERSION=4.3.5-4
COAP_TARBALL=libcoap3_4.3.5.orig.tar.bz2
COAP_SHA256=a332b682ceacef4c3130b2fb17851db02020c3f64b8a562c1ffd8d9b8a9320d4

PACKAGES=(build-essential cmake pkg-config clang libclang-rt-14-dev
  libmbedtls-dev libopenblas-dev libcbor-dev libsqlite3-dev sqlite3 libinih-dev libcmocka-dev
  zlib1g-dev bzip2 ca-certificates
  python3 python3-cbor2 python3-mpmath libcoap3-bin tshark openssl)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "Debian packages: all ${#PACKAGES[@]} present"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}); run as root to install them"
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Prints the first Debian archive URI the machine is configured with (deb822 or one-line format),
# so that the source fetch goes where the machine's own apt goes and names no host itself.
debian_archive_uri() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f" | grep -v -- '-security' | grep '/debian/\?$' | head -n1)
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file|mirror):/) { print $i; break } }' "$f" |
      grep -v -- '-security' | grep '/debian/\?$' | head -n1)
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  return 1
}

fetch_coap_source() {
  local dir=$1 uri state suite
  uri=$(debian_archive_uri) || die "no Debian archive found in the apt configuration"
  state="$dir/apt-state"
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
  local aptopts=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o APT::Sandbox::User=root -qq)
  for suite in sid forky; do
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$state/sources.list"
    apt-get "${aptopts[@]}" update >/dev/null 2>&1 || continue
    if (cd "$dir" && apt-get "${aptopts[@]}" source --download-only --tar-only "$COAP_SRC_PKG=$COAP_SRC_VERSION" >/dev/null 2>&1); then
      log "fetched $COAP_TARBALL from the $suite source index"
      return 0
    fi
  done
  # Fallback: the newest libcoap3 source the configured suites offer; apt verifies it against the
  # signed index, and we say which version that is.
  for suite in sid forky; do
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >"$state/sources.list"
    apt-get "${aptopts[@]}" update >/dev/null 2>&1 || continue
    if (cd "$dir" && apt-get "${aptopts[@]}" source --download-only --tar-only "$COAP_SRC_PKG" >/dev/null 2>&1); then
      COAP_TARBALL=$(cd "$dir" && ls -1 libcoap3_*.orig.tar.* | sort -V | tail -n1)
      COAP_SHA256=""
      log "WARNING: pinned libcoap3 $COAP_SRC_VERSION is gone; using $COAP_TARBALL from $suite (verified by apt against the signed index)"
      return 0
    fi
  done
  die "could not fetch the libcoap3 source package"
}

build_coap() {
  local stamp="$COAP_PREFIX/.storefl-build"
  if [ -f "$stamp" ] && [ -f "$COAP_PREFIX/lib/libcoap-3.a" ]; then
    log "libcoap: present in $COAP_PREFIX ($(cat "$stamp"))"
    return
  fi
  local work="$CACHE/libcoap"
  rm -rf "$work" && mkdir -p "$work"
  fetch_coap_source "$work"
  if [ -n "$COAP_SHA256" ]; then
    echo "$COAP_SHA256  $work/$COAP_TARBALL" | sha256sum -c --quiet - || die "checksum mismatch for $COAP_TARBALL"
  fi
  tar -C "$work" -xf "$work/$COAP_TARBALL"
  local src
  src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'libcoap*' | head -n1)
  [ -n "$src" ] || die "unpacked libcoap source not found"
  log "building libcoap ($(basename "$src")) with the Mbed TLS DTLS backend"
  cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DENABLE_DTLS=ON -DDTLS_BACKEND=mbedtls -DENABLE_Q_BLOCK=ON \
    -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DENABLE_EXAMPLES=OFF -DENABLE_DOCS=OFF -DENABLE_TESTS=OFF \
    -DCMAKE_INSTALL_PREFIX="$COAP_PREFIX" >"$work/configure.log" 2>&1 || die "libcoap configure failed: see $work/configure.log"
  grep -q 'DTLS_BACKEND: mbedtls' "$work/configure.log" || die "libcoap did not pick the Mbed TLS backend: see $work/configure.log"
  cmake --build "$work/build" -j"$(nproc)" >"$work/build.log" 2>&1 || die "libcoap build failed: see $work/build.log"
  cmake --install "$work/build" >/dev/null || die "libcoap install failed"
  # Keep the example sources: they are the reference for the libcoap API we use.
  mkdir -p "$COAP_PREFIX/share/storefl-examples" && cp "$src"/examples/*.c "$COAP_PREFIX/share/storefl-examples/" 2>/dev/null || true
  echo "$(basename "$work/$COAP_TARBALL") sha256=${COAP_SHA256:-from-signed-index} dtls=mbedtls q-block=on" >"$stamp"
  log "libcoap installed in $COAP_PREFIX"
}

install_packages
build_coap
