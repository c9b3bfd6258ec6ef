// The Web Worker that owns the NanoTensor wasm instance. Every kernel run, the whole model
// (load, prefill, decode) and the sentence encoder (load, embed, rank) happen here, so the page
// stays responsive while they compute.
//
// Protocol. Page → worker: {id, op, args}. Worker → page: {id, type, ...} where type is
//   'result'   {value}            the call finished;
//   'error'    {message, fatal}   the library refused (fatal=false) or the instance trapped
//                                 (fatal=true: the page must start a new worker);
//   'progress' {phase, loaded, total}  while a model loads;
//   'token'    {token}            one generated token, as soon as it exists.
// The search panel's calls: 'embedLoad' {files: [{name, file}]} or {url} (a served directory),
// plus {backend} → the encoder's summary; 'search' {query, text, top_k} → the ranked lines, the
// query's embedding and the timing; 'embed' {texts} → ids and embeddings.
// Two builds of the module: with relaxed SIMD (fused multiply-add) where the engine validates
// it, else plain SIMD128. `?wasm=simd128` in the worker's URL forces the plain one.
let nt = null;
async function loadModule() {
  const forcePlain = new URL(self.location.href).searchParams.get('wasm') === 'simd128';
  if (!forcePlain) {
    try {
      const resp = await fetch('./pkg-relaxed/nanotensor_web_bg.wasm');
      if (resp.ok) {
        const bytes = await resp.arrayBuffer();
        if (WebAssembly.validate(bytes)) {
          const m = await import('./pkg-relaxed/nanotensor_web.js');
          await m.default({ module_or_path: bytes });
          return m;
        }
      }
    } catch (_) { /* fall back to the plain build */ }
  }
  const m = await import('./pkg/nanotensor_web.js');
  await m.default();
  return m;
}
const ready = loadModule().then((m) => { nt = m; });
let model = null;       // nt.WebModel, once loaded
let embedder = null;    // nt.WebEmbedder, once loaded
let stopRequested = false;

const post = (msg) => self.postMessage(msg);

// The sentence encoder's files, by their path in a sentence-transformers directory.
const WEIGHTS = 'model.safetensors';
const EMBED_TEXT_FILES = ['tokenizer.json', 'config.json', 'sentence_bert_config.json', '1_Pooling/config.json', 'modules.json'];
const EMBED_REQUIRED = [WEIGHTS, 'tokenizer.json', 'config.json'];

// A string thrown by Rust is the library's error message; anything else is a trap or a JS bug.
function describe(err) {
  if (typeof err === 'string') return { message: err, fatal: false };
  let why = '';
  try { why = nt.last_failure(); } catch (_) { /* the instance is gone */ }
  const base = err && err.message ? err.message : String(err);
  if (err instanceof WebAssembly.RuntimeError || err instanceof RangeError) {
    return { message: why ? `${why} (${base})` : `the WebAssembly instance stopped: ${base}`, fatal: true };
  }
  return { message: why || base, fatal: false };
}

// Reads a Response or a File to bytes, reporting progress.
async function readAll(stream, total, id) {
  const reader = stream.getReader();
  const chunks = [];
  let loaded = 0;
  let lastPost = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    const now = performance.now();
    if (now - lastPost > 50) {
      post({ id, type: 'progress', phase: 'reading', loaded, total });
      lastPost = now;
    }
  }
  post({ id, type: 'progress', phase: 'reading', loaded, total: total || loaded });
  const bytes = new Uint8Array(loaded);
  let off = 0;
  for (const c of chunks) { bytes.set(c, off); off += c.length; }
  return bytes;
}

