// A person in a Janus VideoRoom, watching one publisher: headless Chromium with Janus's own
// janus.js (Debian's libjs-janus-gateway, with webrtc-adapter), as the VideoRoom demo does it.
// It joins the room as a listener (a publisher that publishes nothing, to hear who comes and
// goes), subscribes to the first publisher whose display name is `display`, plays its video
// and audio, and reads Chromium's WebRTC stats.
//
//   node tests/browser/janus_watch.mjs '<options as JSON>'
//
// Options: janus (WebSocket URL), room (number or string), display (the publisher's display
// name), frames (decoded frames to wait for, default 60), timeoutS (default 40), shares (with
// it, once receiving: each line "arm" on stdin is answered by {"phase":"share","t":ms} when the
// publisher's second video (its share, which the page adds to its subscription with an
// `update` once the room lists it) decodes a new frame, `t` the wall clock then; each line
// "streams" by {"phase":"streams","streams":[...],"stats":{...}}, the publisher's streams as
// the room last listed them (type, mid, description, disabled) and the stats; "quit" ends it).
//
// Prints JSON lines on stdout, each with the latest stats ({videoFrames, width, height,
// audioEnergy, audioPackets}) and the page's log:
//   {"phase":"receiving"}  the publisher's video decoded `frames` frames and its audio is heard;
//   {"phase":"left"}       then the publisher left the room (unpublished or leaving), exit 0;
//   {"phase":"timeout"}    either did not happen in time, exit 1.
import readline from 'node:readline';
import { chromiumPath, openTab, servePage } from './page.mjs';

let opts;
try {
  opts = JSON.parse(process.argv[2] ?? '');
} catch (e) {
  console.error(`usage: janus_watch.mjs '<options as JSON>' (${e.message})`);
  process.exit(2);
}
for (const k of ['janus', 'room', 'display']) {
  if (opts[k] === undefined) {
    console.error(`janus_watch.mjs: option ${k} is missing`);
    process.exit(2);
  }
}
opts = { frames: 60, timeoutS: 40, ...opts };
chromiumPath();

const page = `<!doctype html>
<meta charset="utf-8">
<title>roombox: a janus.js viewer</title>
<video id="v" autoplay playsinline muted></video>
<audio id="a" autoplay></audio>
<script src="/adapter.js"></script>
<script src="/janus.js"></script>
<script>
const opts = ${JSON.stringify(opts)};
window.report = { log: [], feed: null, left: false, stats: {}, streams: [] };
const log = (s) => { window.report.log.push(String(s)); if (window.report.log.length > 60) window.report.log.shift(); };
let janus, listener, sub;

// The publisher's streams the subscription has, by mid; a video it adds later (a share) is
// added to the subscription with an update, as the VideoRoom demo does.
const taken = new Set();
function watch(list) {
  for (const p of list || []) {
    if (p.id === window.report.feed || (window.report.feed === null && p.display === opts.display)) {
      window.report.streams = p.streams || [];
    }
    if (window.report.feed === null && p.display === opts.display) {
      window.report.feed = p.id;
      for (const st of p.streams || []) taken.add(st.mid);
      log('subscribing to ' + p.id);
      subscribe(p.id);
    } else if (p.id === window.report.feed && sub) {
      const fresh = (p.streams || []).filter((st) => !st.disabled && !taken.has(st.mid));
      for (const st of fresh) taken.add(st.mid);
      if (fresh.length) {
        log('adding ' + fresh.map((st) => st.type + ' ' + st.mid).join(', '));
        sub.send({ message: { request: 'update', subscribe: fresh.map((st) => ({ feed: p.id, mid: st.mid })) } });
      }
    }
  }
}

function gone(msg) {
  const f = window.report.feed;
  if (f === null) return;
  if (msg.unpublished === f || msg.leaving === f) {
    log('the publisher left: ' + JSON.stringify(msg));
    window.report.left = true;
  }
}

function subscribe(feed) {
  janus.attach({
    plugin: 'janus.plugin.videoroom',
    success: (h) => {
      sub = h;
      h.send({ message: { request: 'join', room: opts.room, ptype: 'subscriber', streams: [{ feed }] } });
    },
    error: (e) => log('subscriber attach: ' + e),
    onmessage: (msg, jsep) => {
      if (msg.error) log('subscriber: ' + msg.error);
      if (jsep) {
        sub.createAnswer({
          jsep,
          tracks: [{ type: 'data' }],
          success: (answer) => sub.send({ message: { request: 'start', room: opts.room }, jsep: answer }),
          error: (e) => log('createAnswer: ' + JSON.stringify(e)),
        });
      }
    },
    onremotetrack: (track, mid, on) => {
      log('remote track ' + track.kind + ' ' + mid + ' ' + on);
      if (!on) return;
      const el = document.getElementById(track.kind === 'video' ? 'v' : 'a');
      el.srcObject = new MediaStream([track]);
      el.play().catch((e) => log('play ' + track.kind + ': ' + e));
    },
  });
}

Janus.init({
  debug: false,
  dependencies: Janus.useDefaultDependencies(),
  callback: () => {
    janus = new Janus({
      server: opts.janus,
      success: () => janus.attach({
        plugin: 'janus.plugin.videoroom',
        success: (h) => {
          listener = h;
          h.send({ message: { request: 'join', room: opts.room, ptype: 'publisher', display: 'janus.js viewer' } });
        },
        error: (e) => log('listener attach: ' + e),
        onmessage: (msg) => {
          if (msg.error) log('listener: ' + msg.error);
          watch(msg.publishers);
          gone(msg);
        },
      }),
      error: (e) => log('janus: ' + e),
    });
  },
});

window.readStats = async () => {
  const pc = sub && sub.webrtcStuff && sub.webrtcStuff.pc;
  if (!pc) return window.report.stats;
  const out = { videos: [] };
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') out.videos.push({ mid: s.mid, frames: s.framesDecoded || 0, width: s.frameWidth || 0, height: s.frameHeight || 0, fps: s.framesPerSecond || 0 });
    if (s.kind === 'video' && out.videoFrames === undefined) Object.assign(out, { videoFrames: s.framesDecoded || 0, width: s.frameWidth || 0, height: s.frameHeight || 0 });
    if (s.kind === 'audio') Object.assign(out, { audioEnergy: s.totalAudioEnergy || 0, audioPackets: s.packetsReceived || 0 });
  });
  window.report.stats = out;
  return out;
};
</script>`;

