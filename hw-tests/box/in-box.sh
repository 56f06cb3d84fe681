#!/bin/bash
# Runs inside the booted box (hw-tests/box/run.sh): a minimal Debian 12 with systemd as PID 1,
# the rig's virtual camera (vivid), sound card (snd-aloop) and nothing of the host's but the
# files run.sh put in this directory. As root, it does what an installer does on a board, with
# the README's own commands:
#   - installs the package with the README's install line; the unit starts with its sandbox;
#   - types every line of the README's "On a board" command block as written (`roombox status`
#     finds the unit's socket, `console-token` makes a token the running service accepts);
#   - points the box at the real devices with a drop-in and `systemctl reload roombox`;
#   - records from the camera and the microphone while speech plays into the mic, starts its
#     transcription, and reads the worker's priority and CPU time from /proc;
#   - restarts the unit and finds it back;
#   - fails on any sandbox denial in the journal (seccomp's EPERM, a device not allowed).
# Each step prints "box: ok ..." or fails with the journal's tail.
set -euo pipefail
cd "$ROOMBOX_HW_RESULTS"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
STATE=/var/lib/roombox

say() { echo "box: $*"; }
fail() {
  echo "box: FAIL: $*"
  journalctl -b --no-pager -o short-monotonic >journal.txt 2>&1 || true
  echo "----- journal of roombox.service (last 60 lines; the boot's whole journal: journal.txt)"
  journalctl -u roombox --no-pager -o short-monotonic | tail -n 60 || true
  exit 1
}
# A command that fails outside an explicit check still says where, with the journal (not -E:
# inherited into command substitutions, the trap would fire inside until_true's conditions).
trap 'fail "line $LINENO: \"$BASH_COMMAND\" failed"' ERR

# Polls CMD (a shell snippet) every 0.2 s until it succeeds, for up to S seconds of wall time
# (under emulation one `roombox` call can take seconds).
until_true() {
  local end=$((SECONDS + $1))
  shift
  while ((SECONDS < end)); do
    if eval "$*"; then return 0; fi
    sleep 0.2
  done
  return 1
}

state=$(systemctl is-system-running --wait || true)
say "system is $state"
if [ "$state" != running ]; then
  # rbx-command itself runs; anything else failed is worth seeing, but only ours must work
  systemctl --failed --no-legend --plain | grep -v rbx-command || true
fi

# --- the README's install line, as written (the box has no network: every dependency must be
# there already, as on a board that ran apt upgrade; run.sh's image has the package's Depends)
install_line=$(grep -E '^sudo apt install \./roombox_\*\.deb' README.md | sed 's/ *#.*//') ||
  fail "README.md has no 'sudo apt install ./roombox_*.deb' line"
say "\$ $install_line"
eval "$install_line" </dev/null || fail "the README's install line failed"
until_true 40 '[ "$(systemctl is-active roombox)" = active ]' ||
  fail "roombox.service is not active 40 s after install: $(systemctl is-active roombox)"
restarts=$(systemctl show -p NRestarts --value roombox)
[ "$restarts" = 0 ] || fail "roombox.service reached active after $restarts restarts, not at once"
say "ok installed; roombox.service active at its first start (READY reached: Type=notify)"
# The console on the room's network, as the README's console-token line has it
# (http://box:8480/?token=...): bound beyond loopback, every request needs the token.
cat >/etc/roombox/config.d/20-lan.toml <<'EOF'
[http]
bind = "0.0.0.0"
EOF
say "\$ systemctl restart roombox   # after an edit, as the README says"
systemctl restart roombox
until_true 40 '[ "$(systemctl is-active roombox)" = active ]' || fail "not active after restart"
main_pid=$(systemctl show -p MainPID --value roombox)

