'use strict';
// whisk Node.js action launcher.
//
// Speaks the OpenWhisk action runtime protocol (POST /init, POST /run) over
// HTTP/1.1 on the listening socket it inherits on descriptor $WHISK_RUNTIME_LISTEN_FD
// when that is set (announced as `whisk-runtime-socket: fd <n>` on stdout), else on
// 127.0.0.1:$WHISK_RUNTIME_PORT
// (0 = any free port; announced as `whisk-runtime-port: <port>`), and exits as
// soon as stdin (held open by the platform) reaches EOF. Uses Node built-ins only.

const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { pathToFileURL } = require('url');
const { execFileSync } = require('child_process');
const { AsyncLocalStorage } = require('async_hooks');

const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n';
const NOT_A_DICT = 'The action did not return a dictionary.';
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

let action = null; // the entry function, once /init has succeeded
let queue = Promise.resolve(); // serialises /init and /run handling

// Intra-container concurrency (`__OW_ALLOW_CONCURRENT=true`, from the container's or the
// init environment): /run requests then overlap, and every output line written while an
// activation runs is tagged `\x1e<activation id>\x1f` so the platform can give each
// activation exactly its own lines (and its own tagged sentinels) even when they interleave.
const activation = new AsyncLocalStorage();
const concurrent = () => process.env.__OW_ALLOW_CONCURRENT === 'true';
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream);
  stream.write = (chunk, encoding, cb) => {
    const ctx = activation.getStore();
    if (!ctx) return write(chunk, encoding, cb);
    const text = typeof chunk === 'string' ? chunk
      : Buffer.from(chunk).toString(typeof encoding === 'string' ? encoding : 'utf8');
    let out = '';
    for (const ch of text.split(/(?<=\n)/)) {
      if (ctx.lineStart.get(stream) !== false) out += `\x1e${ctx.id}\x1f`;
      out += ch;
      ctx.lineStart.set(stream, ch.endsWith('\n'));
    }
    return write(out, 'utf8', typeof encoding === 'function' ? encoding : cb);
  };
}

// ---------------------------------------------------------------- helpers

// String(e) that never throws; syntax errors also get their file:line.
function describe(e) {
  try {
    let text = String(e);
    if (e instanceof SyntaxError && typeof e.stack === 'string') {
      const where = e.stack.split('\n', 1)[0];
      if (/:\d+$/.test(where)) text += ` (at ${where})`;
    }
    return text;
  } catch (_) {
    return 'unknown error';
  }
}

// JSON.stringify that returns undefined instead of throwing.
function stringify(value) {
  try { return JSON.stringify(value); } catch (_) { return undefined; }
}

// Writes the end-of-activation marker to stdout and stderr. Going through the
// stream objects (rather than the raw fds) keeps it ordered after any user
// output still queued on a full pipe; resolves once both writes are done.
function writeSentinels() {
  const write = (stream) => new Promise((resolve) => {
    try { stream.write(SENTINEL, () => resolve()); } catch (_) { resolve(); }
  });
  return Promise.all([write(process.stdout), write(process.stderr)]);
}

