#!/usr/bin/env bash
# Debian 12's simple-whip-server (Meetecho's WHIP front end to Janus) for tests/whip_janus.rs.
# `apt-get install simple-whip-server` fails beside this machine's Node 20 (its node-* packages
# pull libnode108), so the package is downloaded from Debian's archive and unpacked, and what it
# requires comes from npm, pinned by package-lock.json here, into
# $ROOMBOX_SWHIP_DIR (default ~/.cache/roombox-simple-whip-server). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${ROOMBOX_SWHIP_DIR:-$HOME/.cache/roombox-simple-whip-server}"
version=0.0~git20230201-1
src="$dir/root/usr/share/simple-whip-server/src"
if [[ "$(cat "$dir/.version" 2>/dev/null)" != "$version" || ! -f "$src/server.js" ]]; then
  echo "simple-whip-server: unpacking Debian's $version into $dir"
  rm -rf "$dir/root" "$dir/deb"
  mkdir -p "$dir/deb"
  (cd "$dir/deb" && apt-get download "simple-whip-server=$version")
  dpkg-deb -x "$dir"/deb/simple-whip-server_*.deb "$dir/root"
  echo "$version" >"$dir/.version"
fi
if ! cmp -s "$here/package-lock.json" "$dir/package-lock.json" || [[ ! -d "$dir/node_modules/express" ]]; then
  echo "simple-whip-server: npm ci into $dir"
  cp "$here/package.json" "$here/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts)
fi
