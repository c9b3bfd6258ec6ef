// End-to-end browser test of the demo page.
//
// Starts a static server (python3 -m http.server, as the README says) on a free loopback port
// and Debian's chromium (headless, through playwright-core), loads the page, runs the kernel
// panels and compares the numbers the page shows with the native library's output for the same
// seeded inputs (the `expect` example). If the SmolLM2 model is available it then loads it and
// checks 8 greedy tokens for the fixture prompt against tests/fixtures/smollm2/greedy.json. If
// all-MiniLM-L6-v2 is available it ranks fixture texts in the search panel and compares the
// ranking, the scores and the query's embedding with `nanotensor search` / `nanotensor embed`.
// Saves a screenshot to target/web-e2e/screenshot.png (E2E_SCREENSHOT=PATH writes it elsewhere,
// e.g. web/screenshot.png to refresh the README's picture on purpose). Server and browser are
// stopped on every exit path.
//
// Environment: NANOTENSOR_MODELS_DIR (default <repo>/models),
// E2E_MATMUL_SIZE (default 256) and E2E_REPEAT (default 1): the matmul comparison's size and
// timed repetitions (the page/native GFLOP/s of each backend is printed); E2E_GEN_TOKENS
// (default 8, at most the fixture's 32): greedy tokens generated and compared.

import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, lstatSync, unlinkSync, writeFileSync } from 'node:fs';
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
const MINILM_DIR = 'all-MiniLM-L6-v2';
const MINILM_FILES = ['model.safetensors', 'tokenizer.json', 'config.json', 'sentence_bert_config.json', 'modules.json'];
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

function findModelsDir(file = MODEL_FILE) {
  for (const d of [process.env.NANOTENSOR_MODELS_DIR, join(REPO, 'models')]) {
    if (d && existsSync(join(d, file))) return d;
  }
  return null;
}

// The native CLI's JSON output (built in release by cargo, as the page's expectations above).
function nativeCli(args) {
  return JSON.parse(execFileSync('cargo', ['run', '-q', '--release', '-p', 'nanotensor-cli', '--', ...args],
    { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 }));
}

function cosine(a, b) {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return ab / Math.sqrt(aa * bb);
}

