// Drives headless Chromium for the console tests and benches: one JSON request a line on stdin,
// one JSON reply a line on stdout, so a Rust test steps the browser between its own checks.
//
//   node tests/browser/drive.mjs
//   {"op":"open","page":"c","url":"http://127.0.0.1:8480/","width":800,"height":480}
//   {"op":"click","page":"c","selector":"#mic"}
//   {"op":"watch","page":"c","selector":"#mic","attr":"aria-pressed"}
//   {"op":"changes","page":"c"}   -> every change of watched attributes, with Date.now()
//   {"op":"waitFor","page":"c","selector":"#feed li","text":"hello","timeout":10000}
//   {"op":"fill","page":"c","selector":"#name","value":"Ana"}
//   {"op":"text","page":"c","selector":"#meeting-state"}
//   {"op":"eval","page":"c","js":"document.title"}
//   {"op":"screenshot","page":"c","path":"docs/console-800x480.png"}
//   {"op":"tap","page":"c","selector":"#mic","attr":"aria-pressed","times":20}
//                                  -> ms from each click to the attribute changing (the shown state)
//   {"op":"close"}
//
// Replies are {"ok":true,...} or {"ok":false,"error":"..."}. Each page gets its own browser
// context, so sessionStorage (where the pages keep their token) is not shared between them.
import readline from 'node:readline';
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
if (!fs.existsSync(executablePath)) {
  console.log(JSON.stringify({ ok: false, error: `${executablePath} is missing: run tests/browser/setup.sh` }));
  process.exit(2);
}
const browser = await chromium.launch({ executablePath, args: ['--autoplay-policy=no-user-gesture-required'] });
const pages = new Map();
const logs = new Map();

async function handle(r) {
  const p = pages.get(r.page);
  switch (r.op) {
    case 'open': {
      const ctx = await browser.newContext({ viewport: { width: r.width ?? 1280, height: r.height ?? 800 } });
      const page = await ctx.newPage();
      const log = [];
      page.on('console', (m) => log.push(m.type() + ': ' + m.text()));
      page.on('pageerror', (e) => log.push('pageerror: ' + e.message));
      logs.set(r.page, log);
      const t0 = Date.now();
      const resp = await page.goto(r.url, { waitUntil: 'commit' });
      const status = resp ? resp.status() : 0;
      let readyMs = null;
      if (r.waitReady !== false && status === 200) {
        await page.waitForSelector('body[data-ready="1"]', { timeout: r.timeout ?? 15000 });
        readyMs = Date.now() - t0;
      }
      // The page's own clock: navigation start to the first snapshot rendered.
      const nav = status === 200 ? await page.evaluate(() => {
        const n = performance.getEntriesByType('navigation')[0];
        return n ? { domInteractive: n.domInteractive, domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd } : null;
      }) : null;
      pages.set(r.page, page);
      return { status, readyMs, nav };
    }
    case 'click': await p.click(r.selector, { timeout: r.timeout ?? 10000 }); return { t: Date.now() };
    case 'fill': await p.fill(r.selector, r.value); return {};
    case 'press': await p.press(r.selector, r.key); return {};
    case 'text': return { text: await p.textContent(r.selector, { timeout: r.timeout ?? 10000 }) };
    case 'attr': return { value: await p.getAttribute(r.selector, r.attr) };
    case 'eval': return { value: await p.evaluate(r.js) };
    case 'waitFor': {
      const loc = p.locator(r.selector, r.text ? { hasText: r.text } : {});
      await loc.first().waitFor({ state: r.state ?? 'visible', timeout: r.timeout ?? 10000 });
      return { t: Date.now(), count: await loc.count() };
    }
    case 'waitAttr': {
      await p.waitForFunction(([s, a, v]) => { const e = document.querySelector(s); return e && e.getAttribute(a) === v; },
        [r.selector, r.attr, r.value], { timeout: r.timeout ?? 10000 });
      return { t: Date.now() };
    }
    case 'watch':
      await p.evaluate(([s, a]) => {
        window.__changes = window.__changes || [];
        const e = document.querySelector(s);
        let last = e.getAttribute(a);
        new MutationObserver(() => {
          const v = e.getAttribute(a);
          if (v !== last) { last = v; window.__changes.push({ selector: s, attr: a, value: v, t: Date.now() }); }
        }).observe(e, { attributes: true, attributeFilter: [a] });
      }, [r.selector, r.attr]);
      return {};
    case 'changes': return { changes: await p.evaluate(() => window.__changes || []) };
    case 'screenshot': await p.screenshot({ path: r.path, fullPage: !!r.fullPage }); return {};
    case 'log': return { log: logs.get(r.page) ?? [] };
    case 'tap': {
      // Each round: click, then wait for the attribute to change: the state shown after the
      // agent's event. Timed inside the page, from the click handler's start.
      const times = await p.evaluate(async ([s, a, n]) => {
        const e = document.querySelector(s);
        const out = [];
        for (let i = 0; i < n; i++) {
          const before = e.getAttribute(a);
          const changed = new Promise((res, rej) => {
            const mo = new MutationObserver(() => { if (e.getAttribute(a) !== before) { mo.disconnect(); res(performance.now()); } });
            mo.observe(e, { attributes: true, attributeFilter: [a] });
            setTimeout(() => { mo.disconnect(); rej(new Error('no change within 5 s')); }, 5000);
          });
          const t0 = performance.now();
          e.click();
          const t1 = await changed;
          // Shown: the next frame after the change was rendered.
          await new Promise((res) => requestAnimationFrame(() => res()));
          out.push(t1 - t0);
          await new Promise((res) => setTimeout(res, 50));
        }
        return out;
      }, [r.selector, r.attr, r.times ?? 20]);
      return { times };
    }
    case 'closePage': { await p.context().close(); pages.delete(r.page); return {}; }
    case 'close': await browser.close(); process.exit(0);
    default: throw new Error('unknown op ' + r.op);
  }
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let r;
  try { r = JSON.parse(line); } catch (e) { console.log(JSON.stringify({ ok: false, error: 'bad JSON: ' + e })); continue; }
  try {
    const out = await handle(r);
    console.log(JSON.stringify({ ok: true, ...out }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e && e.message || e), log: logs.get(r.page) ?? [] }));
  }
}
await browser.close();
