#!/usr/bin/env bash
# The main job: set-up, build, then run storefl. (The federated campaign on real store data
# arrives with the transport, privacy and learning work; until then this is a smoke run of both
# executables on the real libraries.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
echo "== storefl-agent --version"
build/agent/storefl-agent --version
echo "== storefl-aggregator --version"
build/aggregator/storefl-aggregator --version
