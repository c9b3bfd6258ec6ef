// The page: forms, tables and charts. All computation is in worker.js; this file only sends
// requests and draws what comes back. No framework and no bundler: the browser loads these
// files as they are.

const $ = (sel) => document.querySelector(sel);

// ---- the worker client ------------------------------------------------------------------------

let worker = null;
let nextId = 1;
const pending = new Map(); // id -> {resolve, reject, onEvent}

function startWorker() {
  worker = new Worker(`worker.js${location.search}`, { type: 'module' });
  worker.onmessage = (ev) => {
    const msg = ev.data;
    const p = pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'result') { pending.delete(msg.id); p.resolve(msg.value); }
    else if (msg.type === 'error') {
      pending.delete(msg.id);
      if (msg.fatal) restartWorker(msg.message);
      p.reject(new Error(msg.message));
    } else if (p.onEvent) p.onEvent(msg);
  };
  // A worker that fails to start (module not built, syntax error) must not leave calls hanging.
  worker.onerror = (ev) => {
    ev.preventDefault();
    failAll(`the worker failed: ${ev.message || 'could not load worker.js or pkg/ (run web/build.sh)'}`);
  };
}

function failAll(message) {
  for (const [, p] of pending) p.reject(new Error(message));
  pending.clear();
}

// After a trap (e.g. out of memory) the wasm instance is unusable: start afresh.
function restartWorker(reason) {
  worker.terminate();
  failAll(reason);
  startWorker();
  modelLoaded(false);
  embedderLoaded(false);
  showModelError(`${reason}\nThe worker was restarted; load the model again.`);
}

function call(op, args, onEvent) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, onEvent });
    worker.postMessage({ id, op, args });
  });
}

// ---- formatting ------------------------------------------------------------------------------

const fmtTime = (s) => (s < 1e-3 ? `${(s * 1e6).toFixed(0)} µs` : s < 1 ? `${(s * 1e3).toFixed(2)} ms` : `${s.toFixed(3)} s`);
function fmtBytes(b) {
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return `${b.toFixed(i ? 1 : 0)} ${u[i]}`;
}
// Full precision: the test reads these numbers back and compares them with the native run.
const num = (x) => String(x);

// The progress handler of a model load: a byte count while the files are read, then an
// indeterminate bar with `building` while the weights are converted.
function loadProgress(status, prog, building) {
  return (msg) => {
    if (msg.type !== 'progress') return;
    if (msg.phase === 'reading') {
      if (msg.total) prog.value = msg.loaded / msg.total;
      else prog.removeAttribute('value');
      setStatus(status, 'running', `reading ${fmtBytes(msg.loaded)}${msg.total ? ` of ${fmtBytes(msg.total)}` : ''}`);
    } else {
      prog.removeAttribute('value');
      setStatus(status, 'running', building);
    }
  };
}

function setStatus(el, state, text) { el.dataset.state = state; el.textContent = text; }

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(tag === 'svg' || attrs.svg ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);
  for (const [k, v] of Object.entries(attrs)) if (k !== 'svg') e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Horizontal-free, dependency-free bar chart: groups of bars with labels, into an <svg>.
