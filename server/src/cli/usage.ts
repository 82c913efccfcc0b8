import { FORGET_POLICY_USAGE } from '@keep/core';

/**
 * keepd's usage text, one entry per command and subcommand ("token create"):
 * `keepd COMMAND --help`, `-h` and `keepd help COMMAND` print it before the
 * command runs (main.ts), so help needs no data directory.
 * test/cli-help.test.ts checks that every flag a command parses is here.
 */

const EXIT_CODES = `exit codes: 0 ok, 1 fatal error, 2 bad usage, 4 damage found (check), 10 no repository,
11 repository locked, 130 interrupted (serve stops cleanly on SIGINT and SIGTERM: 0)
(restic's, as keep's; 2 and 4 are Keep's own)`;

const GLOBAL = `every command takes --json (one JSON document on stdout; an error is one
{"message_type":"exit_error","code":N,"message":"..."} object on stderr) and --help (-h)`;

const OVERVIEW = `keepd — the Keep repository server

usage: keepd COMMAND --data DIR [options]      (keepd COMMAND --help for one command)

  init                  create an empty repository (agents add the key with keep init)
  serve                 serve the repository over gRPC until SIGTERM
  token create|list|revoke   access tokens for agents, admins, replicas and viewers
  tls init              a private CA and server certificate in DIR/tls
  forget                retention per group of source,paths (restic's rules)
  prune                 collect garbage and repack; backups keep running
  sync                  pull missing snapshots from another keepd
  promote               make a replica a primary
  check                 verify without a key
  status                per source: newest snapshot vs its RPO; agents' last runs; drills and RTO; the watchdog
  alerts                active and recently resolved alerts, with their webhook deliveries
  report                the DR report: backups, RPO compliance, drills and RTO, replica lag, storage growth
  check-config          validate keepd.yaml (policies, watchdog, maintenance)
  audit verify|list     prove the hash-chained audit log; list its records
  rebuild-index         rebuild the LMDB index from pack trailers and snapshot files
  install               write the systemd unit keepd.service
  version               keepd's version, the repository formats it reads and writes (also --version)
  help [COMMAND]        this text, or one command's

${GLOBAL}

${EXIT_CODES}`;

const FORGET = `usage: keepd forget --data DIR [--source N] [policy] [--group-by LIST] [--tier T] [--dry-run] [--prune]

Remove snapshots a retention policy does not keep (restic's rules), per group.
${FORGET_POLICY_USAGE}`;