# --- every line of the README's "On a board" command block, typed as written
mapfile -t lines < <(awk '/^## On a board/ { on = 1 } on && /^## / && !/On a board/ { on = 0 }
  on && /^```sh/ { block++; inb = 1; next } on && /^```/ { inb = 0 }
  on && inb && block == 2 { print }' README.md)
((${#lines[@]} >= 5)) || fail "README.md's board command block has ${#lines[@]} lines"
for line in "${lines[@]}"; do
  cmd=$(sed 's/ *#.*//' <<<"$line")
  [ -n "$cmd" ] || continue
  say "\$ $cmd"
  case $cmd in
  "roombox events")
    # It follows forever: follow while a command changes something, then stop it.
    # It prints nothing until an event, and under emulation it takes seconds to subscribe:
    # toggle the mic until the follower shows the change.
    $cmd >events.out 2>&1 &
    ev=$!
    until_true 90 'roombox cmd disable-mic >/dev/null && roombox cmd enable-mic >/dev/null &&
      grep -q stream-enabled events.out' ||
      { kill $ev; cat events.out; fail "roombox events showed no stream-enabled"; }
    kill $ev
    ;;
  "roombox console-token")
    token=$($cmd) || fail "$cmd"
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
      http://127.0.0.1:8480/api/telemetry)
    [ "$code" = 200 ] || fail "the running box answered $code to the token console-token printed"
    bad=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer x${token}" \
      http://127.0.0.1:8480/api/telemetry)
    [ "$bad" = 401 ] || fail "the running box answered $bad to a wrong token"
    owner=$(stat -c %U "$STATE/console-token")
    [ "$owner" = roombox ] || fail "$STATE/console-token belongs to $owner, not roombox"
    ;;
  "systemctl enable --now roombox")
    eval "$cmd" || fail "$cmd"
    ;;
  *)
    out=$(eval "$cmd" 2>&1) || { echo "$out"; fail "$cmd exited non-zero"; }
    printf '%s\n' "$out" | sed -n '1,25s/^/    /p' # sed reads it all: no SIGPIPE
    ;;
  esac
  say "ok $cmd"
done
[ ! -e roombox-data ] || fail "a board command made ./roombox-data in the admin's directory"

# --- the real devices, as an installer would: a drop-in, then reload.
# The "room" plays into the loopback's other end from now on: silence, and the sentence when
# asked (touch play-now). snd-aloop makes both ends share one format, so the feeder opens first
# and fixes it at S16LE, 48 kHz, stereo; the agent's capture converts from that.
feeder() {
  while :; do
    if [ -e play-now ]; then
      rm -f play-now
      cat speech.raw
      : >played
    else
      cat silence.raw
    fi
  done | aplay -q -D hw:Loopback,0,0 -t raw -f S16_LE -r 48000 -c 2 --buffer-time=2000000 \
    2>>aplay.log
}
feeder &
feeder_pid=$!
trap 'kill $feeder_pid 2>/dev/null || true' EXIT
cat >/etc/roombox/config.d/10-board.toml <<'EOF'
[media.video]
source = "v4l2"
device = "/dev/video0"
width = 320
height = 180
fps = 15
[media.audio]
source = "alsa"
device = "hw:Loopback,1,0"
EOF
say "\$ systemctl reload roombox"
systemctl reload roombox
until_true 90 'roombox status 2>/dev/null | grep -q "media *PLAYING .*320x180"' ||
  { roombox status || true; fail "after reload the box is not PLAYING from /dev/video0"; }
[ "$(systemctl show -p MainPID --value roombox)" = "$main_pid" ] ||
  fail "reload restarted the process"
say "ok reloaded onto /dev/video0 and hw:Loopback,1,0 in the same process"

# --- record while the sentence plays into the microphone
install -o roombox -g roombox -m 0750 -d "$STATE/models"
install -o roombox -g roombox -m 0640 ggml-tiny.en-q8_0.bin "$STATE/models/"
: >rec-start
roombox cmd start-recording >/dev/null || fail "start-recording"
sleep 1
rm -f played
: >play-now
until_true 30 '[ -e played ]' || fail "the sentence did not play"
sleep 1
roombox cmd stop-recording >/dev/null || fail "stop-recording"
rec=""
until_true 30 'rec=$(find "$STATE/recordings" -type f -name "roombox-*" -newer rec-start | sort | tail -n 1)
  [ -n "$rec" ] && gst-discoverer-1.0 "$rec" >discover.out 2>&1' ||
  { cat discover.out 2>/dev/null || true; ls -l "$STATE/recordings" || true; fail "no recording that decodes"; }
