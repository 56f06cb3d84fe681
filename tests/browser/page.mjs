// What play.mjs and g2g.mjs share: the page's own static server on 127.0.0.1 (the page and
// hls.js, no CDN) and a headless Chromium (Debian's) on a new, empty profile.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

// Chromium's path, or exit 2 with the fix.
export function chromiumPath() {
  const p = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!fs.existsSync(p)) {
    console.error(`${p} is missing: run tests/browser/setup.sh (Debian's chromium)`);
    process.exit(2);
  }
  return p;
}

// Serves `page` at / and hls.js at /hls.min.js, and each of `scripts` ({ '/name.js': file })
// as JavaScript; resolves to { server, url }.
export async function servePage(page, scripts = {}) {
  const js = { '/hls.min.js': path.join(here, 'node_modules/hls.js/dist/hls.min.js'), ...scripts };
  const bodies = Object.fromEntries(Object.entries(js).map(([u, f]) => [u, fs.readFileSync(f)]));
  const server = http.createServer((req, res) => {
    if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    else if (bodies[req.url]) res.writeHead(200, { 'content-type': 'text/javascript' }).end(bodies[req.url]);
    else res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end();
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

// Opens `url` in headless Chromium with `extraArgs`; resolves to { context, tab, consoleLines,
// close }, where close() ends Chromium and removes its profile.
export async function openTab(url, extraArgs = []) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'roombox-chromium-'));
  const close = async (context) => {
    await context?.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath(),
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        // Without these Chromium keeps dialling Google's hosts, which the closed network refuses.
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
        ...extraArgs,
      ],
    });
    const tab = context.pages()[0] ?? (await context.newPage());
    const consoleLines = [];
    tab.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    tab.on('pageerror', (e) => consoleLines.push(`pageerror: ${e}`));
    await tab.goto(url);
    return { context, tab, consoleLines, close: () => close(context) };
  } catch (e) {
    await close(context);
    throw e;
  }
}