// series: [{name, color}], groups: [{label, values: [number|null], notes: [string]}]
function barChart(svg, { title, series, groups, unit }) {
  svg.replaceChildren();
  const W = 420, H = 200, left = 44, bottom = 28, top = 34;
  const max = Math.max(1e-9, ...groups.flatMap((g) => g.values.filter((v) => v != null)));
  const plotH = H - bottom - top;
  svg.append(el('text', { svg: 1, x: left, y: 14, 'font-weight': 600 }, title));
  for (let t = 0; t <= 4; t++) {
    const y = top + plotH - (plotH * t) / 4;
    svg.append(el('line', { svg: 1, x1: left, x2: W - 8, y1: y, y2: y, class: 'axis' }));
    svg.append(el('text', { svg: 1, x: left - 4, y: y + 4, 'text-anchor': 'end' }, ((max * t) / 4).toPrecision(2)));
  }
  const gw = (W - left - 8) / Math.max(1, groups.length);
  const bw = Math.min(46, (gw - 10) / series.length);
  groups.forEach((g, gi) => {
    const x0 = left + gi * gw + (gw - bw * series.length) / 2;
    g.values.forEach((v, si) => {
      const x = x0 + si * bw;
      if (v == null) {
        svg.append(el('text', { svg: 1, x: x + bw / 2, y: top + plotH - 4, 'text-anchor': 'middle', fill: '#b3261e' }, g.notes?.[si] || '✕'));
        return;
      }
      const h = (plotH * v) / max;
      svg.append(el('rect', { svg: 1, x: x + 1, y: top + plotH - h, width: bw - 2, height: h, fill: series[si].color }));
      if (series.length === 1 || groups.length <= 3) {
        svg.append(el('text', { svg: 1, x: x + bw / 2, y: top + plotH - h - 3, 'text-anchor': 'middle' }, v.toPrecision(3)));
      }
    });
    svg.append(el('text', { svg: 1, x: left + gi * gw + gw / 2, y: H - 10, 'text-anchor': 'middle' }, g.label));
  });
  if (series.length > 1) {
    series.forEach((s, i) => {
      const x = W - 150 + i * 70;
      svg.append(el('rect', { svg: 1, x, y: 5, width: 10, height: 10, fill: s.color }));
      svg.append(el('text', { svg: 1, x: x + 14, y: 14 }, s.name));
    });
  }
  svg.append(el('text', { svg: 1, x: 4, y: top + plotH / 2, transform: `rotate(-90 10 ${top + plotH / 2})` }, unit));
}

const COLORS = { naive: '#9aa5b1', blocked: '#2f6fdf', int8: '#e08a1e', flash: '#2f6fdf' };

// ---- matmul panel ----------------------------------------------------------------------------

$('#mm-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = $('#mm-status');
  const n = Number($('#mm-size').value);
  const seed = Number($('#mm-seed').value);
  const repeat = Number($('#mm-repeat').value);
  const backends = [...document.querySelectorAll('input[name=mm-backend]:checked')].map((c) => c.value);
  const tbody = $('#mm-table tbody');
  tbody.replaceChildren();
  $('#mm-run').disabled = true;
  const results = [];
  let failed = false;
  for (const backend of backends) {
    setStatus(status, 'running', `running ${backend} ${n}³…`);
    const tr = el('tr', { 'data-backend': backend });
    tr.append(el('td', {}, backend));
    tbody.append(tr);
    try {
      const r = await call('matmul', { backend, m: n, k: n, n, seed, repeat, check: false });
      results.push({ backend, r });
      tr.dataset.report = JSON.stringify(r);
      tr.append(
        el('td', { class: 'time' }, fmtTime(r.seconds)),
        el('td', { class: 'gflops' }, r.gflops.toFixed(2)),
        el('td', { class: 'sum' }, num(r.output.sum)),
        el('td', { class: 'sumsq' }, num(r.output.sum_sq)),
        el('td', { class: 'head' }, r.output.head.map(num).join(', ')),
        el('td', { class: 'insum' }, num(r.inputs.sum)),
      );
    } catch (e) {
      failed = true;
      tr.append(el('td', { class: 'refused', colspan: 6 }, e.message));
    }
  }
  barChart($('#mm-chart'), {
    title: `matmul ${n}³, f32, 1 thread`,
    unit: 'GFLOP/s',
    series: [{ name: 'GFLOP/s', color: '#2f6fdf' }],
    groups: results.map(({ backend, r }) => ({ label: backend, values: [r.gflops] })),
  });
  // Bars in each backend's colour.
  $('#mm-chart').querySelectorAll('rect').forEach((rect, i) => rect.setAttribute('fill', COLORS[results[i]?.backend] || '#2f6fdf'));
  setStatus(status, failed ? 'error' : 'done', failed ? 'finished with errors' : 'done');
  $('#mm-run').disabled = false;
});

