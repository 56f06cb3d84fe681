// Plays an HLS URL in headless Chromium through hls.js and reports what the browser decoded.
//
//   node tests/browser/play.mjs <hls-url> [seconds] [min-frames] [hlsjs|native] [min-seconds]
//
// `native` hands the URL to the <video> element itself instead of hls.js, to see whether this
// Chromium build plays HLS on its own (it reports canPlayType "maybe" either way).
// The page and hls.js come from a static server of this script's own on 127.0.0.1 (no CDN), so
// the page's origin differs from the box's: the box must answer HLS GETs with CORS. Prints one
// JSON line on stdout and exits 0 when at least min-frames frames were decoded within seconds.
import { chromiumPath, openTab, servePage } from './page.mjs';

const [hlsUrl, secondsArg = '15', minFramesArg = '60', player = 'hlsjs', minSecondsArg = '0'] = process.argv.slice(2);
if (!hlsUrl) {
  console.error('usage: play.mjs <hls-url> [seconds] [min-frames]');
  process.exit(2);
}
const seconds = Number(secondsArg);
const minFrames = Number(minFramesArg);
// Play at least this long even once min-frames were decoded (to watch a change mid-stream).
const minSeconds = Number(minSecondsArg);
chromiumPath();
const page = `<!doctype html>
<meta charset="utf-8">
<title>roombox HLS</title>
<video id="v" muted playsinline width="320" height="180"></video>
<script src="/hls.min.js"></script>
<script>
  // What the page learns, read back by the driver.
  window.report = {
    nativeHls: document.createElement('video').canPlayType('application/vnd.apple.mpegurl'),
    mseH264: window.MediaSource ? MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E"') : false,
    hlsJsSupported: Hls.isSupported(),
    hlsJsVersion: Hls.version,
    presented: 0,
    errors: [],
  };
  const v = document.getElementById('v');
  // Frames the compositor was handed: a frame counts only once it was decoded and shown.
  const onFrame = () => { window.report.presented++; v.requestVideoFrameCallback(onFrame); };
  v.requestVideoFrameCallback(onFrame);
  const url = ${JSON.stringify(hlsUrl)};
  window.report.player = ${JSON.stringify(player)};
  v.addEventListener('error', () => window.report.errors.push('video: ' + (v.error && v.error.message)));
  if (${JSON.stringify(player)} === 'native') {
    v.src = url;
    v.play().catch(e => window.report.errors.push('play: ' + e));
  } else {
    // hls.js (not native HLS) by default: what most browsers need. Low-latency mode, as the
    // console and the viewers' page use it (hls.js's default): it loads parts.
    const hls = new Hls({ lowLatencyMode: true });
    window.hls = hls;
    window.report.partsLoaded = 0;
    hls.on(Hls.Events.FRAG_LOADED, (_, d) => { if (d.part) window.report.partsLoaded++; });
    hls.on(Hls.Events.ERROR, (_, d) => {
      window.report.errors.push(d.type + '/' + d.details + (d.fatal ? ' (fatal)' : '') +
        (d.response ? ' ' + d.response.code : ''));
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => { v.play().catch(e => window.report.errors.push('play: ' + e)); });
    hls.loadSource(url);
    hls.attachMedia(v);
  }
</script>
`;

const { server, url: pageUrl } = await servePage(page);
let browser;
let result;
try {
  browser = await openTab(pageUrl);
  const { context, tab, consoleLines } = browser;
  const start = Date.now();
  let r;
  for (;;) {
    r = await tab.evaluate(() => {
      const v = document.getElementById('v');
      const q = v.getVideoPlaybackQuality();
      return {
        ...window.report,
        decoded: q.totalVideoFrames,
        dropped: q.droppedVideoFrames,
        currentTime: v.currentTime,
        // hls.js's own estimate of the distance to the live edge, and capture to screen by
        // the playlist's program date-time (the box's wall clock, this machine's).
        latencyS: window.hls ? window.hls.latency : null,
        dateLatencyMs: window.hls && window.hls.playingDate ? Date.now() - window.hls.playingDate.getTime() : null,
        width: v.videoWidth,
        height: v.videoHeight,
        // The picture shown now, scaled to 4x4: 16 RGB cells, row by row (a tile's colour).
        // Empty when there is none, or when the browser will not say (native HLS from another
        // origin taints the canvas).
        grid: (() => {
          if (!v.videoWidth) return [];
          try {
          const c = document.createElement('canvas');
          c.width = 4;
          c.height = 4;
          const g = c.getContext('2d');
          g.drawImage(v, 0, 0, 4, 4);
          const d = g.getImageData(0, 0, 4, 4).data;
          const out = [];
          for (let i = 0; i < 16; i++) out.push([d[4 * i], d[4 * i + 1], d[4 * i + 2]]);
          return out;
          } catch (e) {
            return [];
          }
        })(),
      };
    });
    if (Math.min(r.decoded, r.presented) >= minFrames && Date.now() - start >= minSeconds * 1000) break;
    if (Date.now() - start > seconds * 1000) break;
    await new Promise((ok) => setTimeout(ok, 250));
  }
  r.ms = Date.now() - start;
  r.chromium = context.browser()?.version() ?? null;
  r.console = consoleLines.slice(-20);
  result = r;
} finally {
  await browser?.close();
  server.close();
}
console.log(JSON.stringify(result));
process.exit(Math.min(result.decoded, result.presented) >= minFrames ? 0 : 1);