const ops = {
  async info() { return JSON.parse(nt.build_info()); },
  async matmul(args) { return JSON.parse(nt.matmul(JSON.stringify(args))); },
  async attention(args) { return JSON.parse(nt.attention(JSON.stringify(args))); },

  // args: {url} or {file}, plus {backend}
  async load(args, id) {
    if (model) { model.free(); model = null; }
    let bytes;
    if (args.file) {
      bytes = await readAll(args.file.stream(), args.file.size, id);
    } else {
      const resp = await fetch(args.url);
      if (!resp.ok) throw new Error(`could not fetch ${args.url}: HTTP ${resp.status}`);
      bytes = await readAll(resp.body, Number(resp.headers.get('content-length')) || 0, id);
    }
    post({ id, type: 'progress', phase: 'building', loaded: bytes.length, total: bytes.length });
    const t0 = performance.now();
    model = new nt.WebModel(bytes, args.backend);
    const summary = JSON.parse(model.summary());
    summary.load_seconds = (performance.now() - t0) / 1000;
    return summary;
  },

  // args: {files: [{name, file}]} (name: the file's path in the model directory) or {url} (the
  // directory, served), plus {backend}.
  async embedLoad(args, id) {
    if (embedder) { embedder.free(); embedder = null; }
    const texts = {};
    let weights = null;
    if (args.files) {
      for (const { name, file } of args.files) {
        if (name === WEIGHTS) weights = await readAll(file.stream(), file.size, id);
        else if (EMBED_TEXT_FILES.includes(name)) texts[name] = await file.text();
      }
      if (!weights) throw new Error(`${WEIGHTS} is missing: pick it with the other model files`);
    } else {
      const base = args.url.endsWith('/') ? args.url : `${args.url}/`;
      for (const name of [WEIGHTS, ...EMBED_TEXT_FILES]) {
        const resp = await fetch(base + name);
        if (!resp.ok) {
          // Only the optional sentence-transformers configs may be absent.
          if (EMBED_REQUIRED.includes(name)) throw new Error(`could not fetch ${base + name}: HTTP ${resp.status}`);
          continue;
        }
        if (name === WEIGHTS) weights = await readAll(resp.body, Number(resp.headers.get('content-length')) || 0, id);
        else texts[name] = await resp.text();
      }
    }
    post({ id, type: 'progress', phase: 'building', loaded: weights.length, total: weights.length });
    const t0 = performance.now();
    embedder = new nt.WebEmbedder(weights, JSON.stringify(texts), args.backend);
    const summary = JSON.parse(embedder.summary());
    summary.load_seconds = (performance.now() - t0) / 1000;
    summary.files = Object.keys(texts).concat(WEIGHTS).sort();
    return summary;
  },

  // args: {query, text, top_k}: ranks the lines of text (the library's rule: non-blank lines).
  async search(args) {
    if (!embedder) throw new Error('no embedding model is loaded');
    const lines = nt.split_lines(args.text);
    return JSON.parse(embedder.search(args.query, lines, args.top_k));
  },

  // args: {texts}
  async embed(args) {
    if (!embedder) throw new Error('no embedding model is loaded');
    return JSON.parse(embedder.embed(JSON.stringify(args.texts)));
  },

  // args: {prompt, max_tokens, kv_cache}; streams 'token' messages, returns the totals.
  async generate(args, id) {
    if (!model) throw new Error('no model is loaded');
    stopRequested = false;
    const start = JSON.parse(model.start(args.prompt, args.kv_cache, args.max_tokens));
    const ids = [];
    let text = '';
    let decodeSeconds = 0;
    for (let i = 0; i < args.max_tokens && !stopRequested; i++) {
      const tok = JSON.parse(model.next_token());
      ids.push(tok.id);
      text += tok.text;
      if (i > 0) decodeSeconds += tok.seconds; // the first token's time is the prefill
      post({ id, type: 'token', token: tok });
      // Yield to the event loop so a 'stop' message can arrive between tokens.
      await new Promise((r) => setTimeout(r, 0));
    }
    return {
      prompt_ids: start.prompt_ids,
      prefill_seconds: start.prefill_seconds,
      ids,
      text,
      decode_tokens: Math.max(ids.length - 1, 0),
      decode_seconds: decodeSeconds,
      tokens_per_second: ids.length > 1 ? (ids.length - 1) / decodeSeconds : 0,
      stopped: stopRequested,
    };
  },
};

self.onmessage = async (ev) => {
  const { id, op, args } = ev.data;
  if (op === 'stop') { stopRequested = true; return; }
  try {
    await ready;
    if (!(op in ops)) throw new Error(`unknown operation ${op}`);
    const value = await ops[op](args || {}, id);
    post({ id, type: 'result', value });
  } catch (err) {
    const d = describe(err);
    if (d.fatal) { model = null; embedder = null; }
    post({ id, type: 'error', message: d.message, fatal: d.fatal });
  }
};
