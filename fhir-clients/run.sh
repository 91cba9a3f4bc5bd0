#!/usr/bin/env bash
# Unmodified FHIR client libraries drive a demo gatekeeper (see clients.test.mjs).
#
# Installs what they need into this folder, nothing globally: the npm packages of
# package-lock.json into node_modules (fhir-kit-client, SMART's fhirclient, playwright-core,
# viem; optional dependencies left out: fhirclient's React Native crypto is never used
# in a browser or Node), and SMART's Python client, pinned in requirements.txt, into the
# venv .venv (pip from PyPI). Then runs the tests against target/debug/medrec (build it
# first: `cargo build --locked --bin medrec`, or set MEDREC_BIN) with Debian's Chromium
# (/usr/bin/chromium, or set CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || {
  echo "error: $PYTHON is not installed; install Python 3.9 or newer with its venv module" >&2
  exit 1
}

npm ci --omit=optional --no-audit --no-fund --loglevel=error

# A venv made by another Python (or a broken one) is made anew.
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
  rm -rf .venv
  "$PYTHON" -m venv .venv || {
    echo "error: '$PYTHON -m venv' failed; on Debian install python3-venv" >&2
    exit 1
  }
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

node --test --test-reporter=spec ./*.test.mjs
