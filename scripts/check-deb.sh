#!/usr/bin/env bash
# Inspects a built roombox .deb without installing it: its control fields (dpkg-deb -I), its
# files (dpkg-deb -c) and lintian. Used for both architectures by scripts/test-package.sh and
# scripts/test-arm64.sh.
#
#   scripts/check-deb.sh roombox_0.1.0-1_amd64.deb amd64
# Last line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
deb="$1"
arch="$2"
passed=0
failed=0
ok() { echo "ok      $*"; passed=$((passed + 1)); }
bad() { echo "FAILED  $*"; failed=$((failed + 1)); }
expect() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

field() { dpkg-deb -f "$deb" "$1"; }
files="$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')"
info="$(dpkg-deb -I "$deb")"
has() { grep -qx "$1" <<<"$files"; }

expect "Package is roombox" '[[ "$(field Package)" == roombox ]]'
expect "Architecture is $arch" '[[ "$(field Architecture)" == "$arch" ]]'
# The same list setup.sh installs from (Cargo.toml [package.metadata.deb]).
source <(sed -n '/^runtime_pkgs()/,/^}/p' scripts/setup.sh)
for p in $(runtime_pkgs depends); do
  expect "Depends names $p" '[[ ", $(field Depends)," == *", $p"[\ ,\(]* ]]'
done
for p in $(runtime_pkgs recommends); do
  expect "Recommends names $p" '[[ ", $(field Recommends)," == *", $p"[\ ,\(]* ]]'
done
expect "Depends has the shared libraries (dpkg-shlibdeps): libgstreamer1.0-0" \
  '[[ "$(field Depends)" == *libgstreamer1.0-0* ]]'
expect "the control archive has postinst, prerm and postrm" \
  'grep -q " postinst " <<<"$info" && grep -q " prerm " <<<"$info" && grep -q " postrm " <<<"$info"'
# lintian does not parse them, and a stray marker in a comment once broke postinst.
ctl="$(mktemp -d)"
dpkg-deb -e "$deb" "$ctl"
for script in postinst prerm postrm; do
  expect "$script is valid sh (sh -n)" 'sh -n "$ctl/$script"'
done
rm -rf "$ctl"
expect "/etc/roombox/roombox.toml is a conffile" \
  '[[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" == *"/etc/roombox/roombox.toml"* ]]'
for f in /usr/bin/roombox /etc/roombox/roombox.toml /usr/lib/systemd/system/roombox.service \
  /lib/systemd/system/roombox-update.path /lib/systemd/system/roombox-update.service \
  /usr/lib/sysusers.d/roombox.conf /usr/lib/tmpfiles.d/roombox.conf \
  /usr/share/man/man1/roombox.1.gz /usr/share/doc/roombox/copyright \
  /usr/share/doc/roombox/README.md /usr/share/doc/roombox/examples/raspberry-pi-4.toml; do
  expect "ships $f" 'has "$f"'
done
binary_arch="$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/roombox | file -b -)"
case "$arch" in
  amd64) want="x86-64" ;;
  arm64) want="ARM aarch64" ;;
esac
expect "/usr/bin/roombox is $want, stripped" \
  '[[ "$binary_arch" == *"$want"* && "$binary_arch" == *", stripped"* ]]'
# --fail-on warning: errors and warnings fail; each override in debian/roombox.lintian-overrides
# says why it is there.
if lintian_out="$(lintian --allow-root --fail-on warning "$deb" 2>&1)"; then
  ok "lintian: no errors or warnings"
else
  bad "lintian"
  echo "$lintian_out" | sed 's/^/        /'
fi
echo "$passed passed, $failed failed"
((failed == 0))
