// Glass-to-glass latency at a browser: headless Chromium subscribes to one feed of a Janus
// VideoRoom (or plays the box's HLS through hls.js in low-latency mode) and reads the
// capture-time stamp out of every frame it presents.
//
//   node tests/browser/g2g.mjs '<options as JSON>'
//
// Options:
//   janus         the Janus WebSocket URL (subprotocol janus-protocol)
//   room, feed    the VideoRoom room and feed ids, as Janus wants them (number or string)
//   display       instead of feed: the publisher with this display name (a WHIP publisher, whose
//                 feed id only Janus knows), looked up with `listparticipants`
//   hls           instead of the three above: an HLS playlist URL, played with hls.js
//   offsetMs      the stamp clock's offset: wall clock (CLOCK_REALTIME) minus the stamp's clock
//                 (GStreamer's system clock, CLOCK_MONOTONIC), in ms, measured by the caller
//   settleS       seconds after the first stamped frame whose frames are not kept (start-up)
//   measureS      keep frames for at least this many seconds after that, and until minStamps
//                 are kept (a loaded machine shows fewer frames than the box sends)
//   minStamps     the run succeeds (exit 0) once this many stamped frames are kept
//   timeoutS      give up after this many seconds from the page's load
//
// The stamp (roombox::media::pipeline::STAMP_ENV): 32 bits of milliseconds on the box's
// CLOCK_MONOTONIC, in the luma of the frame's top-left 1024x64 pixels, as two rows of 32 blocks
// of 32x32 (the bits, then their complement), white (Y 235) for one and black (Y 16) for zero.
// The chroma under the blocks is the test pattern's (SMPTE bars), so one colour channel does
// not say black or white: the page reads luma, Y' = 0.299 R' + 0.587 G' + 0.114 B'.
//
// Clocks: requestVideoFrameCallback gives DOMHighResTimeStamps on the page's timeline;
// performance.timeOrigin plus one of them is wall-clock ms. Minus offsetMs it is on the stamp's
// clock. Signalling is plain WebSocket written here (no janus.js): create, attach, join as a
// subscriber, answer, start, trickle, keepalive.
//
// Prints one JSON line on stdout: the kept frames and what Chromium's WebRTC stats said.
import { chromiumPath, openTab, servePage } from './page.mjs';

let opts;
try {
  opts = JSON.parse(process.argv[2] ?? '');
} catch (e) {
  console.error(`usage: g2g.mjs '<options as JSON>' (${e.message})`);
  process.exit(2);
}
if (!opts.hls && opts.feed === undefined && opts.display !== undefined) opts.feed = null;
for (const k of opts.hls ? ['offsetMs'] : ['janus', 'room', 'feed', 'offsetMs']) {
  if (opts[k] === undefined) {
    console.error(`g2g.mjs: option ${k} is missing`);
    process.exit(2);
  }
}
opts = { settleS: 0, measureS: 0, minStamps: 50, timeoutS: 30, ...opts };
chromiumPath();

