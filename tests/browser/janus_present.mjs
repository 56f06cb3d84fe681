// A person in a Janus VideoRoom who presents: headless Chromium with Janus's own janus.js
// (Debian's libjs-janus-gateway, with webrtc-adapter) publishes its camera and its screen
// (getDisplayMedia; Chromium's fake capture switches stand in for a camera and a screen), the
// screen's stream described "screen" as the VideoRoom demo's screen sharing does, then stops
// sharing on a line "stop" on stdin and leaves on "leave".
//
//   node tests/browser/janus_present.mjs '<options as JSON>'
//
// Options: janus (WebSocket URL), room (number or string), display (the display name),
// camera (a .y4m file the fake camera plays, else Chromium's own pattern), timeoutS (default 60),
// videocodec (the codec the publisher asks Janus for, e.g. "vp8"; the room's first otherwise),
// audio (true: publish the fake microphone too, first).
//
// Prints JSON lines on stdout: {"phase":"sharing","sent":{...}} once both tracks send frames,
// {"phase":"stopped"} once the screen's stream was removed, {"phase":"timeout"} otherwise.
import readline from 'node:readline';
import { chromiumPath, openTab, servePage } from './page.mjs';

let opts;
try {
  opts = JSON.parse(process.argv[2] ?? '');
} catch (e) {
  console.error(`usage: janus_present.mjs '<options as JSON>' (${e.message})`);
  process.exit(2);
}
for (const k of ['janus', 'room', 'display']) {
  if (opts[k] === undefined) {
    console.error(`janus_present.mjs: option ${k} is missing`);
    process.exit(2);
  }
}
opts = { timeoutS: 60, ...opts };
chromiumPath();

const page = `<!doctype html>
<meta charset="utf-8">
<title>roombox: a janus.js presenter</title>
<script src="/adapter.js"></script>
<script src="/janus.js"></script>
<script>
const opts = ${JSON.stringify(opts)};
window.report = { log: [], joined: false, published: false, stopped: false };
const log = (s) => { window.report.log.push(String(s)); if (window.report.log.length > 60) window.report.log.shift(); };
let janus, pub;

function publish() {
  pub.createOffer({
    tracks: [
      ...(opts.audio ? [{ type: 'audio', capture: true, recv: false }] : []),
      { type: 'video', capture: true, recv: false },
      { type: 'screen', capture: true, recv: false },
    ],
    success: (jsep) => {
      // The screen is the last m-line: describe it as a screen, as other clients do.
      const mids = [...jsep.sdp.matchAll(/^a=mid:(\\S+)/gm)].map((m) => m[1]);
      const descriptions = [{ mid: mids[mids.length - 1], description: 'screen' }];
      log('publishing mids ' + mids.join(','));
      const message = { request: 'publish', descriptions };
      if (opts.videocodec) message.videocodec = opts.videocodec;
      pub.send({ message, jsep });
    },
    error: (e) => log('createOffer: ' + JSON.stringify(e)),
  });
}

// Stops sharing the screen: the track is removed and the publisher renegotiates.
window.stopShare = () => {
  window.report.stopAsked = true;
  const screen = pub.getLocalTracks ? pub.getLocalTracks().find((t) => t.type === 'screen') : null;
  const mid = screen ? screen.mid : '1';
  pub.createOffer({
    tracks: [{ type: 'screen', mid, remove: true }],
    success: (jsep) => pub.send({ message: { request: 'configure' }, jsep }),
    error: (e) => log('remove screen: ' + JSON.stringify(e)),
  });
};
window.leave = () => pub.send({ message: { request: 'leave' } });

Janus.init({
  debug: false,
  dependencies: Janus.useDefaultDependencies(),
  callback: () => {
    janus = new Janus({
      server: opts.janus,
      success: () => janus.attach({
        plugin: 'janus.plugin.videoroom',
        success: (h) => {
          pub = h;
          h.send({ message: { request: 'join', room: opts.room, ptype: 'publisher', display: opts.display } });
        },
        error: (e) => log('attach: ' + e),
        onmessage: (msg, jsep) => {
          if (msg.error) log('publisher: ' + msg.error);
          if (msg.videoroom === 'joined') { window.report.joined = true; publish(); }
          if (jsep) pub.handleRemoteJsep({ jsep });
          if (msg.configured === 'ok') window.report.published = true;
          if (msg.configured === 'ok' && window.report.stopAsked && jsep) window.report.stopped = true;
        },
      }),
      error: (e) => log('janus: ' + e),
    });
  },
});

window.readStats = async () => {
  const pc = pub && pub.webrtcStuff && pub.webrtcStuff.pc;
  if (!pc) return {};
  const out = { video: [] };
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      out.video.push({ mid: s.mid, frames: s.framesEncoded || 0, width: s.frameWidth || 0, height: s.frameHeight || 0 });
    }
  });
  return out;
};
</script>`;

const { server, url } = await servePage(page, {
  '/janus.js': '/usr/share/javascript/janus-gateway/janus.js',
  '/adapter.js': '/usr/share/javascript/webrtc-adapter/adapter.js',
});
const tab = await openTab(url, [
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--auto-select-desktop-capture-source=Entire screen',
  ...(opts.camera ? [`--use-file-for-fake-video-capture=${opts.camera}`] : []),
]);
const say = async (phase) => {
  const sent = await tab.tab.evaluate(() => window.readStats());
  const r = await tab.tab.evaluate(() => window.report);
  console.log(JSON.stringify({ phase, sent, log: r.log, console: tab.consoleLines.slice(-20) }));
};
const input = readline.createInterface({ input: process.stdin });
const asked = [];
input.on('line', (l) => asked.push(l.trim()));
const end = Date.now() + opts.timeoutS * 1000;
let code = 1;
try {
  let phase = 'waiting';
  while (Date.now() < end) {
    const s = await tab.tab.evaluate(() => window.readStats());
    const sending = (s.video ?? []).filter((v) => v.frames > 30);
    if (phase === 'waiting' && sending.length >= 2) {
      phase = 'sharing';
      await say(phase);
    }
    const cmd = asked.shift();
    if (cmd === 'stop') {
      await tab.tab.evaluate(() => window.stopShare());
      phase = 'stopping';
    } else if (cmd === 'leave') {
      await tab.tab.evaluate(() => window.leave());
      await say('left');
      code = 0;
      break;
    }
    if (phase === 'stopping' && (await tab.tab.evaluate(() => window.report.stopped))) {
      phase = 'stopped';
      await say(phase);
    }
    await new Promise((ok) => setTimeout(ok, 250));
  }
  if (code !== 0) await say('timeout');
} finally {
  input.close();
  await tab.close();
  server.close();
}
process.exit(code);
