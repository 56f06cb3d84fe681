#!/usr/bin/env bash
# The Debian package, end to end, on this machine (a step of scripts/test.sh):
#   1. build it (scripts/package.sh) and check it with dpkg-deb -I/-c and lintian;
#   2. apt-get install ./roombox_*.deb, which must need nothing setup.sh did not install;
#   3. `roombox check` passes with the installed config, as the roombox user;
#   4. `systemd-analyze verify` passes on the installed unit;
#   5. edit the config, install a higher revision: the edit is kept;
#   6. purge: what Debian policy says goes, goes; recordings stay.
# Then it leaves the machine as it was: the user and groups that sysusers created and the kept
# recordings are removed too. Needs root and `scripts/setup.sh --packaging`.
#
#   scripts/test-package.sh [--profile dev|release]   # dev (default) reuses the test build
# Last line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
profile=dev
[[ "${1:-}" != --profile ]] || profile="$2"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/roombox-target}"
export DEBIAN_FRONTEND=noninteractive

passed=0
failed=0
ok() { echo "ok      $*"; passed=$((passed + 1)); }
bad() { echo "FAILED  $*"; failed=$((failed + 1)); }
check() { # check "what" command...
  local what="$1"; shift
  if "$@" >"$tmp/out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/        /' "$tmp/out" | tail -20; fi
}
finish() {
  echo "$passed passed, $failed failed"
  ((failed == 0))
  exit
}
tmp="$(mktemp -d)"

if dpkg-query -W -f='${db:Status-Abbrev}' roombox 2>/dev/null | grep -q '^[ih]'; then
  bad "roombox is already installed here; this test installs and purges it, so it will not run"
  finish