grep -q 'video' discover.out || fail "$rec has no video"
grep -q 'audio' discover.out || fail "$rec has no audio"
say "ok recorded $(basename "$rec") ($(stat -c %s "$rec") bytes, video and audio)"

# --- transcribe it, and read the worker's priority while it works. The worker runs at
# SCHED_IDLE: it gets the CPU only when media leaves some. Under emulation the camera's encode
# takes every cycle, so the camera goes off for the transcription (a reload, as an installer
# would; on a board there is CPU to spare).
cat >/etc/roombox/config.d/30-no-camera.toml <<'EOF'
[media.video]
source = "none"
EOF
systemctl reload roombox
until_true 60 'roombox status 2>/dev/null | grep -q "media *PLAYING"' || fail "not PLAYING without the camera"
roombox cmd transcribe-recording "{\"file\":\"$(basename "$rec")\"}" >/dev/null ||
  fail "transcribe-recording"
prio=""
for ((i = 0; i < 300; i++)); do
  for t in /proc/"$main_pid"/task/*; do
    # stat fields after the ")" of the name: state is 3, nice 19, policy 41
    read -r rest <"$t/stat" 2>/dev/null || continue
    rest=${rest##*) }
    read -ra f <<<"$rest"
    if [ "${f[38]:-}" = 5 ]; then # SCHED_IDLE
      prio="policy SCHED_IDLE nice ${f[16]} ($(cat "$t/comm"))"
      break 2
    fi
  done
  sleep 0.1
done
[ -n "$prio" ] || fail "no thread of the agent ran at SCHED_IDLE while transcribing"
case $prio in *"nice 19 "*) ;; *) fail "the worker runs at $prio, not nice 19" ;; esac
say "ok transcription worker: $prio"
# The worker must be doing the work at that priority: its thread's CPU time (stat field 14)
# grows. The transcript itself is not waited for here: under QEMU's emulation whisper.cpp's
# AVX2 kernels run so slowly that 8 s of speech was not done after 240 s; its words are
# checked on the host (tests/transcription.rs, tests/transcribe.rs).
cpu() { local r; read -r r <"$worker/stat"; r=${r##*) }; read -ra f <<<"$r"; echo "${f[11]}"; }
worker=$(for t in /proc/"$main_pid"/task/*; do
  read -r r <"$t/stat" || continue
  r=${r##*) }
  read -ra f <<<"$r"
  [ "${f[38]}" = 5 ] && echo "$t" && break
done) || true
[ -n "$worker" ] || fail "the SCHED_IDLE worker thread is gone"
before=$(cpu)
sleep 10
after=$(cpu)
((after > before)) || fail "the transcription worker did no work in 10 s (${before} -> ${after} ticks)"
if journalctl -b --no-pager -o cat _SYSTEMD_UNIT=roombox.service |
  grep -q '"transcription-state-changed".*"FAILED"\|"code":"transcription'; then
  fail "transcription failed under the unit"
fi
say "ok the worker transcribes at that priority ($((after - before)) ticks of CPU in 10 s)"

# --- restart: the unit brings it back, the board commands reach it
say "\$ systemctl restart roombox"
systemctl restart roombox
until_true 40 '[ "$(systemctl is-active roombox)" = active ]' || fail "not active after restart"
roombox status >/dev/null || fail "roombox status after restart"
say "ok restarted"

# --- signed updates (README, "Updates"): to the next revision, committed once the new agent
# proves healthy; then a broken package (its agent exits at once) that the installer rolls back.
# The packages are served over HTTP on loopback by a few lines of Perl (perl-base is in minbase).
perl -MIO::Socket::INET -e '
  my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 8099, Listen => 5,
    ReuseAddr => 1) or die "listen: $!";
  while (my $c = $s->accept) {
    my ($path) = (scalar <$c>) =~ m{^GET /([\w.-]+)};
    while (my $l = <$c>) { last if $l =~ /^\r?\n$/ }
    if ($path && -f $path) {
      open(my $f, "<", $path) or next; binmode $f; local $/;
      print $c "HTTP/1.1 200 OK\r\nContent-Length: " . (-s $path) . "\r\nConnection: close\r\n\r\n", <$f>;
    } else { print $c "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" }
    close $c;
  }' &
http_pid=$!
trap 'kill $feeder_pid $http_pid 2>/dev/null || true' EXIT
# The agents' update-state-changed events since unix time $1, as "<unix time> <STATE>" lines
# (the journal's own timestamps), for the timing lines BENCHMARKS.md quotes.
update_times() {
  journalctl -b --no-pager -o short-unix _SYSTEMD_UNIT=roombox.service |
    sed -n 's/^\([0-9.]*\) .*"update-state-changed","state":"\([A-Z_]*\)".*/\1 \2/p' |
    awk -v t0="$1" '$1 >= t0'
}
# The unix time of the installer's first log line containing $2 since unix time $1.
installer_time() {
  journalctl -b --no-pager -o short-unix _SYSTEMD_UNIT=roombox-update.service |
    awk -v t0="$1" -v pat="$2" '$1 >= t0 && index($0, pat) { print $1; exit }'
}
update_journal() {
  echo "----- roombox-update.service"
  journalctl -u roombox-update --no-pager -o short-monotonic | tail -n 40 || true
}
public=$(roombox fleet keygen fleet.key) || fail "roombox fleet keygen"
cat >/etc/roombox/config.d/40-update.toml <<EOF
[fleet.signing]
public_key = "$public"
[update]
reserve_bytes = 0
health_deadline = "4m"
EOF
systemctl restart roombox
until_true 60 'roombox status 2>/dev/null | grep -q "media *PLAYING"' || fail "not PLAYING with the fleet key"
systemctl is-active --quiet roombox-update.path || fail "roombox-update.path is not active"
good=$(dpkg-deb -f update-good.deb Version)
roombox fleet --signing-key fleet.key sign-update update-good.deb \
  --url http://127.0.0.1:8099/update-good.deb >update.json || fail "sign-update"
