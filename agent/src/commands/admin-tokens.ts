import { AuditView, formatAuditRecord, formatTokens, KeepError } from '@keep/core';
import { parse } from '../terminal/args.js';
import { show, withAdmin } from './admin-run.js';

/**
 * `keep admin token create|list|revoke`: `keepd token ...` over gRPC. A
 * created token is printed once, on stdout (the terminal or the pipe the
 * operator chose), and never written anywhere else.
 */
export async function tokenCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'create') {
    const { values } = parse(rest, { role: { type: 'string' }, source: { type: 'string', multiple: true }, 'all-sources': { type: 'boolean' }, dedup: { type: 'string' } });
    if (!values.role) throw new KeepError('INVALID_ARGUMENT', 'token create needs --role agent|admin|replica');
    const { token, record } = await withAdmin((a) => a.createToken({ role: values.role!, sources: values.source ?? [], allSources: Boolean(values['all-sources']), dedup: values.dedup }));
    show(values.json, { token, id: record.id, role: record.role, sources: record.sources, dedup: record.dedup }, () => token);
  } else if (sub === 'list') {
    const { values } = parse(rest, {});
    const rows = await withAdmin((a) => a.tokens());
    show(values.json, rows, () => formatTokens(rows));
  } else if (sub === 'revoke') {
    const { values, positionals } = parse(rest, {});
    const id = positionals[0];
    if (!id) throw new KeepError('INVALID_ARGUMENT', 'usage: keep admin token revoke ID');
    await withAdmin((a) => a.revokeToken(id));
    show(values.json, { revoked: id }, () => `revoked ${id}`);
  } else throw new KeepError('INVALID_ARGUMENT', 'usage: keep admin token create|list|revoke');
}

/** `keep admin audit list`: `keepd audit list` over gRPC (--since is read against keepd's clock). */
export async function auditCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'list') throw new KeepError('INVALID_ARGUMENT', 'keep admin audit takes list (keepd audit verify runs on the server)');
  const { values } = parse(rest, { since: { type: 'string' }, source: { type: 'string' }, event: { type: 'string' } });
  const records = await withAdmin((a) => a.audit({ since: values.since, source: values.source, event: values.event }));
  show(values.json, records, () => records.map((r) => formatAuditRecord(r as unknown as AuditView)).join('\n'));
}
