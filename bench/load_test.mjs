// Load test of afd-serve (not run in CI): starts the server on a free loopback port, runs N concurrent streaming
// clients for a fixed time, some of which hang up mid-stream at random, then checks:
//   - every completed stream is complete and exact: its chunks carry exactly max_tokens token ids (return_token_ids)
//     = usage.completion_tokens, and the streamed text equals those ids decoded here, independently, from the model's
//     tokenizer.json (byte-level BPE): no token lost, duplicated or reordered; one finish event, one [DONE];
//   - how many completed streams equal the greedy text of the same prompt run alone (informational: batching
//     changes bf16 rounding, which can flip near-tied greedy choices);
//   - no KV blocks are held and nothing is in flight afterwards (GET /metrics), and the server still answers.
// Prints one JSON summary. Usage:
//   node bench/load_test.mjs --serve build/afd-serve [--clients 64] [--seconds 60] [--disconnect 0.2]
//        [--max-tokens 48] [-- extra afd-serve flags]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const extra = sep >= 0 ? argv.slice(sep + 1) : [];
const opt = { serve: 'build/afd-serve', tokenizer: 'models/pystdlib-moe/tokenizer.json', clients: 64, seconds: 60, disconnect: 0.2, 'max-tokens': 48 };
for (let i = 0; i < (sep >= 0 ? sep : argv.length); i += 2) opt[argv[i].replace(/^--/, '')] = argv[i + 1];
const clients = Number(opt.clients), seconds = Number(opt.seconds), pDisconnect = Number(opt.disconnect);
const maxTokens = Number(opt['max-tokens']);
const prompts = ['import os\n', 'def main():\n', 'class Node:\n    def __init__(self', 'for i in range(',
  'with open(path) as f:\n', 'try:\n    import json\nexcept', 'def add(a, b):', '# utilities\nimport re\n'];

// Byte-level BPE decoding (GPT-2's byte <-> printable-character map), special tokens skipped: what the server's
// decoder must produce for the same ids.
function makeDecoder(path) {
  const tj = JSON.parse(readFileSync(path, 'utf8'));
  const bs = [];
  for (let b = 33; b <= 126; ++b) bs.push(b);
  for (let b = 161; b <= 172; ++b) bs.push(b);
  for (let b = 174; b <= 255; ++b) bs.push(b);
  const cs = bs.slice();
  for (let b = 0, n = 0; b < 256; ++b) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const byteOf = new Map(cs.map((c, i) => [String.fromCodePoint(c), bs[i]]));
  const piece = new Map(), special = new Set();
  for (const [tok, id] of Object.entries(tj.model.vocab)) piece.set(id, tok);
  for (const a of tj.added_tokens) { piece.set(a.id, a.content); if (a.special) special.add(a.id); }
  return (ids) => {
    const bytes = [];
    for (const id of ids) {
      if (special.has(id)) continue;
      for (const ch of piece.get(id) ?? '') bytes.push(byteOf.get(ch));
    }
    return Buffer.from(bytes).toString('utf8');
  };
}
const decode = makeDecoder(opt.tokenizer);

const agent = new http.Agent({ keepAlive: true, maxSockets: clients + 8 });
let port = 0;

// One HTTP request; resolves {status, body}. With onData, the body is handed over as it arrives and `abortAfter`
// (a chunk count) makes the client destroy the connection mid-stream.
function request(method, path, body, onData, abortAfter) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: onData ? false : agent,
      headers: body ? { 'Content-Type': 'application/json' } : {} }, (res) => {
      let text = '', chunks = 0;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        text += d;
        if (onData && ++chunks === abortAfter) {
          req.destroy();
          resolve({ status: res.statusCode, body: text, aborted: true });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode, body: text, aborted: false }));
      res.on('error', (e) => (abortAfter ? resolve({ status: res.statusCode, body: text, aborted: true }) : reject(e)));
    });
    req.on('error', (e) => (abortAfter && req.destroyed ? null : reject(e)));
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