// ---- attention panel -------------------------------------------------------------------------

$('#at-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = $('#at-status');
  const ns = $('#at-ns').value.split(/[ ,]+/).filter(Boolean).map(Number);
  const heads = Number($('#at-heads').value);
  const headDim = Number($('#at-dim').value);
  const budget = Number($('#at-budget').value) * 1024 * 1024;
  const causal = $('#at-causal').checked;
  // Flash attention lives in the blocked backend; naive runs on the naive backend.
  const flashBackend = info.backends.includes('blocked') ? 'blocked' : 'naive';
  const tbody = $('#at-table tbody');
  tbody.replaceChildren();
  $('#at-errors').replaceChildren();
  $('#at-run').disabled = true;
  const groups = [];
  const errors = new Set();
  for (const n of ns) {
    const tr = el('tr', { 'data-n': n });
    tr.append(el('td', {}, String(n)));
    tbody.append(tr);
    const g = { label: String(n), values: [], notes: [] };
    for (const [algo, backend] of [['naive', 'naive'], ['flash', flashBackend]]) {
      tr.dataset[`${algo}Backend`] = backend;
      setStatus(status, 'running', `N=${n}: ${algo}…`);
      try {
        const r = await call('attention', { backend, algo, heads, seq_len: n, head_dim: headDim, causal, max_memory: budget, seed: 7, repeat: 3 });
        tr.append(el('td', { class: `${algo}-time` }, fmtTime(r.seconds)), el('td', { class: `${algo}-scratch` }, fmtBytes(r.scratch_bytes)));
        tr.dataset[algo] = JSON.stringify(r);
        g.values.push(r.seconds * 1e3);
        g.notes.push('');
      } catch (e) {
        tr.append(el('td', { class: `${algo}-time refused`, colspan: 2, title: e.message }, 'refused'));
        tr.dataset[algo] = JSON.stringify({ error: e.message });
        g.values.push(null);
        g.notes.push('✕');
        errors.add(`${algo}, N=${n}: ${e.message}`);
      }
    }
    groups.push(g);
  }
  for (const msg of errors) $('#at-errors').append(el('li', {}, msg));
  barChart($('#at-chart'), {
    title: `attention, ${heads} heads × d=${headDim}${causal ? ', causal' : ''}`,
    unit: 'ms',
    series: [{ name: 'naive', color: COLORS.naive }, { name: 'flash', color: COLORS.flash }],
    groups,
  });
  setStatus(status, 'done', 'done');
  $('#at-run').disabled = false;
});

// ---- model panel -----------------------------------------------------------------------------

function showModelError(message) {
  const e = $('#model-error');
  e.hidden = !message;
  e.textContent = message || '';
}

function modelLoaded(yes) {
  $('#gen-run').disabled = !yes || !info?.model;
}

$('#load-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = $('#load-status');
  const prog = $('#load-progress');
  const file = $('#model-file').files[0];
  const args = file ? { file, backend: $('#model-backend').value } : { url: $('#model-url').value, backend: $('#model-backend').value };
  showModelError('');
  modelLoaded(false);
  $('#model-summary').hidden = true;
  $('#load-run').disabled = true;
  prog.hidden = false;
  prog.value = 0;
  setStatus(status, 'running', 'loading…');
  try {
    const summary = await call('load', args, loadProgress(status, prog, `building the model (${args.backend} weights)…`));
    $('#model-summary').textContent = summary.text;
    $('#model-summary').hidden = false;
    setStatus(status, 'done', `loaded in ${summary.load_seconds.toFixed(2)} s`);
    modelLoaded(true);
  } catch (e) {
    setStatus(status, 'error', 'failed');
    showModelError(e.message);
  } finally {
    prog.hidden = true;
    $('#load-run').disabled = false;
  }
});