// Texts for the search panel, all from the MiniLM fixtures (the sentence-transformers reference
// texts, then the tokenizer cases: accents, CJK, long words, texts past 256 tokens, random
// strings): one line each, so only texts without control, format or line-separator characters
// (a text area would rewrite them) and not blank; at most 40, no repeats. The query is the
// reference's second text, kept out of the lines.
function minilmSearchTexts() {
  const fx = (f) => JSON.parse(readFileSync(join(REPO, 'tests', 'fixtures', 'minilm', f), 'utf8'));
  const refTexts = fx('reference.json').items.map((i) => i.text);
  const query = refTexts[1];
  const all = [...refTexts, ...fx('tokenizer_cases.json').cases.map((c) => c.text)];
  const lines = [...new Set(all.filter((t) => t !== query && t.trim() && !/[\p{C}\p{Zl}\p{Zp}]/u.test(t)))].slice(0, 40);
  return { query, lines };
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
  const minilmDir = findModelsDir(join(MINILM_DIR, 'model.safetensors'));
  const webModels = join(WEB, 'models');
  if ((modelsDir || minilmDir) && !existsSync(webModels)) {
    symlinkSync(modelsDir || minilmDir, webModels);
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

  // ---- semantic-search panel: all-MiniLM-L6-v2 in the worker vs the native CLI --------------
  if (!minilmDir) {
    const msg = `no ${MINILM_DIR}/model.safetensors in $NANOTENSOR_MODELS_DIR or <repo>/models (scripts/fetch-model.sh minilm)`;
    if (process.env.NANOTENSOR_REQUIRE_MODEL) await check('semantic search: model present', async () => assert.fail(msg));
    else console.log(`skip semantic-search panel: ${msg}`);
  } else {
    const dir = join(minilmDir, MINILM_DIR);
    const { query, lines } = minilmSearchTexts();
    const TOP = 10;
    const linesFile = join(profile, 'search-lines.txt');
    writeFileSync(linesFile, `${lines.join('\n')}\n`);
    // Native: the whole ranking (every line's score) and the query's embedding, one thread.
    const native = (backend) => ({
      search: nativeCli(['search', '--model', dir, '--file', linesFile, '--top', String(lines.length), '--backend', backend, '--threads', '1', '--json', '--', query]),
      embed: nativeCli(['embed', '--model', dir, '--backend', backend, '--threads', '1', '--json', '--', query]),
    });
    // Loads the encoder (files: the picker; else the served directory), searches, and returns
    // the page's reply.
    async function searchInPage(backend, files) {
      if (files) {
        await page.setInputFiles('#emb-files', files);
      } else if (!(await page.$eval('#emb-dir', (i) => i.files.length))) {
        await page.setInputFiles('#emb-files', []);
        await page.fill('#emb-url', `models/${MINILM_DIR}/`);
      }
      await page.selectOption('#emb-backend', backend);
      await page.click('#emb-load-run');
      await page.waitForSelector('#emb-load-status[data-state=done], #emb-load-status[data-state=error]', { timeout: 600000 });
      assert.equal(await page.getAttribute('#emb-load-status', 'data-state'), 'done', await page.textContent('#search-error'));
      await page.fill('#search-query', query);
      await page.fill('#search-top', String(TOP));
      await page.click('#search-run');
      await page.waitForSelector('#search-status[data-state=done], #search-status[data-state=error]', { timeout: 600000 });
      assert.equal(await page.getAttribute('#search-status', 'data-state'), 'done', await page.textContent('#search-error'));
      console.log(`     ${backend}: ${await page.textContent('#search-status')}`);
      return JSON.parse(await page.getAttribute('#search-table', 'data-report'));
    }
    // The page's top k against native's full ranking: at each rank the same line, or one whose
    // native score ties native's at that rank within `tie` (a near-tie may swap); each score
    // within `tol` of native's for that line. The table shows the same ranking.
    async function compareRanking(got, nat, tie, tol, what) {
      assert.equal(got.lines, lines.length, `${what}: lines ranked`);
      assert.equal(nat.lines, lines.length);
      assert.equal(got.results.length, TOP);
      const nativeScore = new Map(nat.results.map((r) => [r.line - 1, r.score]));
      const worst = Math.max(...got.results.map((h) => Math.abs(h.score - nativeScore.get(h.index))));
      console.log(`     ${what}: top ${TOP} lines ${got.results.map((h) => h.index).join(' ')}; native ${nat.results.slice(0, TOP).map((r) => r.line - 1).join(' ')}; largest score difference ${worst.toExponential(2)}`);
      got.results.forEach((h, i) => {
        const want = nat.results[i];
        assert.equal(h.line, lines[h.index], `${what}: rank ${i + 1} text`);
        assert.ok(h.index === want.line - 1 || Math.abs(nativeScore.get(h.index) - want.score) <= tie,
          `${what}: rank ${i + 1} is line ${h.index} (native score ${nativeScore.get(h.index)}), native has line ${want.line - 1} (${want.score})`);
        close(h.score, nativeScore.get(h.index), tol, `${what}: score of line ${h.index}`);
      });
      const rows = await page.$$eval('#search-table tbody tr', (rs) => rs.map((r) => ({ index: Number(r.dataset.index), cells: [...r.cells].map((c) => c.textContent) })));
      assert.deepEqual(rows.map((r) => r.index), got.results.map((h) => h.index));
      rows.forEach((r, i) => assert.deepEqual(r.cells, [String(i + 1), got.results[i].score.toFixed(4), got.results[i].line]));
    }

    await check('semantic search: missing model files are reported in the page', async () => {
      await page.setInputFiles('#emb-files', [join(dir, 'config.json')]);
      await page.click('#emb-load-run');
      await page.waitForSelector('#emb-load-status[data-state=error]', { timeout: 60000 });
      assert.match(await page.textContent('#search-error'), /model\.safetensors is missing/);
    });

    const f32 = backends.includes('blocked') ? 'blocked' : 'naive';
    await check(`semantic search (${f32}): ranking and query embedding match native`, async () => {
      // The lines come in through the text-file input, which fills the text area.
      await page.setInputFiles('#search-file', linesFile);
      await page.waitForFunction(() => document.querySelector('#search-lines').dataset.loaded);
      const got = await searchInPage(f32, MINILM_FILES.map((f) => join(dir, f)));
      const nat = native(f32);
      console.log(`     ${f32} native (1 thread): ${nat.search.sentences_per_s.toFixed(1)} sentences/s; page ${got.sentences_per_s.toFixed(1)}`);
      await compareRanking(got, nat.search, 1e-5, 1e-4, f32);
      assert.deepEqual(got.query_ids, nat.embed.ids[0]);
      const c = cosine(got.query_embedding, nat.embed.embeddings[0]);
      console.log(`     ${f32}: query embedding cosine with native ${c.toFixed(8)}`);
      assert.ok(c >= 0.9999, `cosine ${c}`);
      assert.ok(Number(await page.getAttribute('#search-status', 'data-sentences-per-second')) > 0);
      assert.equal(got.cached_lines, false);
      assert.equal(got.embedded, lines.length + 1);
      // A second query over the same lines reuses their embeddings and ranks the same.
      await page.click('#search-run');
      await page.waitForSelector('#search-status[data-state=done]', { timeout: 600000 });
      const again = JSON.parse(await page.getAttribute('#search-table', 'data-report'));
      assert.equal(again.cached_lines, true);
      assert.equal(again.embedded, 1);
      await compareRanking(again, nat.search, 1e-5, 1e-4, `${f32}, cached lines`);
    });

    await check(`semantic search (${f32}): the folder picker reads every config, the pooling one too`, async () => {
      await page.setInputFiles('#emb-files', []);
      await page.setInputFiles('#emb-dir', dir);
      const got = await searchInPage(f32, null);
      // (Playwright clears a folder input only through its value.)
      await page.$eval('#emb-dir', (i) => { i.value = ''; });
      const summary = await page.textContent('#emb-summary');
      assert.match(summary, /files: 1_Pooling\/config\.json, config\.json, model\.safetensors, modules\.json, sentence_bert_config\.json, tokenizer\.json/);
      assert.match(summary, /at most 256 tokens · mean pooling, L2-normalised/);
      await compareRanking(got, native(f32).search, 1e-5, 1e-4, `${f32}, folder`);
    });

    if (backends.includes('int8')) {
      await check('semantic search (int8): query embedding and ranking match native int8 within int8 bounds', async () => {
        const served = existsSync(join(webModels, MINILM_DIR, 'model.safetensors'));
        const got = await searchInPage('int8', served ? null : MINILM_FILES.map((f) => join(dir, f)));
        assert.match(await page.textContent('#emb-summary'), /weights int8: weights per-row/);
        const nat = native('int8');
        const natF32 = native(f32).embed.embeddings[0];
        const c = cosine(got.query_embedding, nat.embed.embeddings[0]);
        const cf = cosine(got.query_embedding, natF32);
        console.log(`     int8: query embedding cosine with native int8 ${c.toFixed(8)}, with native ${f32} ${cf.toFixed(8)}`);
        // The int8 bound of the library's MiniLM test (tests/minilm.rs), against both.
        assert.ok(c >= 0.995, `cosine with native int8 ${c}`);
        assert.ok(cf >= 0.995, `cosine with native ${f32} ${cf}`);
        // Activations are quantized per call: a value on a rounding boundary may round the
        // other way under another f32 order (simd128 against AVX), and that moves later layers
        // by more than rounding, so the bound is the int8 one: scores within 1e-2, and lines
        // whose native scores are within 1e-2 may swap.
        await compareRanking(got, nat.search, 1e-2, 1e-2, 'int8');
      });
    }
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
