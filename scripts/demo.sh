#!/usr/bin/env bash
# The main job, end to end: set-up, release build, then a federated campaign on real store data
# (scripts/demo-campaign.sh): the 40 largest customers of the Online Retail export become stores,
# one aggregator and one agent per store talk CoAP over DTLS (PSK) on 127.0.0.1, central
# differential privacy with the epsilon cap per store, one line per round, then the comparison
# with the baselines. Options are passed to demo-campaign.sh (see scripts/demo-campaign.sh --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec scripts/demo-campaign.sh "$@"