const { server, url } = await servePage(page, {
  '/janus.js': '/usr/share/javascript/janus-gateway/janus.js',
  '/adapter.js': '/usr/share/javascript/webrtc-adapter/adapter.js',
});
const tab = await openTab(url);
const say = async (phase) => {
  const stats = await tab.tab.evaluate(() => window.readStats());
  const r = await tab.tab.evaluate(() => window.report);
  console.log(JSON.stringify({ phase, stats, feed: r.feed, log: r.log, console: tab.consoleLines.slice(-20) }));
};
const end = Date.now() + opts.timeoutS * 1000;
let code = 1;
let phase = 'waiting';
const asked = [];
const input = opts.shares ? readline.createInterface({ input: process.stdin }) : null;
input?.on('line', (l) => asked.push(l.trim()));
// The share's decoded frames: the second inbound video, by mid order.
const shareFrames = (s) => {
  const v = [...(s.videos ?? [])].sort((a, b) => Number(a.mid) - Number(b.mid));
  return v.length > 1 ? v[1].frames : 0;
};
try {
  if (opts.shares) {
    // Receiving first, as without the option.
    while (Date.now() < end && phase === 'waiting') {
      const s = await tab.tab.evaluate(() => window.readStats());
      if ((s.videoFrames ?? 0) >= opts.frames) { phase = 'receiving'; await say(phase); }
      else await new Promise((ok) => setTimeout(ok, 100));
    }
    let armed = null;
    while (Date.now() < end) {
      const cmd = asked.shift();
      if (cmd === 'quit') { code = 0; break; }
      const s = await tab.tab.evaluate(() => window.readStats());
      if (cmd === 'arm') armed = shareFrames(s);
      if (cmd === 'streams') {
        const streams = await tab.tab.evaluate(() => window.report.streams);
        console.log(JSON.stringify({ phase: 'streams', streams, stats: s }));
      }
      if (armed !== null && shareFrames(s) > armed) {
        armed = null;
        console.log(JSON.stringify({ phase: 'share', t: Date.now(), stats: s }));
      }
      await new Promise((ok) => setTimeout(ok, 20));
    }
    input?.close();
    if (code !== 0) await say('timeout');
    phase = 'done';
  }
  let energy0 = null;
  while (phase !== 'done' && Date.now() < end) {
    const s = await tab.tab.evaluate(() => window.readStats());
    if (phase === 'waiting' && (s.videoFrames ?? 0) >= opts.frames) {
      // Heard: the audio's energy grows between two readings (silence adds almost none).
      if (energy0 === null) energy0 = s.audioEnergy ?? 0;
      else if ((s.audioEnergy ?? 0) - energy0 > 0.001) {
        phase = 'receiving';
        await say(phase);
      }
    }
    if (phase === 'receiving' && (await tab.tab.evaluate(() => window.report.left))) {
      phase = 'left';
      await say(phase);
      code = 0;
      break;
    }
    await new Promise((ok) => setTimeout(ok, 250));
  }
  if (code !== 0 && phase !== 'done') await say('timeout');
} finally {
  await tab.close();
  server.close();
}
process.exit(code);