const page = `<!doctype html>
<meta charset="utf-8">
<title>roombox glass-to-glass</title>
<video id="v" muted autoplay playsinline></video>
<script src="/hls.min.js"></script>
<script>
const opts = ${JSON.stringify(opts)};
// What the page learns, read back by the driver.
window.report = {
  frames: [],      // kept stamped frames (see onFrame)
  presented: 0,    // requestVideoFrameCallback calls
  unread: 0,       // presented frames whose stamp did not read (garbled or too small)
  firstStampAt: null,
  events: [],      // Janus events without a transaction, and errors
  width: 0, height: 0,
};
const log = (s) => { window.report.events.push(s); if (window.report.events.length > 50) window.report.events.shift(); };

// --- HLS through hls.js (low-latency mode, its default) ---
if (opts.hls) {
  const hls = new Hls({ lowLatencyMode: true });
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (_, d) => log(d.type + '/' + d.details + (d.fatal ? ' (fatal)' : '')));
  hls.on(Hls.Events.MANIFEST_PARSED, () => document.getElementById('v').play().catch((e) => log('play: ' + e)));
  hls.loadSource(opts.hls);
  hls.attachMedia(document.getElementById('v'));
}

// --- Janus over WebSocket ---
const ws = opts.hls ? null : new WebSocket(opts.janus, 'janus-protocol');
const pending = new Map();
let tx = 0;
if (ws) ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  const p = msg.transaction && pending.get(msg.transaction);
  if (!p) {
    if (msg.janus !== 'ack') log(msg.janus + (msg.reason ? ': ' + msg.reason : ''));
    return;
  }
  // A plugin message is acked first; its answer comes as an event with the same transaction.
  if (msg.janus === 'ack' && p.async) return;
  pending.delete(msg.transaction);
  if (msg.janus === 'error') p.reject(new Error(JSON.stringify(msg.error)));
  else if (msg.plugindata && msg.plugindata.data && msg.plugindata.data.error)
    p.reject(new Error(msg.plugindata.data.error));
  else p.resolve(msg);
};
if (ws) ws.onerror = () => log('websocket error');
if (ws) ws.onclose = (e) => log('websocket closed ' + e.code);
function call(msg, async = false) {
  const transaction = 't' + ++tx;
  ws.send(JSON.stringify({ ...msg, transaction }));
  return new Promise((resolve, reject) => pending.set(transaction, { resolve, reject, async }));
}

async function subscribe() {
  await new Promise((ok, fail) => { ws.onopen = ok; setTimeout(() => fail(new Error('no websocket')), 10000); });
  const session_id = (await call({ janus: 'create' })).data.id;
  // Sessions expire without a keepalive at least every 60 s.
  setInterval(() => ws.send(JSON.stringify({ janus: 'keepalive', session_id, transaction: 'k' + ++tx })), 20000);
  const handle_id = (await call({ janus: 'attach', plugin: 'janus.plugin.videoroom', session_id })).data.id;
  for (let tries = 0; opts.feed === null; tries++) {
    const lp = await call({ janus: 'message', session_id, handle_id,
      body: { request: 'listparticipants', room: opts.room } });
    const who = (lp.plugindata.data.participants || []).find((p) => p.publisher && p.display === opts.display);
    if (who) opts.feed = who.id;
    else if (tries > 100) throw new Error('no publisher named ' + opts.display);
    else await new Promise((ok) => setTimeout(ok, 100));
  }
  const joined = await call({ janus: 'message', session_id, handle_id,
    body: { request: 'join', ptype: 'subscriber', room: opts.room, streams: [{ feed: opts.feed }] } }, true);
  if (!joined.jsep) throw new Error('Janus sent no offer: ' + JSON.stringify(joined.plugindata));
  const pc = new RTCPeerConnection({});
  window.pc = pc;
  pc.onicecandidate = (e) => call({ janus: 'trickle', session_id, handle_id,
    candidate: e.candidate ? e.candidate.toJSON() : { completed: true } });
  pc.oniceconnectionstatechange = () => log('ice ' + pc.iceConnectionState);
  pc.ontrack = (e) => {
    if (e.track.kind !== 'video') return;
    const v = document.getElementById('v');
    v.srcObject = new MediaStream([e.track]);
    v.play().catch((err) => log('play: ' + err));
  };
  await pc.setRemoteDescription(joined.jsep);
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  await call({ janus: 'message', session_id, handle_id, body: { request: 'start' },
    jsep: { type: answer.type, sdp: answer.sdp } }, true);
}
if (!opts.hls) subscribe().catch((e) => log('subscribe: ' + e.message));

// --- the stamp, read by luma from each presented frame ---
const v = document.getElementById('v');
const canvas = document.createElement('canvas');
canvas.width = 1024;
canvas.height = 64;
const ctx = canvas.getContext('2d', { willReadFrequently: true });
// Mean luma of the 16x16 centre of block \`bit\` in row \`row\` (0 or 1).
function blockLuma(px, row, bit) {
  let sum = 0;
  for (let y = row * 32 + 8; y < row * 32 + 24; y++) {
    for (let x = bit * 32 + 8; x < bit * 32 + 24; x++) {
      const i = (y * 1024 + x) * 4;
      sum += 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    }
  }
  return sum / 256;
}
function readStamp() {
  if (v.videoWidth < 1024 || v.videoHeight < 64) return null;
  // The source rectangle is in the video's own pixels: only the stamp is copied, not the frame.
  ctx.drawImage(v, 0, 0, 1024, 64, 0, 0, 1024, 64);
  const px = ctx.getImageData(0, 0, 1024, 64).data;
  let bits = 0, check = 0;
  for (let bit = 0; bit < 32; bit++) {
    if (blockLuma(px, 0, bit) > 128) bits |= 1 << bit;
    if (blockLuma(px, 1, bit) > 128) check |= 1 << bit;
  }
  return (bits ^ check) === -1 ? bits >>> 0 : null;
}
// ms from the stamp to \`t\` (a page timestamp), modulo 2^32 as the stamp wraps, signed (a
// time before the capture would be a clock error, and shows as one).
const TWO32 = 4294967296;
function since(stamp, t) {
  const onStampClock = performance.timeOrigin + t - opts.offsetMs;
  const d = (((onStampClock - stamp) % TWO32) + TWO32) % TWO32;
  return d >= TWO32 / 2 ? d - TWO32 : d;
}
function onFrame(now, md) {
  const r = window.report;
  r.presented++;
  r.width = md.width; r.height = md.height;
  const stamp = readStamp();
  if (stamp === null) {
    r.unread++;
  } else {
    const at = performance.now();
    if (r.firstStampAt === null) r.firstStampAt = at;
    const kept = at - r.firstStampAt;
    if (kept >= opts.settleS * 1000) {
      r.frames.push({
        stamp,
        // When the compositor expects the frame on screen: the glass-to-glass figure.
        display: since(stamp, md.expectedDisplayTime),
        // When the frame was handed to the compositor.
        presented: since(stamp, md.presentationTime),
        // When the last packet of the frame arrived (WebRTC only). Informative: Chromium
        // maps it from WebRTC's clock, and it read up to 17 ms before the capture here.
        received: md.receiveTime === undefined ? null : since(stamp, md.receiveTime),
        presentedFrames: md.presentedFrames,
      });
    }
  }
  v.requestVideoFrameCallback(onFrame);
}
v.requestVideoFrameCallback(onFrame);

// Chromium's view of the inbound video, for the report.
window.inboundVideo = async () => {
  if (!window.pc) return null;
  const stats = await window.pc.getStats();
  for (const s of stats.values()) {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      const per = (x, n) => (n ? (1000 * x) / n : null);
      return {
        framesDecoded: s.framesDecoded, framesDropped: s.framesDropped,
        framesReceived: s.framesReceived, framesPerSecond: s.framesPerSecond,
        freezeCount: s.freezeCount, packetsLost: s.packetsLost, nackCount: s.nackCount,
        jitterBufferMs: per(s.jitterBufferDelay, s.jitterBufferEmittedCount),
        jitterBufferTargetMs: per(s.jitterBufferTargetDelay, s.jitterBufferEmittedCount),
        decodeMs: per(s.totalDecodeTime, s.framesDecoded),
        processingMs: per(s.totalProcessingDelay, s.framesDecoded),
      };
    }
  }
  return null;
};
</script>
`;