async function metrics() {
  const r = await request('GET', '/metrics');
  const m = {};
  for (const line of r.body.split('\n')) if (line && !line.startsWith('#')) {
    const i = line.lastIndexOf(' ');
    m[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return m;
}

function body(prompt, stream) {
  return { prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream, return_token_ids: true,
    stream_options: stream ? { include_usage: true } : undefined };
}

// Parses an SSE body: text, finish events, usage, [DONE] count.
function parseSse(s) {
  let text = '', finishes = 0, done = 0, usage = null;
  const ids = [];
  for (const ev of s.split('\n\n')) {
    if (!ev) continue;
    if (!ev.startsWith('data: ')) throw new Error('bad event ' + ev);
    const data = ev.slice(6);
    if (data === '[DONE]') { ++done; continue; }
    const j = JSON.parse(data);
    if (j.usage) usage = j.usage;
    for (const c of j.choices) {
      text += c.text;
      if (c.token_ids) ids.push(...c.token_ids);
      if (c.finish_reason) ++finishes;
    }
  }
  return { text, finishes, done, usage, ids };
}

async function main() {
  const server = spawn(opt.serve, ['--port', '0', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  port = await new Promise((resolve, reject) => {
    server.stderr.on('data', (d) => {
      log += d;
      const m = /listening on [0-9.]+:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    server.on('exit', (c) => reject(new Error('afd-serve exited ' + c + ': ' + log)));
  });
  const ref = [];
  for (const p of prompts) {
    const r = JSON.parse((await request('POST', '/v1/completions', body(p, false))).body);
    ref.push(r.choices[0].text);
  }
  const before = await metrics();
  const stats = { completed: 0, disconnected: 0, lost_or_duplicated: 0, bad_usage: 0, bad_framing: 0, errors: 0,
    equal_to_solo_greedy: 0, tokens_received: 0 };
  const t0 = Date.now(), end = t0 + seconds * 1000;
  const firstBad = [];
  async function client(k) {
    let n = 0;
    while (Date.now() < end) {
      const i = (k + n++) % prompts.length;
      const abortAfter = Math.random() < pDisconnect ? 1 + Math.floor(Math.random() * 6) : 0;
      try {
        const r = await request('POST', '/v1/completions', body(prompts[i], true), true, abortAfter);
        if (r.aborted) { ++stats.disconnected; continue; }
        if (r.status !== 200) { ++stats.errors; continue; }
        const s = parseSse(r.body);
        ++stats.completed;
        stats.tokens_received += s.usage ? s.usage.completion_tokens : 0;
        if (s.ids.length !== maxTokens || decode(s.ids) !== s.text) {
          ++stats.lost_or_duplicated;
          if (firstBad.length < 3) firstBad.push({ got: s.text, ids: s.ids });
        }
        if (s.text === ref[i]) ++stats.equal_to_solo_greedy;
        if (!s.usage || s.usage.completion_tokens !== maxTokens) ++stats.bad_usage;
        if (s.finishes !== 1 || s.done !== 1) ++stats.bad_framing;
      } catch (e) {
        ++stats.errors;
      }
    }
  }
  await Promise.all(Array.from({ length: clients }, (_, k) => client(k)));
  const elapsed = (Date.now() - t0) / 1000;
  let after = await metrics();
  for (let i = 0; i < 100 && (after.afd_requests_in_flight > 0 || after.afd_kv_blocks_used > 0); ++i) {
    await new Promise((r) => setTimeout(r, 100));
    after = await metrics();
  }
  const health = await request('GET', '/health');
  const generated = after.afd_completion_tokens_total - before.afd_completion_tokens_total;
  const summary = {
    clients, seconds: elapsed, disconnect_probability: pDisconnect, max_tokens: maxTokens, ...stats,
    requests_per_s: (stats.completed + stats.disconnected) / elapsed,
    completed_per_s: stats.completed / elapsed,
    tokens_per_s_server: generated / elapsed,
    kv_blocks_used_after: after.afd_kv_blocks_used, kv_blocks_total: after.afd_kv_blocks_total,
    in_flight_after: after.afd_requests_in_flight,
    server_disconnects: after.afd_client_disconnects_total - before.afd_client_disconnects_total,
    server_alive: health.status === 200,
    mean_step_ms: 1000 * (after.afd_step_seconds_total - before.afd_step_seconds_total) /
      Math.max(1, after.afd_engine_steps_total - before.afd_engine_steps_total),
    overlap: after.afd_overlap,
  };
  if (firstBad.length) summary.first_bad_streams = firstBad;
  console.log(JSON.stringify(summary, null, 1));
  server.kill('SIGTERM');
  const code = await new Promise((r) => server.on('exit', (c) => r(c)));
  console.log(JSON.stringify({ server_exit_code_after_sigterm: code }));
  const ok = stats.lost_or_duplicated === 0 && stats.bad_usage === 0 && stats.bad_framing === 0 && stats.errors === 0 &&
    summary.kv_blocks_used_after === 0 && summary.in_flight_after === 0 && summary.server_alive && code === 0;
  process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.error(e); process.exit(2); });