function send(res, status, body) {
  if (typeof body !== 'string') body = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

// ---------------------------------------------------------------- loading

// Picks the entry function: an export named `name`, else a top-level binding
// of that name (plain source), else `module.exports = fn` for the default.
function pickEntry(exported, local, name) {
  if (exported != null && typeof exported[name] === 'function') return exported[name];
  if (typeof local === 'function') return local;
  if (name === 'main' && typeof exported === 'function') return exported;
  throw new Error(`The action entry point '${name}' is not an exported or top-level function.`);
}

// Plain source: written to a CommonJS file and require()d, so the code gets the
// real `require`, `module`, `exports`, `__filename`, `__dirname`, correct line
// numbers and dynamic import(). A trailer exposes a top-level `function main`.
function loadSource(code, dir, name) {
  const filename = path.join(dir, 'index.cjs');
  let trailer = '';
  if (IDENTIFIER.test(name)) {
    try {
      new Function(`typeof ${name}`); // rejects reserved words like `class`
      trailer = `\n;module.whiskEntry = typeof ${name} === 'function' ? ${name} : undefined;\n`;
    } catch (_) { /* not usable as a binding name; exports only */ }
  }
  fs.writeFileSync(filename, code + trailer);
  const exported = require(filename);
  const mod = require.cache[filename];
  return pickEntry(exported, mod && mod.whiskEntry, name);
}

// Zip archive: extracted with `unzip`; the entry file is package.json "main"
// (or index.js). ES modules work too (import() if require() refuses them).
async function loadZip(bytes, dir, name) {
  const zipFile = path.join(dir, 'action.zip');
  const root = path.join(dir, 'action');
  fs.writeFileSync(zipFile, bytes);
  try {
    execFileSync('unzip', ['-qq', zipFile, '-d', root], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    if (e.status !== 1) { // 1 = warnings only, files were still extracted
      const detail = e.stderr && e.stderr.length ? e.stderr.toString().trim() : e.message;
      throw new Error(`Unable to extract the action archive: ${detail}`);
    }
  }
  let entry = 'index.js';
  const pkgFile = path.join(root, 'package.json');
  if (fs.existsSync(pkgFile)) {
    const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8'));
    if (pkg && typeof pkg.main === 'string' && pkg.main) entry = pkg.main;
  }
  let entryPath;
  try {
    entryPath = require.resolve(path.resolve(root, entry));
  } catch (_) {
    throw new Error(`The action archive has no entry file '${entry}'.`);
  }
  let exported;
  try {
    exported = require(entryPath);
  } catch (e) {
    if (e.code !== 'ERR_REQUIRE_ESM') throw e;
    exported = await import(pathToFileURL(entryPath).href);
  }
  // An ES module namespace without the named export: use its default export.
  if (exported && exported[Symbol.toStringTag] === 'Module' && typeof exported[name] !== 'function') {
    exported = exported.default;
  }
  return pickEntry(exported, undefined, name);
}

async function load(value) {
  const name = typeof value.main === 'string' && value.main ? value.main : 'main';
  if (value.env && typeof value.env === 'object') {
    for (const [key, v] of Object.entries(value.env)) {
      process.env[key] = typeof v === 'string' ? v : JSON.stringify(v);
    }
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whisk-action-'));
  let code = value.code;
  if (value.binary === true) {
    const bytes = Buffer.from(code, 'base64');
    if (bytes.length >= 4 && bytes.readUInt32BE(0) === 0x504b0304) return loadZip(bytes, dir, name);
    code = bytes.toString('utf8'); // not a zip: treat as source text
  }
  return loadSource(code, dir, name);
}

// ---------------------------------------------------------------- handlers

async function handleInit(res, msg) {
  if (action) return send(res, 403, { error: 'Cannot initialize the action more than once.' });
  const value = msg.value && typeof msg.value === 'object' ? msg.value : {};
  if (typeof value.code !== 'string' || !value.code) {
    return send(res, 403, { error: 'Missing main/no code to execute.' });
  }
  try {
    action = await load(value);
  } catch (e) {
    await writeSentinels();
    return send(res, 502, { error: `Initialization has failed due to: ${describe(e)}` });
  }
  send(res, 200, { ok: true });
}

// Runs the action and returns [status, JSON body text].
async function invoke(args) {
  let result;
  try {
    result = action(args);
    const thenable = result !== null && (typeof result === 'object' || typeof result === 'function')
      && typeof result.then === 'function';
    if (!thenable) return encodeResult(result);
  } catch (e) {
    return [502, JSON.stringify({ error: `An error has occurred: ${describe(e)}` })];
  }
  try {
    result = await result;
  } catch (r) {
    const reason = r instanceof Error ? r.message : r === undefined ? {} : r;
    return [200, stringify({ error: reason }) || JSON.stringify({ error: describe(r) })];
  }
  return encodeResult(result);
}

// Only values that serialise to a JSON object or array count as a result.
function encodeResult(result) {
  if (result !== null && typeof result === 'object') {
    const text = stringify(result);
    if (text !== undefined && (text[0] === '{' || text[0] === '[')) return [200, text];
  }
  return [502, JSON.stringify({ error: NOT_A_DICT })];
}

async function handleRun(res, msg) {
  if (!action) return send(res, 403, { error: 'System not ready.' });
  for (const key of Object.keys(msg)) {
    if (key === 'value') continue;
    const v = msg[key];
    process.env[`__OW_${key.toUpperCase()}`] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  if (!('api_key' in msg)) delete process.env.__OW_API_KEY;
  const args = msg.value == null ? {} : msg.value;
  const run = async () => {
    const [status, body] = await invoke(args);
    await writeSentinels();
    return [status, body];
  };
  const [status, body] = concurrent()
    ? await activation.run({ id: String(msg.activation_id || ''), lineStart: new Map() }, run)
    : await run();
  send(res, status, body);
}

function route(req, res, raw) {
  const url = req.url.split('?', 1)[0];
  const handler = req.method === 'POST' && { '/init': handleInit, '/run': handleRun }[url];
  if (!handler) return send(res, 404, { error: 'not found' });
  let msg;
  try {
    msg = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    return send(res, 400, { error: `Invalid JSON request body: ${e.message}` });
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    return send(res, 400, { error: 'The request body must be a JSON object.' });
  }
  // One request at a time, unless concurrency is allowed: then runs overlap (their output
  // is tagged per activation) while /init still waits for everything before it.
  if (handler === handleRun && concurrent()) {
    handler(res, msg).catch(() => res.destroy());
    return;
  }
  queue = queue.then(() => handler(res, msg)).catch(() => res.destroy());
}

// ---------------------------------------------------------------- startup

// An action may close stdout or stderr; writes then fail, which must not crash the launcher.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

// As a container image (`WHISK_RUNTIME_IMAGE=1`, set by whisk's runtime images) the launcher
// listens on every interface and runs until the container is stopped, as OpenWhisk's runtimes
// do. As a local process, the platform holds our stdin open; EOF (or an error) means it left.
const inImage = process.env.WHISK_RUNTIME_IMAGE === '1';
if (!inImage) {
  const quit = () => process.exit(0);
  process.stdin.on('end', quit).on('close', quit).on('error', quit);
  process.stdin.resume();
}

const server = http.createServer({ noDelay: true }, (req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => route(req, res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
  req.on('error', () => res.destroy());
});
server.keepAliveTimeout = 0; // never close idle keep-alive connections ourselves
server.requestTimeout = 0;
const listenFd = inImage ? NaN : Number(process.env.WHISK_RUNTIME_LISTEN_FD || NaN);
if (Number.isInteger(listenFd)) {
  server.listen({ fd: listenFd }, () => process.stdout.write(`whisk-runtime-socket: fd ${listenFd}\n`));
} else {
  server.listen(Number(process.env.WHISK_RUNTIME_PORT) || 0, inImage ? '0.0.0.0' : '127.0.0.1', () => {
    if (!inImage) process.stdout.write(`whisk-runtime-port: ${server.address().port}\n`);
  });
}
