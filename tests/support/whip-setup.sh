#!/usr/bin/env bash
# The WHIP/WHEP tests' server (tests/support/whip_server.py) runs on PyPI's aiortc and aiohttp,
# in a venv of the tests' own ($ROOMBOX_WHIP_VENV, default ~/.cache/roombox-whip-venv), pinned,
# made here so the tests never download. Idempotent: a second run only checks the versions.
set -euo pipefail
venv="${ROOMBOX_WHIP_VENV:-$HOME/.cache/roombox-whip-venv}"
pins=(aiortc==1.16.0 aiohttp==3.14.5 numpy==2.4.6)
want="$(printf '%s\n' "${pins[@]}" | sort)"
have="$("$venv/bin/pip" freeze 2>/dev/null | grep -Ei '^(aiortc|aiohttp|numpy)==' | sort || true)"
if [[ "${have,,}" != "${want,,}" ]]; then
  echo "whip-setup: installing ${pins[*]} into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "${pins[@]}"
fi
"$venv/bin/python3" -c 'import aiortc, aiohttp, numpy' ||
  { echo "whip-setup: the venv at $venv cannot import aiortc" >&2; exit 1; }
