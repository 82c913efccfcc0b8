import fs from 'node:fs';
import path from 'node:path';
import { originalFile } from './source-map.js';

/**
 * Self time of V8 .cpuprofile files (node --cpu-prof: one per thread, workers included) summed by
 * stage of backup or restore (issue 21). A function's stage comes from its file (our rooms, the
 * native packages: blake-hash, zstd-napi, fastcdc-wasm, lmdb, grpc-js...) and, for Node's own
 * fs/crypto functions, from its name; anything else (Buffer helpers, builtins without a file)
 * takes its caller's stage, so a Buffer.concat in the uploader counts as framing. Functions in a
 * bundle are named by their source file through the bundle's source map (source-map.ts).
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber?: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export type Side = 'agent' | 'keepd';

/** [stage, test on "url functionName"]; the first that matches wins. */
const RULES: [string, RegExp][] = [
  ['GC', /^ \(garbage collector\)$/],
  ['hashing / verify', /@napi-rs[/+]blake-hash|core\/dist\/ids\.js|node:internal\/crypto\/hash| (blake3|hash\w*|createHash|digest)$/i],
  ['compression', /zstd-napi|core\/dist\/compress\.js/],
  ['chunking', /fastcdc-wasm|core\/dist\/(chunker|gear-cdc|chunker-params)\.js/],
  ['sealing / opening', /core\/dist\/blob\/|core\/dist\/keys\/subkeys|node:internal\/crypto\/(cipher|keys|random)/],
  ['worker hand-off', /core\/dist\/parallel\/|agent\/dist\/restore\/(worker-pool|restore-jobs)\.js|node:internal\/worker|node:internal\/per_context\/messageport/],
  ['LMDB index', /\/lmdb\/|msgpackr|core\/dist\/index\/|core\/dist\/(blob-index|state-store|copy-index)\.js/],
  ['pack write / read', /core\/dist\/pack\/|core\/dist\/blob-writer\.js/],
  ['audit log', /server\/dist\/audit\//],
  ['GC', /core\/dist\/gc\//],
  ['keepd receive / sessions', /server\/dist\/(rpc|sessions|dedup-scope|limits|ownership)|core\/dist\/sessions\//],
  ['framing / gRPC', /@grpc\/grpc-js|@bufbuild\/protobuf|proto\/dist\/|agent\/dist\/repo\/remote|node:internal\/http2|node:http2|node:net|node:internal\/stream_base_commons|node:internal\/streams|node:internal\/js_stream_socket/],
  ['walk / stat', /agent\/dist\/backup\/(archiver|unchanged|metadata|recorded-meta|safe-open)\.js|agent\/dist\/selection\/|node:internal\/fs\/\S* \w*(stat|readdir|opendir|open|close|realpath|lstat|Dir)\w*$/i],
  ['read / write files', /agent\/dist\/restore\/(target-fs|overwrite|restore-worker|existing-entries|target-delete)\.js|node:internal\/fs\/|node:fs /],
  ['backup / restore logic', /agent\/dist\/(backup|restore|tree)\/|core\/dist\/(tree|dag|snapshot)\//],
  // node:vm compiles the agent's bundle (startup/code-cache.ts); bundle lines without a source are esbuild's module glue
  ['start-up / module load', /node:internal\/(modules|bootstrap|main|process\/pre_execution|deps\/cjs-module-lexer)|node:vm |agent\/dist\/(startup\/|keep\.cjs |launch\.mjs )|server\/dist\/keepd\.mjs /],
  ['native, unattributed ((program))', /^ \(program\)$/],
];

/** Names without a file of their own, or helpers used by every stage: they take the caller's stage. */
const INHERIT = /^(|node:buffer|node:internal\/buffer|node:events|node:internal\/util.*|node:internal\/validators|node:internal\/errors|node:internal\/process\/task_queues|node:internal\/timers)$/;

/** keepd reads and writes no source files: its file system time is its packs'. */
const KEEPD_FS = new Set(['read / write files', 'walk / stat']);

/** The file a frame's function comes from: its source file when it sits in a bundle with a source map. */
function fileOf(frame: CallFrame): string {
  return frame.url.startsWith('node:') ? frame.url : originalFile(frame.url, frame.lineNumber, frame.columnNumber ?? 0).replace(/\\/g, '/');
}

export function stageOf(frame: CallFrame, side: Side = 'agent'): string | undefined {
  const file = fileOf(frame);
  const key = `${file} ${frame.functionName}`;
  if (frame.functionName === '(idle)' || frame.functionName === '(root)') return undefined;
  for (const [stage, re] of RULES) if (re.test(key)) return side === 'keepd' && KEEPD_FS.has(stage) ? 'pack write / read' : stage;
  return INHERIT.test(file) ? undefined : 'other';
}

export interface StageTotals {
  /** stage -> profiled self time, seconds (idle excluded) */
  seconds: Map<string, number>;
  /** profiled files left in "other", by self time: what a better rule would place */
  otherFiles: Map<string, number>;
  profiles: number;
}

export function emptyTotals(): StageTotals {
  return { seconds: new Map(), otherFiles: new Map(), profiles: 0 };
}

/** Add one profile's self time, by stage, to `t`. */
export function addProfile(t: StageTotals, p: CpuProfile, side: Side = 'agent'): void {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stage = new Map<number, string | null>();
  const resolve = (id: number): string | null => {
    const known = stage.get(id);
    if (known !== undefined) return known;
    const n = byId.get(id)!;
    if (n.callFrame.functionName === '(idle)') return stage.set(id, null), null;
    const own = stageOf(n.callFrame, side);
    const up = parent.get(id);
    const s = own ?? (up !== undefined ? resolve(up) : null) ?? 'other';
    stage.set(id, s);
    return s;
  };
  for (let i = 0; i < p.samples.length; i++) {
    // a sample lasts until the next one
    const us = p.timeDeltas[i + 1] ?? 0;
    const s = resolve(p.samples[i]);
    if (s === null) continue;
    t.seconds.set(s, (t.seconds.get(s) ?? 0) + us / 1e6);
    if (s === 'other') {
      const url = fileOf(byId.get(p.samples[i])!.callFrame) || '(no file)';
      t.otherFiles.set(url, (t.otherFiles.get(url) ?? 0) + us / 1e6);
    }
  }
  t.profiles++;
}

/** Every .cpuprofile in `paths` (files, or directories searched recursively). */
export function profileFiles(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (fs.statSync(p).isDirectory()) {
      for (const e of fs.readdirSync(p, { withFileTypes: true, recursive: true }))
        if (e.isFile() && e.name.endsWith('.cpuprofile')) out.push(path.join(e.parentPath, e.name));
    } else out.push(p);
  }
  return out.sort();
}

export function totalsOf(paths: string[], side: Side = 'agent'): StageTotals {
  const t = emptyTotals();
  for (const f of profileFiles(paths)) addProfile(t, JSON.parse(fs.readFileSync(f, 'utf8')) as CpuProfile, side);
  return t;
}

/**
 * The table: profiled seconds and share per stage and, when the process's measured CPU-s is
 * given, CPU-s per GB of `bytes` (the share times the measured CPU: samples are wall time of
 * each thread, which a loaded machine stretches, and threads without a profile - libuv's pool,
 * V8's helpers - spend CPU too; the scale puts the table on the process's own total).
 */
export function stageRows(t: StageTotals, bytes: number, measuredCpuS: number | null): { header: string[]; rows: string[][] } {
  const total = [...t.seconds.values()].reduce((a, b) => a + b, 0);
  const scale = measuredCpuS !== null && total > 0 ? measuredCpuS / total : null;
  const gb = bytes / 1e9;
  const rows = [...t.seconds.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([stage, s]) => [stage, s.toFixed(2), `${((s / total) * 100).toFixed(1)}%`, scale === null ? 'n/a' : ((s * scale) / gb).toFixed(2)]);
  rows.push(['total', total.toFixed(2), '100%', scale === null ? 'n/a' : ((total * scale) / gb).toFixed(2)]);
  return { header: ['stage', 'profiled s', 'share', 'CPU-s/GB'], rows };
}

export function topOther(t: StageTotals, n = 8): string[] {
  return [...t.otherFiles.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([f, s]) => `${s.toFixed(2)} s  ${f}`);
}
