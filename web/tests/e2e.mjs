// End-to-end browser test of the demo page.
//
// Starts a static server (python3 -m http.server, as the README says) on a free loopback port
// and Debian's chromium (headless, through playwright-core), loads the page, runs the kernel
// panels and compares the numbers the page shows with the native library's output for the same
// seeded inputs (the `expect` example). If the SmolLM2 model is available it then loads it and
// checks 8 greedy tokens for the fixture prompt against tests/fixtures/smollm2/greedy.json.
// Saves a screenshot to target/web-e2e/screenshot.png (E2E_SCREENSHOT=PATH writes it elsewhere,
// e.g. web/screenshot.png to refresh the README's picture on purpose). Server and browser are
// stopped on every exit path.
//
// Environment: NANOTENSOR_MODELS_DIR (default <repo>/models),
// E2E_MATMUL_SIZE (default 256) and E2E_REPEAT (default 1): the matmul comparison's size and
// timed repetitions (the page/native GFLOP/s of each backend is printed); E2E_GEN_TOKENS
// (default 8, at most the fixture's 32): greedy tokens generated and compared.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REPO = resolve(WEB, '..');
const MODEL_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf';
const GEMMA3_FILE = 'gemma-3-270m-q4_k_m.gguf';
const SIZE = Number(process.env.E2E_MATMUL_SIZE || 256);
const SEED = 1234;
const REPEAT = Number(process.env.E2E_REPEAT || 1);
const GEN = Math.min(32, Number(process.env.E2E_GEN_TOKENS || 8));

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n     ${String(e.stack || e).split('\n').slice(0, 6).join('\n     ')}`);
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function waitForHttp(url, ms) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch (_) { /* not up yet */ }
    if (Date.now() > end) throw new Error(`server at ${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function nativeExpect(op, requests) {
  const out = execFileSync('cargo', ['run', '-q', '--release', '-p', 'nanotensor-web', '--example', 'expect', '--', op, JSON.stringify(requests)], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out);
}

function findModelsDir() {
  for (const d of [process.env.NANOTENSOR_MODELS_DIR, join(REPO, 'models')]) {
    if (d && existsSync(join(d, MODEL_FILE))) return d;
  }
  return null;
}

// Relative closeness for values that a reordered float32 kernel may move by rounding.
function close(got, want, rel, what) {
  const tol = rel * Math.max(1, Math.abs(want));
  assert.ok(Math.abs(got - want) <= tol, `${what}: page ${got} vs native ${want} (tolerance ${tol})`);
}

async function runMatmulPanel(page, which) {
  await page.selectOption('#mm-size', String(SIZE)).catch(async () => {
    await page.evaluate((s) => { const o = new Option(String(s)); document.querySelector('#mm-size').add(o); }, SIZE);
    await page.selectOption('#mm-size', String(SIZE));
  });
  await page.$$eval('input[name=mm-backend]', (cs, w) => cs.forEach((c) => { c.checked = w.includes(c.value); }), which);
  await page.fill('#mm-seed', String(SEED));
  await page.fill('#mm-repeat', String(REPEAT));
  await page.click('#mm-run');
  await page.waitForSelector('#mm-status[data-state=done], #mm-status[data-state=error]', { timeout: 300000 });
  return page.$$eval('#mm-table tbody tr', (rows) => rows.map((r) => ({
    backend: r.dataset.backend,
    sum: r.querySelector('.sum')?.textContent,
    sumsq: r.querySelector('.sumsq')?.textContent,
    head: r.querySelector('.head')?.textContent,
    insum: r.querySelector('.insum')?.textContent,
    gflops: r.querySelector('.gflops')?.textContent,
    report: r.dataset.report ? JSON.parse(r.dataset.report) : null,
    text: r.textContent,
  })));
}

// The numbers shown for `backend` against the native run `expected` ({ok} or {err}).
function compareMatmul(shown, backend, expected) {
  const row = shown.find((r) => r.backend === backend);
  assert.ok(row && row.report, `no result row for ${backend}: ${row?.text}`);
  const w = expected.ok;
  assert.ok(w, `native run failed: ${expected.err}`);
  // The seeded inputs are the same bits in both builds.
  assert.equal(Number(row.insum), w.inputs.sum, 'Σ A,B');
  assert.deepEqual(row.report.inputs, w.inputs);
  // The output: exact for the naive loops (same operations in the same order), rounding-close
  // for the SIMD kernels (AVX natively, SIMD128 here: different summation orders, FMA or not).
  const exact = backend === 'naive';
  const head = row.head.split(',').map(Number);
  close(Number(row.sumsq), w.output.sum_sq, exact ? 0 : 1e-5, 'Σ C²');
  close(Number(row.sum), w.output.sum, exact ? 0 : (1e-3 * Math.sqrt(w.output.sum_sq)) / Math.max(1, Math.abs(w.output.sum)), 'Σ C');
  w.output.head.forEach((x, j) => close(head[j], x, exact ? 0 : 1e-4, `C[${j}]`));
}

const server = { proc: null };
let browser = null;
let profile = null;
let linkedModels = false;

async function main() {
  const port = await freePort();
  server.proc = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', WEB], { stdio: 'ignore' });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/index.html`, 15000);

  const modelsDir = findModelsDir();
  const webModels = join(WEB, 'models');
  if (modelsDir && !existsSync(webModels)) {
    symlinkSync(modelsDir, webModels);
    linkedModels = true;
  }

  profile = mkdtempSync(join(tmpdir(), 'nanotensor-e2e-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 1500 },
  });
  const page = browser.pages()[0] || (await browser.newPage());
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  await page.goto(`${base}/index.html`);
  await page.waitForSelector('body[data-ready]', { timeout: 60000 });
  const info = await page.evaluate(() => document.querySelector('#build').textContent);
  console.log(`page: ${info}`);
  assert.equal(await page.getAttribute('body', 'data-ready'), 'true', info);
  const backends = await page.$$eval('input[name=mm-backend]', (cs) => cs.map((c) => c.value));

  await check('build has simd128 and the naive backend', async () => {
    assert.match(info, /simd128: on/);
    assert.ok(backends.includes('naive'), backends.join(','));
  });

  // ---- matmul panel vs native ------------------------------------------------------------
  const want = nativeExpect('matmul', backends.map((backend) => ({ backend, m: SIZE, k: SIZE, n: SIZE, seed: SEED, repeat: REPEAT, check: false })));
  const shown = await runMatmulPanel(page, backends);
  for (const [i, backend] of backends.entries()) {
    await check(`matmul ${SIZE}³ ${backend}: page matches native`, async () => {
      compareMatmul(shown, backend, want[i]);
      const row = shown.find((r) => r.backend === backend);
      console.log(`     ${backend}: page ${row.gflops} GFLOP/s, native ${want[i].ok.gflops.toFixed(2)} GFLOP/s (1 thread, ${SIZE}³)`);
    });
  }

  // The plain SIMD128 module (what engines without relaxed SIMD load) computes the same.
  await check('plain simd128 module (?wasm=simd128): blocked matmul matches native', async () => {
    const plain = await browser.newPage();
    try {
      await plain.goto(`${base}/index.html?wasm=simd128`);
      await plain.waitForSelector('body[data-ready=true]', { timeout: 60000 });
      assert.match(await plain.textContent('#build'), /simd128: on · relaxed simd: off/);
      const i = backends.indexOf('blocked');
      assert.ok(i >= 0, 'no blocked backend');
      const rows = await runMatmulPanel(plain, ['blocked']);
      compareMatmul(rows, 'blocked', want[i]);
      console.log(`     blocked, plain simd128: page ${rows[0].gflops} GFLOP/s`);
    } finally {
      await plain.close();
    }
  });

  // ---- attention panel: naive refuses past its budget with the library's message ----------
  await check('attention panel: same results and same refusals as native', async () => {
    const ns = [128, 256, 1024];
    const cfg = { heads: 2, head_dim: 32, causal: true, max_memory: 1 << 20, seed: 7, repeat: 1 };
    await page.fill('#at-ns', ns.join(','));
    await page.fill('#at-heads', String(cfg.heads));
    await page.fill('#at-dim', String(cfg.head_dim));
    await page.fill('#at-budget', '1'); // 2·256²·4 B = 512 KiB fits; 2·1024²·4 B = 8 MiB does not
    await page.click('#at-run');
    await page.waitForSelector('#at-status[data-state=done]', { timeout: 300000 });
    const rows = await page.$$eval('#at-table tbody tr', (rs) => rs.map((r) => ({ ...r.dataset })));
    const errs = await page.$$eval('#at-errors li', (ls) => ls.map((l) => l.textContent));
    assert.equal(rows.length, ns.length);
    const reqs = [];
    for (const [i, n] of ns.entries()) {
      for (const algo of ['naive', 'flash']) reqs.push({ ...cfg, backend: rows[i][`${algo}Backend`], algo, seq_len: n });
    }
    const nat = nativeExpect('attention', reqs);
    for (const [j, req] of reqs.entries()) {
      const got = JSON.parse(rows[ns.indexOf(req.seq_len)][req.algo]);
      const what = `${req.algo} (${req.backend}) N=${req.seq_len}`;
      if (nat[j].err) {
        assert.equal(got.error, nat[j].err, `${what}: the page must refuse with the library's message`);
        assert.ok(errs.some((e) => e.includes(nat[j].err)), `${what}: message not shown`);
      } else {
        assert.ok(!got.error, `${what}: native ran but the page refused: ${got.error}`);
        assert.equal(got.algo, nat[j].ok.algo);
        assert.equal(got.scratch_bytes, nat[j].ok.scratch_bytes, `${what}: scratch`);
        close(got.output.sum_sq, nat[j].ok.output.sum_sq, 1e-5, `${what}: Σ O²`);
      }
    }
    // The point of the panel: naive fits at small N and is refused past the budget.
    assert.deepEqual(nat.filter((_, j) => reqs[j].algo === 'naive').map((r) => Boolean(r.err)), [false, false, true]);
    if (backends.includes('blocked') && nat.some((r, j) => reqs[j].algo === 'flash' && r.ok)) {
      assert.ok(nat.every((r, j) => reqs[j].algo !== 'flash' || r.ok), 'flash should run at every N');
    }
  });

  // ---- model panel -------------------------------------------------------------------------
  const modelInBuild = /model: yes/.test(info);
  if (!modelsDir || !modelInBuild) {
    console.log(`skip model panel: ${!modelInBuild ? 'the model is not in this build' : `no ${MODEL_FILE} in $NANOTENSOR_MODELS_DIR or <repo>/models`}`);
  } else {
    const fixture = JSON.parse(readFileSync(join(REPO, 'tests', 'fixtures', 'smollm2', 'greedy.json'), 'utf8'));
    const kase = fixture.cases.find((c) => c.prompt === 'Once upon a time');
    await check('model: wrong file is reported in the page', async () => {
      await page.fill('#model-url', 'index.html');
      await page.click('#load-run');
      await page.waitForSelector('#load-status[data-state=error]', { timeout: 60000 });
      const msg = await page.textContent('#model-error');
      assert.match(msg, /gguf|magic/i);
    });
    // f32 weights: the blocked backend (the naive one where blocked is not compiled in).
    const f32 = backends.includes('blocked') ? 'blocked' : 'naive';
    for (const backend of [f32, 'int8', 'quant'].filter((b) => backends.includes(b))) {
      await check(`model (${backend}): ${GEN} greedy tokens`, async () => {
        // The first load goes through the file picker, the second fetches the served copy.
        if (backend === f32) {
          await page.setInputFiles('#model-file', join(modelsDir, MODEL_FILE));
        } else {
          await page.setInputFiles('#model-file', []);
          await page.fill('#model-url', `models/${MODEL_FILE}`);
        }
        await page.selectOption('#model-backend', backend);
        await page.click('#load-run');
        await page.waitForSelector('#load-status[data-state=done], #load-status[data-state=error]', { timeout: 600000 });
        assert.equal(await page.getAttribute('#load-status', 'data-state'), 'done', await page.textContent('#model-error'));
        await page.fill('#gen-prompt', kase.prompt);
        await page.fill('#gen-max', String(GEN));
        await page.check('#gen-kv');
        await page.click('#gen-run');
        await page.waitForSelector('#gen-status[data-state=done], #gen-status[data-state=error]', { timeout: 600000 });
        const status = await page.textContent('#gen-status');
        assert.equal(await page.getAttribute('#gen-status', 'data-state'), 'done', await page.textContent('#model-error'));
        const ids = (await page.textContent('#gen-ids')).trim().split(/\s+/).map(Number);
        console.log(`     ${backend}: ${status}; ids ${ids.join(' ')}`);
        if (backend === 'quant') {
          // The file's own blocks against 8-bit activations: the native build (AVX2/AVX-512
          // kernels) and the page (simd128 kernels) make the same integer sums and differ only
          // in the order of the f32 additions, so their greedy ids agree, the leading ones at
          // least (a reordered sum may flip a later near-tie).
          const native = JSON.parse(execFileSync('cargo', ['run', '-q', '--release', '-p', 'nanotensor-cli', '--', 'generate',
            '--model', join(modelsDir, MODEL_FILE), '--backend', 'quant', '--threads', '1', '--max-tokens', String(GEN),
            '--ignore-eos', '--json', '--prompt', kase.prompt], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }));
          console.log(`     quant native: ids ${native.ids.join(' ')}`);
          const lead = Math.min(4, GEN);
          assert.deepEqual(ids.slice(0, lead), native.ids.slice(0, lead));
          const summary = await page.textContent('#model-summary');
          assert.match(summary, /quant/);
        } else if (backend !== 'int8') {
          assert.deepEqual(ids, kase.f32_token_ids.slice(0, GEN));
          // Without the KV cache every step recomputes the whole prefix: same function, same ids.
          await page.uncheck('#gen-kv');
          await page.fill('#gen-max', '4');
          await page.click('#gen-run');
          await page.waitForSelector('#gen-status[data-state=done], #gen-status[data-state=error]', { timeout: 600000 });
          const noKv = (await page.textContent('#gen-ids')).trim().split(/\s+/).map(Number);
          console.log(`     ${backend}, KV cache off: ${await page.textContent('#gen-status')}`);
          assert.deepEqual(noKv, kase.f32_token_ids.slice(0, 4));
          await page.check('#gen-kv');
        } else {
          // int8 activations move the logits slightly (fixture README): the first token at least.
          assert.equal(ids[0], kase.f32_token_ids[0]);
          // The page runs int8 with the library's default scheme and says so, in the backend
          // choice and in the model summary.
          const label = await page.$eval('#model-backend option[value=int8]', (o) => o.textContent);
          const summary = await page.textContent('#model-summary');
          assert.match(label, /weights per-row, activations per-block-16/);
          assert.match(summary, /int8: weights per-row, activations per-block-16, clip absmax, rotate on, equalize on/);
        }
      });
    }
  }

  // ---- Gemma 3 in the same page: its SentencePiece prompt (BOS first) and its forward pass ----
  if (modelsDir && modelInBuild && existsSync(join(modelsDir, GEMMA3_FILE))) {
    const g = JSON.parse(readFileSync(join(REPO, 'tests', 'fixtures', 'gemma3', 'greedy.json'), 'utf8')).cases[0];
    const backend = backends.includes('blocked') ? 'blocked' : 'naive';
    const n = Math.min(4, g.stable_prefix_len);
    await check(`model Gemma 3 (${backend}): ${n} greedy tokens`, async () => {
      await page.setInputFiles('#model-file', []);
      await page.fill('#model-url', `models/${GEMMA3_FILE}`);
      await page.selectOption('#model-backend', backend);
      await page.click('#load-run');
      await page.waitForSelector('#load-status[data-state=done], #load-status[data-state=error]', { timeout: 600000 });
      assert.equal(await page.getAttribute('#load-status', 'data-state'), 'done', await page.textContent('#model-error'));
      assert.match(await page.textContent('#model-summary'), /gemma3/);
      await page.fill('#gen-prompt', g.prompt);
      await page.fill('#gen-max', String(n));
      await page.check('#gen-kv');
      await page.click('#gen-run');
      await page.waitForSelector('#gen-status[data-state=done], #gen-status[data-state=error]', { timeout: 600000 });
      assert.equal(await page.getAttribute('#gen-status', 'data-state'), 'done', await page.textContent('#model-error'));
      const ids = (await page.textContent('#gen-ids')).trim().split(/\s+/).map(Number);
      console.log(`     gemma3 ${backend}: ${await page.textContent('#gen-status')}; ids ${ids.join(' ')}`);
      // llama.cpp's greedy ids on the F32-dequantized weights (tests/fixtures/gemma3/README.md).
      assert.deepEqual(ids, g.f32_token_ids.slice(0, n));
    });
  } else {
    console.log(`skip Gemma 3 in the page: no ${GEMMA3_FILE} beside ${MODEL_FILE}`);
  }

  const shot = resolve(process.env.E2E_SCREENSHOT || join(REPO, 'target', 'web-e2e', 'screenshot.png'));
  mkdirSync(dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
  await check('no uncaught errors in the page', async () => {
    const unexpected = consoleErrors.filter((e) => !/Failed to load resource/.test(e));
    assert.deepEqual(unexpected, []);
  });
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  if (server.proc) server.proc.kill();
  if (profile) rmSync(profile, { recursive: true, force: true });
  const webModels = join(WEB, 'models');
  if (linkedModels && lstatSync(webModels, { throwIfNoEntry: false })?.isSymbolicLink()) unlinkSync(webModels);
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`FAIL e2e setup\n     ${e.stack || e}`);
} finally {
  await cleanup();
}
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