say "\$ roombox cmd update \"\$(cat update.json)\"   # $(dpkg-query -W -f='${Version}' roombox) -> $good"
t_good=$(date +%s.%N)
roombox cmd update "$(cat update.json)" >update.out || { cat update.out; fail "roombox cmd update"; }
until_true 400 '[ "$(dpkg-query -W -f="\${Version}" roombox)" = "$good" ] &&
  [ ! -e /var/lib/roombox-update/marker.json ] && [ -f /var/lib/roombox-update/current.deb ]' ||
  { update_journal; fail "the update to $good was not installed and committed"; }
[ "$(dpkg-deb -f /var/lib/roombox-update/current.deb Version)" = "$good" ] ||
  fail "the kept package is not $good"
until_true 60 'roombox status --output json 2>/dev/null | grep -q "\"HEALTHY\""' ||
  { update_journal; fail "the new agent does not show HEALTHY"; }
steps=$(journalctl -b --no-pager -o cat _SYSTEMD_UNIT=roombox.service |
  grep -o '"update-state-changed","state":"[A-Z_]*"' | sed 's/.*"state":"//; s/"//' | uniq | paste -sd' ')
say "ok updated to $good and committed; the agents said: $steps"
# The old agent says RESTARTING as it stops; the new one says RESTARTING again as it takes the
# trial, then HEALTHY once its proof holds.
update_times "$t_good" | awk -v t0="$t_good" -v staged="$(installer_time "$t_good" "update: installing")" '
  function d(a, b) { return (a == "" || b == "") ? "?" : sprintf("%.1f", b - a) }
  !($2 in first) { first[$2] = $1 }
  $2 == "RESTARTING" { rs[++n] = $1 }
  END {
    printf "box: timing: update command to HEALTHY %s s = download and verify to INSTALLING %s s + the installer taking, checking and keeping the previous package %s s + dpkg until the old agent stops %s s + restart (old agent stopping to the new one taking the trial) %s s + proof of health %s s\n",
      d(t0, first["HEALTHY"]), d(t0, first["INSTALLING"]), d(first["INSTALLING"], staged), d(staged, rs[1]), d(rs[1], rs[2]), d(rs[2], first["HEALTHY"])
  }' | tee -a timing.txt