const { server, url: pageUrl } = await servePage(page);
let browser;
let result;
try {
  // Real host candidates, not mDNS names Janus cannot resolve (the page asks for no camera, so
  // Chromium would hide its addresses).
  browser = await openTab(pageUrl, ['--disable-features=WebRtcHideLocalIpsWithMdns']);
  const { context, tab, consoleLines } = browser;
  const start = Date.now();
  const doneAfter = (opts.settleS + opts.measureS) * 1000;
  let r;
  for (;;) {
    await new Promise((ok) => setTimeout(ok, 250));
    r = await tab.evaluate(() => ({
      kept: window.report.frames.length,
      sinceFirst: window.report.firstStampAt === null ? null : performance.now() - window.report.firstStampAt,
    }));
    const enough = r.kept >= opts.minStamps && r.sinceFirst >= doneAfter;
    if (enough || Date.now() - start > opts.timeoutS * 1000) break;
  }
  result = await tab.evaluate(async () => ({
    ...window.report,
    inbound: await window.inboundVideo(),
    // The two wall clocks of the page agree (Date.now is the system's wall clock): the
    // mapping of page timestamps to wall clock holds.
    clockSkewMs: Date.now() - (performance.timeOrigin + performance.now()),
  }));
  result.ms = Date.now() - start;
  result.chromium = context.browser()?.version() ?? null;
  result.console = consoleLines.slice(-20);
} finally {
  await browser?.close();
  server.close();
}
console.log(JSON.stringify(result));
process.exit(result.frames.length >= opts.minStamps ? 0 : 1);