fi
# What sysusers may create, as it was before, so cleanup removes only what the test caused.
groups_before=()
for g in roombox video audio render gpio; do getent group "$g" >/dev/null && groups_before+=("$g"); done
user_before=0
getent passwd roombox >/dev/null && user_before=1
state_before=0
[[ -e /var/lib/roombox ]] && state_before=1
cleanup() {
  if dpkg-query -W roombox >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 purge -y -qq roombox >/dev/null 2>&1 || true
  fi
  ((state_before)) || rm -rf /var/lib/roombox
  if ((!user_before)) && getent passwd roombox >/dev/null; then userdel roombox 2>/dev/null || true; fi
  for g in roombox gpio render video audio; do
    [[ " ${groups_before[*]} " == *" $g "* ]] || ! getent group "$g" >/dev/null || groupdel "$g" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

# 1. Build and inspect.
echo "== build the amd64 package ($profile profile)"
if ! deb="$(bash scripts/package.sh amd64 --profile "$profile" 2>"$tmp/build.log")"; then
  tail -30 "$tmp/build.log"
  bad "scripts/package.sh amd64 builds a .deb"
  finish
fi
ok "scripts/package.sh amd64 builds $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
bash scripts/check-deb.sh "$deb" amd64 >"$tmp/deb.log" 2>&1
# Its own tally line is folded into this script's, so test.sh does not count it twice.
grep -Ev '^[0-9]+ passed, [0-9]+ failed$' "$tmp/deb.log"
read -r p f < <(awk '/^[0-9]+ passed, [0-9]+ failed$/ { print $1, $3 }' "$tmp/deb.log")
passed=$((passed + ${p:-0}))
failed=$((failed + ${f:-1}))

# 2. Install with apt, as a person would.
echo "== apt-get install ./$(basename "$deb")"
cp "$deb" "$tmp/"
local_deb="$tmp/$(basename "$deb")"
chmod 644 "$local_deb"
chmod 755 "$tmp"
# A simulation that fails, or that plans no roombox at all, says nothing about the Depends:
# each is a failure of its own, never "all installed".
if ! apt-get -s install "$local_deb" >"$tmp/sim" 2>&1; then
  bad "apt-get -s install refused the package: $(tail -n 3 "$tmp/sim" | xargs)"
elif ! grep -q '^Inst roombox ' "$tmp/sim"; then
  bad "apt-get -s install planned no roombox: $(tail -n 3 "$tmp/sim" | xargs)"
else
  extra="$(awk '/^Inst / && $2 != "roombox" { print $2 }' "$tmp/sim" | xargs)"
  if [[ -z "$extra" ]]; then
    ok "the package's Depends are all installed by scripts/setup.sh (apt adds nothing else)"
  else
    bad "apt would also install: $extra (setup.sh and the package disagree)"
  fi
fi
check "apt-get install ./roombox_*.deb" \
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$local_deb"
check "/usr/bin/roombox --version" /usr/bin/roombox --version
check "sysusers made the roombox user, in the video and audio groups" \
  bash -c 'id -nG roombox | tr " " "\n" | grep -qx video && id -nG roombox | tr " " "\n" | grep -qx audio'
check "the tmpfiles entry made /etc/roombox/config.d root:roombox 0770" \
  test "$(stat -c '%U:%G %a' /etc/roombox/config.d 2>/dev/null)" = "root:roombox 770"
check "roombox.toml is a conffile" bash -c 'dpkg-query -W -f="\${Conffiles}" roombox | grep -q " /etc/roombox/roombox.toml "'
check "the unit is enabled" test -L /etc/systemd/system/multi-user.target.wants/roombox.service
check "the update installer's path unit is enabled" test -L /etc/systemd/system/paths.target.wants/roombox-update.path
check "the update installer resumes at boot" test -L /etc/systemd/system/multi-user.target.wants/roombox-update.service

# 3. `roombox check` with the installed config, as the service would run it: as the roombox
# user, with the state directory systemd's StateDirectory= would make.
install -d -o roombox -g roombox -m 0750 /var/lib/roombox
check "roombox check passes with /etc/roombox/roombox.toml, as the roombox user" \
  runuser -u roombox -- env STATE_DIRECTORY=/var/lib/roombox HOME=/var/lib/roombox \
  GST_REGISTRY=/var/lib/roombox/gst-registry.bin \
  /usr/bin/roombox check --config /etc/roombox/roombox.toml

# 4. The installed unit.
check "systemd-analyze verify /usr/lib/systemd/system/roombox.service" \
  bash -c 'out="$(systemd-analyze verify /usr/lib/systemd/system/roombox.service 2>&1)"; rc=$?; echo "$out"; [ $rc -eq 0 ] && ! echo "$out" | grep -q roombox.service'

# 5. A local edit survives an upgrade.
echo "== edit the config, then upgrade to a higher revision"
sed -i 's/^name = "roombox"$/name = "Room 4.12 (edited)"/' /etc/roombox/roombox.toml
if ! deb2="$(bash scripts/package.sh amd64 --profile "$profile" --deb-revision 2 2>"$tmp/build2.log")"; then
  tail -20 "$tmp/build2.log"
  bad "scripts/package.sh --deb-revision 2 builds a .deb"
else
  cp "$deb2" "$tmp/"
  chmod 644 "$tmp/$(basename "$deb2")"
  check "apt-get install ./roombox_0.1.0-2_amd64.deb (an upgrade)" \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$tmp/$(basename "$deb2")"
  check "the installed version is now 0.1.0-2" \
    test "$(dpkg-query -W -f='${Version}' roombox)" = 0.1.0-2
  check "the local edit of /etc/roombox/roombox.toml was kept" \
    grep -qx 'name = "Room 4.12 (edited)"' /etc/roombox/roombox.toml
  check "the edited config still passes roombox check" \
    runuser -u roombox -- env STATE_DIRECTORY=/var/lib/roombox HOME=/var/lib/roombox \
    /usr/bin/roombox check --config /etc/roombox/roombox.toml
fi

# 6. Purge: configuration, logs and state go; recordings (the room's data) stay.
echo "== purge"
install -d -o roombox -g roombox /var/lib/roombox/recordings /var/log/roombox
echo "a recording" >/var/lib/roombox/recordings/seg-00001.mp4
echo "[media.video]" >/etc/roombox/config.d/90-fleet.toml
check "apt-get purge roombox" apt-get -o DPkg::Lock::Timeout=600 purge -y -qq roombox
check "the package is gone from dpkg" bash -c '! dpkg-query -W roombox >/dev/null 2>&1'
for gone in /usr/bin/roombox /usr/lib/systemd/system/roombox.service /etc/roombox \
  /etc/systemd/system/multi-user.target.wants/roombox.service /var/log/roombox \
  /etc/systemd/system/paths.target.wants/roombox-update.path \
  /var/lib/roombox/gst-registry.bin; do
  check "purge removed $gone" test ! -e "$gone"
done
check "purge kept the recordings in /var/lib/roombox/recordings" \
  test -f /var/lib/roombox/recordings/seg-00001.mp4

finish
