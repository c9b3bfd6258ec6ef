// Page vs native speed of the blocked f32 matmul, interleaved so that both see the same load:
// ROUNDS times { native (expect example, 1 thread) ; page relaxed-SIMD module ; page plain
// SIMD128 module }, each a median of REPEAT runs of SIZE³. Prints every round and the medians.
// Usage (after web/build.sh): node web/tests/perf.mjs [SIZE=512] [ROUNDS=5] [REPEAT=5]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const [SIZE, ROUNDS, REPEAT] = [512, 5, 5].map((d, i) => Number(process.argv[2 + i] || d));
const req = { backend: 'blocked', m: SIZE, k: SIZE, n: SIZE, seed: 1, repeat: REPEAT, check: false };

const port = await new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
});
const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', WEB], { stdio: 'ignore' });
const profile = mkdtempSync(join(tmpdir(), 'nanotensor-perf-'));
let ctx = null;
try {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const open = async (query) => {
    const p = await ctx.newPage();
    for (let i = 0; ; i++) {
      try { await p.goto(`http://127.0.0.1:${port}/index.html${query}`); break; } catch (e) { if (i > 50) throw e; await new Promise((r) => setTimeout(r, 100)); }
    }
    await p.waitForSelector('body[data-ready=true]', { timeout: 60000 });
    return p;
  };
  const pages = { relaxed: await open(''), simd128: await open('?wasm=simd128') };
  // One long-lived worker per page, warmed up first: V8 starts wasm on its baseline compiler and
  // tiers hot functions up in the background, so a fresh worker's first calls run slower code.
  // A background tab's renderer gets a lower CPU priority: bring each to the front first.
  const pageRun = async (p) => (await p.bringToFront(), p).evaluate(async (r) => {
    if (!window.perfWorker) window.perfWorker = new Worker(`worker.js${location.search}`, { type: 'module' });
    const w = window.perfWorker;
    const out = await new Promise((res, rej) => {
      w.onmessage = (ev) => (ev.data.type === 'result' ? res(ev.data.value) : rej(new Error(ev.data.message)));
      w.postMessage({ id: 1, op: 'matmul', args: r });
    });
    return out.gflops;
  }, req);
  for (const p of Object.values(pages)) await pageRun(p);
  const rows = { native: [], relaxed: [], simd128: [] };
  for (let i = 0; i < ROUNDS; i++) {
    const nat = JSON.parse(execFileSync('cargo', ['run', '-q', '--release', '-p', 'nanotensor-web', '--example', 'expect', '--', 'matmul', JSON.stringify([req])], { cwd: resolve(WEB, '..'), encoding: 'utf8' }))[0].ok.gflops;
    rows.native.push(nat);
    rows.relaxed.push(await pageRun(pages.relaxed));
    rows.simd128.push(await pageRun(pages.simd128));
    console.log(`round ${i + 1}: native ${nat.toFixed(1)}  page relaxed ${rows.relaxed[i].toFixed(1)}  page simd128 ${rows.simd128[i].toFixed(1)} GFLOP/s`);
  }
  const med = (xs) => { const s = xs.slice().sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
  const ratio = (k) => med(rows[k].map((x, i) => x / rows.native[i]));
  console.log(`median of ${ROUNDS} (blocked f32 ${SIZE}³, 1 thread, median of ${REPEAT} each): native ${med(rows.native).toFixed(1)}, page relaxed ${med(rows.relaxed).toFixed(1)} (×${ratio('relaxed').toFixed(2)} of native), page simd128 ${med(rows.simd128).toFixed(1)} (×${ratio('simd128').toFixed(2)}) GFLOP/s`);
} finally {
  if (ctx) await ctx.close().catch(() => {});
  server.kill();
  rmSync(profile, { recursive: true, force: true });
}
