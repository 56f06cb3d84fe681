#!/usr/bin/env bash
# Installs what the browser tests (tests/hls_browser.rs, tests/room_browser.rs) need: Debian's
# Chromium, and playwright-core plus hls.js from npm, pinned by package-lock.json. Playwright's
# own browser download is never used (this machine's network refuses it); it drives
# /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x /usr/bin/chromium ]]; then
  apt-get install -y -o DPkg::Lock::Timeout=600 chromium
fi
# npm ci is exact and repeatable (a few seconds: two packages, no install scripts).
npm ci --no-audit --no-fund
