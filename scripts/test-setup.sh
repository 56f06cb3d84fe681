#!/usr/bin/env bash
# scripts/setup.sh respects the machine (a step of scripts/test.sh): a mosquitto that setup did not
# install, already running, is still running after a setup run that installs a package; a second
# run is fast. The package it installs for the test (`hello`) is purged again if it was not there.
# Last line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0
failed=0
ok() { echo "ok      $*"; passed=$((passed + 1)); }
bad() { echo "FAILED  $*"; failed=$((failed + 1)); }
tmp="$(mktemp -d)"
broker=""
had_hello=0
dpkg-query -W -f='${db:Status-Abbrev}' hello 2>/dev/null | grep -q '^ii' && had_hello=1
cleanup() {
  [[ -z "$broker" ]] || { kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null; }
  ((had_hello)) || apt-get -o DPkg::Lock::Timeout=600 purge -y -qq hello >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# A person's own broker: started by hand, on loopback, not by any package's service.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$tmp/mosquitto.conf"
mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
broker=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

# Makes setup install something, which is when the old setup stopped and pkill'ed every
# mosquitto, nginx and janus on the machine.
if ((had_hello)); then
  echo "note: hello is already installed, so setup installs nothing in this run"
fi
ROOMBOX_SETUP_EXTRA_PKGS=hello bash scripts/setup.sh >"$tmp/setup.log" 2>&1
rc=$?
sed 's/^/        /' "$tmp/setup.log" | grep -v '^        (Reading' | tail -5
if ((rc == 0)); then ok "setup.sh (installing hello) succeeds"; else bad "setup.sh exited $rc"; fi
if ((had_hello)) || dpkg-query -W -f='${db:Status-Abbrev}' hello | grep -q '^ii'; then
  ok "setup.sh installed the extra package"
else
  bad "setup.sh did not install hello"
fi
if kill -0 "$broker" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  ok "the mosquitto that setup did not install is still running and accepting connections"
else
  bad "setup.sh stopped a mosquitto it did not install"
fi
if grep -Eq '^[^#]*\b(pkill|killall)\b' scripts/setup.sh; then
  bad "setup.sh kills processes by name"
else
  ok "setup.sh never kills a process by name"
fi
start=$(date +%s%N)
bash scripts/setup.sh >/dev/null 2>&1
ms=$((($(date +%s%N) - start) / 1000000))
if ((ms < 5000)); then ok "a second setup.sh run takes $ms ms (under 5 s)"; else bad "a second setup.sh run took $ms ms"; fi
echo "$passed passed, $failed failed"
((failed == 0))