/** Usage by command path ("serve", "token create"); "" is the overview. */
export const USAGE: Record<string, string> = {
  '': OVERVIEW,
  init: `usage: keepd init --data DIR [--store s3://BUCKET/PREFIX [--s3-path-style] [--attach]] [--chunk-min SIZE --chunk-avg SIZE --chunk-max SIZE]

Create an empty repository in DIR; the first agent's keep init adds its key.
  --store s3://BUCKET/PREFIX   keep packs, snapshot records, key files and the config in an S3-compatible
                               bucket (which must exist); DIR keeps the index, tokens and state. Endpoint,
                               region and credentials come from AWS_ENDPOINT_URL, AWS_REGION,
                               AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws), never argv
  --s3-path-style              bucket in the path, not the host name (Ceph RGW, most S3-compatible servers)
  --attach                     DIR becomes the data directory of the repository the bucket already holds
                               (after the server's disk was lost, or on a new host): the config is copied
                               from the bucket and the index rebuilt from it; tokens and history start empty
  --chunk-min SIZE, --chunk-avg SIZE, --chunk-max SIZE   content-defined chunk sizes (512K, 2M)`,
  serve: `usage: keepd serve --data DIR [options]

Serve the repository over gRPC until SIGTERM or SIGINT (then drain and exit 0).
  --listen HOST:PORT    where to listen (default 127.0.0.1:7420)
  --tls-cert F --tls-key F   serve TLS (grpcs://); keepd tls init makes both
  --metrics HOST:PORT   Prometheus /metrics
  --http HOST:PORT      the operators' dashboard, HTTPS under --tls-cert/--tls-key (plain HTTP on
                        loopback only, unless --insecure); sign in with an admin or viewer token
  --min-free SIZE|PCT%  refuse new backups below this much free space (default 2%)
  --max-connections N   connections held at once (default 4096, below the open-file limit)
  --upstream grpc(s)://HOST:PORT --sync-interval S   a replica pulling continuously (KEEP_UPSTREAM_TOKEN)
  --sync-replicas N [--sync-timeout S] [--sync-all]  a primary whose critical-tier (or all)
                        commits wait for N replicas
  --insecure            plaintext grpc:// upstream, or a plain HTTP --http, off loopback (KEEP_INSECURE=1)
  --config FILE         keepd.yaml: source policies, the watchdog, scheduled maintenance
                        (forget+prune, check; sync: a replica pulling on a schedule, not --upstream)
  --audit-retention D   keep audit records this long (default 400d; 52w, 36h also; a month's segment at a time)`,
  'check-config': `usage: keepd check-config [--config FILE] [--json]

Validate keepd.yaml (default /etc/keep/keepd.yaml). Each problem names file:line: key.
Exit 0 when valid, 2 when not.`,
  token: `usage: keepd token create|list|revoke --data DIR

Access tokens (keepd token create --help).`,
  'token create': `usage: keepd token create --data DIR --role agent|admin|replica|viewer [--source NAME... | --all-sources] [--dedup source|repository]

Create a token and print it (once: keepd keeps only its hash).
  --role agent|admin|replica|viewer   viewer: signs in to the dashboard (serve --http), no RPC
  --source NAME         a source an agent token may back up and read (repeatable)
  --all-sources         every source, present and future
  --dedup source|repository   deduplicate against the source's own blobs (default) or the whole repository`,
  'token list': `usage: keepd token list --data DIR

List tokens: id, role, sources, dedup scope, revoked.`,
  'token revoke': `usage: keepd token revoke ID --data DIR

Revoke a token; its open calls end at their next request.`,
  tls: `usage: keepd tls init --data DIR [--host NAME]...`,
  'tls init': `usage: keepd tls init --data DIR [--host NAME]...

A private CA and a server certificate (for localhost, 127.0.0.1, ::1 and each --host) in DIR/tls;
agents set KEEP_CA=DIR/tls/ca.pem.
  --host NAME           a name or address the certificate is valid for (repeatable)`,
  forget: FORGET,
  prune: `usage: keepd prune --data DIR [--dry-run] [--repack-below FRACTION] [--delete-delay DURATION]

Collect garbage and repack; backups keep running.
  --dry-run             show what would be removed
  --repack-below F      repack packs whose live share is below F (default 0.5)
  --delete-delay D      dropped packs leave the storage only D after (default: 1h on object storage,
                        0 on a directory); each prune deletes those whose delay passed`,
  sync: `usage: keepd sync --data DIR --from grpc(s)://HOST:PORT [--source N] [--insecure] [--store s3://BUCKET/PREFIX [--s3-path-style]]

Pull missing snapshots from another keepd (KEEP_TOKEN: a replica token; KEEP_CA for a private CA).
  --from URL            the upstream keepd
  --source N            only this source
  --store URL           a new replica keeps its repository in this bucket prefix (as keepd init --store)
  --s3-path-style       bucket in the path, not the host name (Ceph RGW)
  --insecure            plaintext grpc:// to a host that is not loopback (KEEP_INSECURE=1)`,
  promote: `usage: keepd promote --data DIR

Make a replica (read-only) a primary: it stops following its upstream and takes writes;
recorded in DIR/role.json (a running keepd follows within a second).`,
  check: `usage: keepd check --data DIR [--read-data | --read-data-subset PCT%]

Verify the repository without a key; --read-data reads every pack, --read-data-subset a share.
Exit 4 when damage is found.`,
  status: `usage: keepd status --data DIR [--check] [--json]

Per source: the newest snapshot and its age against the tier's RPO; PITR windows; the last
run agents reported (keep agent run), consecutive failures and the last failure's time and
class (times are keepd's, from when each report arrived); restore drills agents reported
(keep drill): the last one's outcome and measured time, and the RTO estimate (the drill's start-up
time + the latest snapshot's size at its measured rate) against the target; the watchdog's
states (keepd serve).
  --check   one line and monitoring-plugin exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
            (no keepd watching)`,
  report: `usage: keepd report --data DIR [--since 30d] [--format md|json] [--json]

The disaster-recovery report per source over a window, computed from what keepd recorded:
backups attempted and succeeded (snapshots and agents' run reports), RPO compliance (the share
of the window during which the source's age was within its RPO, from the snapshots' times),
drills and the measured RTO against its target, replica lag compliance (the watchdog's
transitions) and storage growth (bytes each snapshot added; the watchdog's usage samples).
  --since AGE|TIME      the window's start: 30d (default), 12h, 2026-12-01
  --format md|json      Markdown (default) or JSON (--json is --format json)
Runs beside a serving keepd; reads no keepd.yaml (targets come from the tiers, or the watchdog).`,
  alerts: `usage: keepd alerts --data DIR [--json]

Alerts keepd serve raised from the watchdog's transitions (one per condition: a source late,
missed or failing, replica lag, storage, maintenance, a drill failed, overdue or over its RTO): the firing ones, then those resolved in
the last 7 days, each with its deliveries to the receivers in keepd.yaml (alerts.receivers):
delivered, or pending with the attempts so far, the next attempt and the last error.
Runs beside a serving keepd.`,
  audit: `usage: keepd audit verify|list --data DIR

keepd's tamper-evident audit log (DIR/audit/): token changes and new peers, keys, backups,
reads, forget, prune, sync, promote, run reports; with server time, token id and peer address,
never file names or secrets. Both run beside a serving keepd.`,
  'audit verify': `usage: keepd audit verify --data DIR [--against REPLICA_DIR] [--json]

Prove the hash chain: every record's SHA-256, each one's link to the one before (across segments),
consecutive seqs, and the head checkpointed in state.mdb (a truncated log ends before it).
Exit 4 naming the first bad seq when a record was edited, deleted, reordered or cut off.
  --against REPLICA_DIR also check the head checkpoints a replica of this keepd received after
                        each pull (in its state.mdb): each must still be in the log with its hash,
                        so a log cut or rewritten together with this state.mdb is caught too`,
  'audit list': `usage: keepd audit list --data DIR [--since TIME] [--source S] [--event E] [--json]

The records, oldest first.
  --since TIME          from this time (2026-12-01, RFC 3339) or age (7d, 12h, 30m)
  --source S            only records about source S
  --event E             only this event (session.commit) or family (token, session)`,
  'rebuild-index': `usage: keepd rebuild-index --data DIR [--from-trailers] [--json]

Rebuild the LMDB index from the index segments beside the packs (the trailers of packs no
segment covers) and the snapshot files, aside, without opening the current one (stop keepd
serve first); ownership comes from the snapshots.
  --from-trailers       ignore the index segments: read every pack's trailer`,
  install: `usage: keepd install [--data DIR] [--user keep] [--listen ADDR] [--prefix DIR] [--unit-dir DIR] [--dry-run] [--json]

Write the systemd unit keepd.service: keepd serve --data DIR (default /var/lib/keepd) as USER (default
keep), with --tls-cert and --tls-key when keepd tls init made DIR/tls; hardened (the data directory is
all it writes, no home directories, no capabilities; its comments say why). A second install replaces it.
Prints the steps that follow (useradd, keepd init, systemctl).
  --user USER         the unprivileged user keepd runs as, owner of DIR (default keep)
  --listen ADDR       keepd serve's --listen (default 127.0.0.1:7420)
  --prefix DIR        ExecStart runs DIR/bin/keepd (default: the keepd running this command)
  --unit-dir DIR      where the unit goes (default /etc/systemd/system)
  --dry-run           print the unit and what would be written; write nothing`,
  version: `usage: keepd version [--json]   (or keepd --version)

keepd's version, the repository format versions it reads and writes, Node's version and the platform.`,
  help: `usage: keepd help [COMMAND [SUBCOMMAND]]

The overview, or one command's usage (as keepd COMMAND --help).`,
};