$('#gen-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = $('#gen-status');
  const prompt = $('#gen-prompt').value;
  $('#gen-output .prompt').textContent = prompt;
  const out = $('#gen-output .completion');
  out.textContent = '';
  $('#gen-ids').textContent = '';
  showModelError('');
  $('#gen-run').disabled = true;
  $('#gen-stop').disabled = false;
  const ids = [];
  setStatus(status, 'running', 'prefill…');
  try {
    const r = await call('generate', { prompt, max_tokens: Number($('#gen-max').value), kv_cache: $('#gen-kv').checked }, (msg) => {
      if (msg.type !== 'token') return;
      out.textContent += msg.token.text;
      ids.push(msg.token.id);
      $('#gen-ids').textContent = ids.join(' ');
      setStatus(status, 'running', `${ids.length} tokens…`);
    });
    $('#gen-ids').textContent = r.ids.join(' ');
    $('#gen-status').dataset.tokensPerSecond = String(r.tokens_per_second);
    setStatus(status, 'done', `${r.ids.length} tokens · prefill ${fmtTime(r.prefill_seconds)} · decode ${r.tokens_per_second.toFixed(1)} tok/s${r.stopped ? ' · stopped' : ''}`);
  } catch (e) {
    setStatus(status, 'error', 'failed');
    showModelError(e.message);
  } finally {
    $('#gen-stop').disabled = true;
    modelLoaded(true);
  }
});

$('#gen-stop').addEventListener('click', () => worker.postMessage({ op: 'stop' }));

// ---- semantic-search panel -------------------------------------------------------------------

// The files of a sentence-transformers directory the encoder reads, by their path in it.
const EMBED_FILES = ['model.safetensors', 'tokenizer.json', 'config.json', 'sentence_bert_config.json', '1_Pooling/config.json', 'modules.json'];

function showSearchError(message) {
  const e = $('#search-error');
  e.hidden = !message;
  e.textContent = message || '';
}

function embedderLoaded(yes) {
  $('#search-run').disabled = !yes;
}

// A picked file's path in the model directory: the pooling config is the one `config.json`
// under `1_Pooling/` (a folder pick gives the relative path; a file pick only the name).
function embedFileName(file) {
  const path = file.webkitRelativePath || file.name;
  return /(^|\/)1_Pooling\/config\.json$/.test(path) ? '1_Pooling/config.json' : file.name;
}

// The model files picked with either chooser (the folder wins), only those the encoder reads.
function pickedEmbedFiles() {
  const picked = $('#emb-dir').files.length ? $('#emb-dir').files : $('#emb-files').files;
  return [...picked].map((file) => ({ name: embedFileName(file), file })).filter((f) => EMBED_FILES.includes(f.name));
}

$('#emb-load-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = $('#emb-load-status');
  const prog = $('#emb-progress');
  const backend = $('#emb-backend').value;
  const files = pickedEmbedFiles();
  const args = files.length ? { files, backend } : { url: $('#emb-url').value, backend };
  showSearchError('');
  embedderLoaded(false);
  $('#emb-summary').hidden = true;
  $('#emb-load-run').disabled = true;
  prog.hidden = false;
  prog.value = 0;
  setStatus(status, 'running', 'loading…');
  try {
    const summary = await call('embedLoad', args, loadProgress(status, prog, `building the encoder (${backend} weights)…`));
    $('#emb-summary').textContent = `${summary.text}\nfiles: ${summary.files.join(', ')}`;
    $('#emb-summary').hidden = false;
    setStatus(status, 'done', `loaded in ${summary.load_seconds.toFixed(2)} s`);
    embedderLoaded(true);
  } catch (e) {
    setStatus(status, 'error', 'failed');
    showSearchError(e.message);
  } finally {
    prog.hidden = true;
    $('#emb-load-run').disabled = false;
  }
});

function countLines() {
  const n = $('#search-lines').value.split('\n').filter((l) => l.trim()).length;
  $('#search-count').textContent = n ? `about ${n} lines` : '';
}
$('#search-lines').addEventListener('input', countLines);

