/**
 * The audit log's group commit (issue 17 item 6): a real keepd takes many
 * concurrent audited calls (ReportRuns over gRPC, each with its own number
 * of runs) while keepd's shell creates tokens in other processes. Each call
 * answers only once its record is in the log, every call has exactly one
 * record, seqs and times run in order, and `keepd audit verify` proves the
 * chain: batching changed neither the format nor the order.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDirs } from './helpers.js';
import { createToken, keepdInit, keepdJson, killAllKeepd, RawClient, runKeepd, startKeepd, wire } from './keepd-harness.js';

const CALLS = 24;
const SHELL_TOKENS = 3;

describe('audit appends are batched off the event loop', () => {
  const tmp = tempDirs();
  afterAll(killAllKeepd);

  it('many concurrent audited calls make one valid chain, in order, each durable when answered', async () => {
    const data = path.join(tmp.make('keep-audit-batch-'), 'data');
    await keepdInit(data);
    const agent = await createToken(data, 'agent', { sources: ['db'] });
    const keepd = await startKeepd(data);
    const { grpc, protobuf, proto } = await wire();
    const client = new RawClient(grpc, `127.0.0.1:${keepd.port}`, agent.token);
    const report = () => ({ id: crypto.randomBytes(16).toString('hex'), source: 'db', job: 'db', kind: 'command', reason: 'scheduled', attempt: 1, startMs: 1n, endMs: 2n, result: 'success' });
    // call i reports i+1 runs, so its record is told apart by `runs`
    const call = (i: number) =>
      client.unary('ReportRuns', protobuf.toBinary(proto.ReportRunsRequestSchema, protobuf.create(proto.ReportRunsRequestSchema, { reports: Array.from({ length: i + 1 }, report) }))).then((r) => {
        expect(r.ok, r.ok ? '' : r.details).toBe(true);
        // answered: its record is already in the log's files
        const text = fs.readdirSync(path.join(data, 'audit')).map((f) => fs.readFileSync(path.join(data, 'audit', f), 'utf8')).join('');
        expect(text).toContain(`"runs":${i + 1},`);
      });
    const shell = Array.from({ length: SHELL_TOKENS }, () => runKeepd(['token', 'create', '--role', 'agent', '--source', 'web', '--data', data]));
    await Promise.all([...Array.from({ length: CALLS }, (_, i) => call(i)), ...shell.map(async (p) => expect((await p).code).toBe(0))]);

    const v = await runKeepd(['audit', 'verify', '--data', data, '--json']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const report1 = JSON.parse(v.stdout);
    expect(report1.ok).toBe(true);
    const recs: { seq: number; time: string; event: string; fields: Record<string, any> }[] = await keepdJson(['audit', 'list', '--data', data]);
    expect(report1.checkpoint.seq).toBe(recs.at(-1)!.seq);
    expect(recs.map((r) => r.seq)).toEqual(recs.map((_, i) => recs[0].seq + i));
    for (let i = 1; i < recs.length; i++) expect(Date.parse(recs[i].time)).toBeGreaterThanOrEqual(Date.parse(recs[i - 1].time));
    const runs = recs.filter((r) => r.event === 'runs.report').map((r) => r.fields.runs as number);
    expect(runs.sort((a, b) => a - b)).toEqual(Array.from({ length: CALLS }, (_, i) => i + 1));
    expect(recs.filter((r) => r.event === 'token.create')).toHaveLength(1 + SHELL_TOKENS);

    // a call made after the burst lands after it
    await call(CALLS);
    const after: { event: string; fields: Record<string, any> }[] = await keepdJson(['audit', 'list', '--data', data]);
    expect(after.at(-1)).toMatchObject({ event: 'runs.report', fields: { runs: CALLS + 1 } });
    await keepd.stop();
    expect((await runKeepd(['audit', 'verify', '--data', data])).code).toBe(0);
  });
});