case $steps in *"INSTALLING RESTARTING"*"HEALTHY"*) ;; *) fail "unexpected steps: $steps" ;; esac

broken=$(dpkg-deb -f update-broken.deb Version)
roombox fleet --signing-key fleet.key sign-update update-broken.deb \
  --url http://127.0.0.1:8099/update-broken.deb >broken.json || fail "sign-update (broken)"
say "\$ roombox cmd update \"\$(cat broken.json)\"   # $good -> $broken, whose agent exits at once"
t_broken=$(date +%s.%N)
roombox cmd update "$(cat broken.json)" >update.out || { cat update.out; fail "roombox cmd update (broken)"; }
until_true 400 'journalctl -b --no-pager -o cat _SYSTEMD_UNIT=roombox.service |
  grep -q "\"state\":\"ROLLED_BACK\""' ||
  { update_journal; fail "the broken update was not rolled back"; }
[ "$(dpkg-query -W -f='${Version}' roombox)" = "$good" ] ||
  fail "after the rollback dpkg has $(dpkg-query -W -f='${Version}' roombox)"
until_true 60 '[ "$(systemctl is-active roombox)" = active ] && roombox status >/dev/null 2>&1' ||
  fail "the rolled-back agent is not running"
why=$(journalctl -b --no-pager -o cat _SYSTEMD_UNIT=roombox.service |
  grep -o '"state":"ROLLED_BACK"[^}]*' | tail -n 1)
case $why in *crashed*) ;; *) update_journal; fail "the rollback's reason is not the crash loop: $why" ;; esac
[ ! -e /var/lib/roombox-update/marker.json ] || fail "a marker was left after the rollback"
say "ok $broken rolled back to $good: $why"
update_times "$t_broken" | awk -v t0="$t_broken" -v staged="$(installer_time "$t_broken" "update: installing")" \
  -v decided="$(installer_time "$t_broken" "update: rolling back")" '
  function d(a, b) { return (a == "" || b == "") ? "?" : sprintf("%.1f", b - a) }
  !($2 in first) { first[$2] = $1 }
  END {
    printf "box: timing: bad package: update command to ROLLED_BACK %s s = download and verify to INSTALLING %s s + the installer taking, checking and keeping the previous package %s s + dpkg and the trial until the rollback decision %s s (update.health_deadline here is 240 s) + the previous package back %s s\n",
      d(t0, first["ROLLED_BACK"]), d(t0, first["INSTALLING"]), d(first["INSTALLING"], staged), d(staged, decided), d(decided, first["ROLLED_BACK"])
  }' | tee -a timing.txt

# --- no sandbox denials
journal=$(journalctl -b --no-pager -o cat _SYSTEMD_UNIT=roombox.service)
if grep -n -i 'operation not permitted\|permission denied\|EPERM\|refused (' <<<"$journal"; then
  fail "the agent met its sandbox (lines above)"
fi
# seccomp's kill or log (audit type 1326) and AppArmor's denials name the process; the kernel
# log also holds systemd's banner, whose "+SECCOMP" is no denial.
if journalctl -b -k --no-pager | grep -E 'type=1326.*roombox|apparmor="DENIED".*roombox'; then
  fail "the kernel logged a denial for the agent"
fi
say "ok no sandbox denials in the journal"
say "all passed"