// A text file of lines goes into the text area, where it can be edited before searching.
$('#search-file').addEventListener('change', async () => {
  const file = $('#search-file').files[0];
  if (!file) return;
  $('#search-lines').value = await file.text();
  countLines();
  $('#search-lines').dataset.loaded = file.name;
});

$('#search-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const status = $('#search-status');
  const tbody = $('#search-table tbody');
  showSearchError('');
  $('#search-run').disabled = true;
  setStatus(status, 'running', 'embedding…');
  try {
    const r = await call('search', { query: $('#search-query').value, text: $('#search-lines').value, top_k: Number($('#search-top').value) });
    tbody.replaceChildren();
    for (const h of r.results) {
      const tr = el('tr', { 'data-index': h.index, 'data-score': num(h.score) });
      tr.append(el('td', {}, String(h.rank)), el('td', { class: 'score' }, h.score.toFixed(4)), el('td', { class: 'line' }, h.line));
      tbody.append(tr);
    }
    // The whole reply (with the query's ids and embedding), for the test to compare with native.
    $('#search-table').dataset.report = JSON.stringify(r);
    status.dataset.sentencesPerSecond = String(r.sentences_per_s);
    const what = r.cached_lines ? `query embedded (${r.lines} lines' embeddings reused)` : `${r.embedded} sentences embedded (query + lines)`;
    setStatus(status, 'done', `${r.lines} lines ranked · ${what} in ${fmtTime(r.seconds)} · ${r.sentences_per_s.toFixed(1)} sentences/s, ${r.tokens_per_s.toFixed(0)} tokens/s`);
  } catch (e) {
    setStatus(status, 'error', 'failed');
    showSearchError(e.message);
  } finally {
    embedderLoaded(true);
  }
});

// ---- start -----------------------------------------------------------------------------------

let info = null;
startWorker();
call('info')
  .then((i) => {
    info = i;
    $('#build').textContent = `nanotensor-web ${i.version} · backends: ${i.backends.join(', ')} · simd128: ${i.simd128 ? 'on' : 'off'} · relaxed simd: ${i.relaxed_simd ? 'on' : 'off'} · model: ${i.model ? 'yes' : 'not in this build'}`;
    const box = $('#mm-backends');
    for (const b of i.backends) {
      const lab = el('label');
      const cb = el('input', { type: 'checkbox', name: 'mm-backend', value: b });
      cb.checked = true;
      lab.append(cb, document.createTextNode(` ${b}`));
      box.append(lab);
    }
    // Every backend of the build (the library's registry), best suited to the page first; a
    // backend without a label here is listed by its name.
    const labels = { int8: 'int8', blocked: 'blocked f32', naive: 'naive f32 (slow)' };
    const rank = (b) => { const r = ['int8', 'blocked', 'naive'].indexOf(b); return r < 0 ? 3 : r; };
    const sel = $('#model-backend');
    for (const b of [...i.backends].sort((x, y) => rank(x) - rank(y))) {
      // A backend's settings (int8: its scales) come from the library's defaults, as the CLI's.
      const settings = i.settings[i.backends.indexOf(b)];
      sel.append(new Option(settings ? `${labels[b] || b} (${settings})` : labels[b] || b, b));
    }
    // The encoder: float32 first (the exact one), then int8.
    const embRank = (b) => { const r = ['blocked', 'int8', 'naive'].indexOf(b); return r < 0 ? 3 : r; };
    for (const b of [...i.backends].sort((x, y) => embRank(x) - embRank(y))) {
      const settings = i.settings[i.backends.indexOf(b)];
      $('#emb-backend').append(new Option(settings ? `${labels[b] || b} (${settings})` : labels[b] || b, b));
    }
    document.body.dataset.ready = 'true';
  })
  .catch((e) => {
    $('#build').textContent = `could not start: ${e.message}`;
    $('#build').className = 'error';
    document.body.dataset.ready = 'error';
  });
