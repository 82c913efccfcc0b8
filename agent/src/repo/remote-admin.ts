import { create } from '@bufbuild/protobuf';
import { CheckReport, ForgetOptions, ForgetResult, KeepError, PruneReport, TokenView } from '@keep/core';
import {
  CheckRequestSchema,
  CheckResponse,
  CreateTokenRequestSchema,
  CreateTokenResponse,
  ForgetResponse,
  forgetToWire,
  GetReportRequestSchema,
  GetReportResponse,
  GetStatusRequestSchema,
  GetStatusResponse,
  ListAlertsRequestSchema,
  ListAlertsResponse,
  ListAuditRequestSchema,
  ListAuditResponse,
  ListTokensRequestSchema,
  ListTokensResponse,
  PruneRequestSchema,
  PruneResponse,
  RevokeTokenRequestSchema,
  TokenRecord,
} from '@keep/proto';
import { connect, repoLocation } from './open.js';
import { RemoteConnection } from './remote.js';

/** A token as `keepd token list --json` shows it: grants, never the hash. */
function tokenRow(w: TokenRecord): TokenView {
  return { id: w.id, role: w.role, sources: [...w.sources], dedup: w.dedup, created: Number(w.createdMs), ...(w.revoked ? { revoked: true } : {}) };
}

/** keepd's refusal of a token that is no admin's, said plainly. */
function adminOnly(e: unknown): never {
  if (e instanceof KeepError && e.code === 'PERMISSION_DENIED') throw new KeepError('PERMISSION_DENIED', `keep admin needs an admin token (keepd token create --role admin): ${e.message}`);
  throw e;
}

function parsed<T>(json: string, what: string): T {
  try {
    return JSON.parse(json) as T;
  } catch {
    throw new KeepError('INTERNAL', `keepd sent ${what} that is not valid JSON`);
  }
}

/**
 * keepd's administration RPCs (`keep admin ...`; admin tokens): each answer
 * is the JSON of the keepd command it stands for. No passphrase: none of
 * these needs the repository key.
 */
export class AdminClient {
  private constructor(private readonly conn: RemoteConnection) {}

  /** The keepd in KEEP_REPO (the first that answers of a list), with the token of KEEP_TOKEN / KEEP_TOKEN_FILE. */
  static async open(env: NodeJS.ProcessEnv = process.env): Promise<AdminClient> {
    const conn = await connect(repoLocation(env), env);
    if (!(conn instanceof RemoteConnection)) {
      await conn.close();
      throw new KeepError('INVALID_ARGUMENT', 'keep admin talks to a keepd: set KEEP_REPO (or -r) to grpc://HOST:PORT or grpcs://HOST:PORT');
    }
    return new AdminClient(conn);
  }

  /** A unary call with no deadline (check and prune take as long as they take), refusals in keep admin's words. */
  private call<Res>(method: Parameters<RemoteConnection['call']>[0], req: unknown): Promise<Res> {
    return this.conn.call<Res>(method, req, 0).catch(adminOnly);
  }

  async status(): Promise<Record<string, unknown>> {
    return parsed((await this.call<GetStatusResponse>('getStatus', create(GetStatusRequestSchema, {}))).reportJson, 'a status report');
  }

  async alerts(): Promise<Record<string, unknown>> {
    return parsed((await this.call<ListAlertsResponse>('listAlerts', create(ListAlertsRequestSchema, {}))).reportJson, 'an alerts report');
  }

  /** keepd report: the JSON and the Markdown keepd rendered (the agent has no formatter of its own for it) */
  async report(since: string | undefined): Promise<{ report: Record<string, unknown>; markdown: string }> {
    const r = await this.call<GetReportResponse>('getReport', create(GetReportRequestSchema, { since: since ?? '' }));
    return { report: parsed(r.reportJson, 'a DR report'), markdown: r.markdown };
  }

  async check(o: { readData: boolean; readDataSubset?: number }): Promise<CheckReport> {
    const r = await this.call<CheckResponse>('check', create(CheckRequestSchema, { readData: o.readData, readDataSubset: o.readDataSubset ?? 0 }));
    return parsed(r.reportJson, 'a check report');
  }

  /** Forget (and prune when asked) by core's engine on keepd, as `keepd forget`. */
  async forget(o: ForgetOptions): Promise<ForgetResult> {
    return parsed((await this.call<ForgetResponse>('forget', forgetToWire(o))).reportJson, 'a forget report');
  }

  async prune(o: { dryRun: boolean; repackBelow?: number }): Promise<PruneReport> {
    return parsed((await this.call<PruneResponse>('prune', create(PruneRequestSchema, { dryRun: o.dryRun, repackBelow: o.repackBelow }))).reportJson, 'a prune report');
  }

  async tokens(): Promise<TokenView[]> {
    return (await this.call<ListTokensResponse>('listTokens', create(ListTokensRequestSchema, {}))).tokens.map(tokenRow);
  }

  /** The new token (shown once by the caller) and its grants. */
  async createToken(o: { role: string; sources: string[]; allSources: boolean; dedup?: string }): Promise<{ token: string; record: TokenView }> {
    const r = await this.call<CreateTokenResponse>('createToken', create(CreateTokenRequestSchema, { role: o.role, sources: o.sources, allSources: o.allSources, dedup: o.dedup ?? '' }));
    if (!r.record) throw new KeepError('INTERNAL', 'keepd created a token without its record');
    return { token: r.token, record: tokenRow(r.record) };
  }

  async revokeToken(id: string): Promise<void> {
    await this.call('revokeToken', create(RevokeTokenRequestSchema, { id }));
  }

  async audit(f: { since?: string; source?: string; event?: string }): Promise<Record<string, unknown>[]> {
    const r = await this.call<ListAuditResponse>('listAudit', create(ListAuditRequestSchema, { since: f.since ?? '', source: f.source ?? '', event: f.event ?? '' }));
    return parsed(r.recordsJson, 'audit records');
  }

  close(): Promise<void> {
    return this.conn.close();
  }
}
