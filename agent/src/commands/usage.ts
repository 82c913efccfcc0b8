import { FORGET_POLICY_USAGE } from '@keep/core';
import { GLOBAL_FLAGS_USAGE } from '../terminal/global-flags.js';

/**
 * keep's usage text, one entry per command and subcommand ("key add",
 * "pg wal-push"): `keep COMMAND --help`, `-h` and `keep help COMMAND` print
 * it before the command runs (main.ts), so help needs no repository.
 * test/cli-help.test.ts checks that every flag a command parses is here.
 */
const EXIT_CODES = `exit codes: 0 ok, 1 fatal error, 2 bad usage, 3 backup saved but some entries could not be read
(listed as warnings), 4 damage found (check, restore), 10 no repository, 11 repository locked,
12 wrong passphrase, 130 interrupted (restic's; 2 and 4 are Keep's own)`;

const GLOBAL = `${GLOBAL_FLAGS_USAGE}
  --help, -h                   usage (keep COMMAND --help for one command)
under --json an error is one {"message_type":"exit_error","code":N,"message":"..."} object on stderr`;

const OVERVIEW = `keep — deduplicating, end-to-end encrypted backups

usage: keep [global flags] COMMAND [options]      (keep COMMAND --help for one command)

  init                       create the repository's master key, wrapped by the passphrase
  backup PATH...             back up files and directories (or --stdin)
  snapshots                  list snapshots
  forget                     remove snapshots by a retention policy (restic's; admin tokens over gRPC)
  tag [SNAPSHOT...]          add, remove or set snapshots' tags (admin tokens over gRPC)
  restore SNAPSHOT|latest    restore a snapshot into --target DIR
  drill [SNAPSHOT|latest]    prove a snapshot restorable: restore into scratch, verify, time it, tell keepd
  ls SNAPSHOT [PATH]         list a snapshot's files
  diff SNAPSHOT SNAPSHOT     what changed between two snapshots
  find PATTERN...            find files and directories across snapshots
  dump SNAPSHOT PATH         a file's content, or a directory as a tar or zip archive
  cat config|snapshot|tree|key|blob   a repository object for debugging, decrypted here
  stats                      repository size and space saved
  check                      verify the repository
  key add|list|remove|passwd manage passphrases
  agent run|check-config|status|install   the resident service: jobs on schedules from /etc/keep/agent.yaml
  admin SUBCOMMAND           administer a keepd over gRPC with an admin token (status, alerts, forget, prune,
                             check, token, audit list): no shell on the repository server needed
  pg SUBCOMMAND              PostgreSQL base backups, WAL archiving, point-in-time restore
  version                    keep's version, the repository formats it reads and writes (also --version)
  help [COMMAND]             this text, or one command's

${GLOBAL}

${EXIT_CODES}`;

const PG_ENV = `every pg subcommand takes --env-file FILE (KEY=VALUE lines: KEEP_REPO, KEEP_PASSWORD_FILE,
KEEP_TOKEN_FILE, KEEP_CA, KEEP_PG_SOURCE) and --source N (default KEEP_PG_SOURCE, else pg-<system id>)`;

const PG = `keep pg — PostgreSQL base backups, WAL archiving and point-in-time restore

  keep pg backup --pgdata DIR [--source N] [--host H|--socket DIR] [--port P] [--user U] [--dbname D]
                 [--checkpoint fast|spread] [--tag T]... [--tier T] [--compression C] [--pg-bin DIR]
  keep pg wal-push [--source N] PATH              archive_command = '... keep pg wal-push %p'
  keep pg wal-fetch [--source N] [--prefetch N] NAME PATH   restore_command = '... keep pg wal-fetch %f %p'
  keep pg restore --pgdata DIR [--at TIME] [--source N] [--base ID] [--timeline latest|current|N]
                  [--tablespace OID=DIR]... [--target-action promote|pause|shutdown] [--archive-mode off|preserve] [--dry-run]
  keep pg config [--source N] [--tier T]          archive_command, archive_timeout (the tier's RPO) and restore_command
  keep pg info [--source N]                       base backups, WAL and the recovery window

${PG_ENV} and --json`;

/** Usage by command path ("backup", "key add", "pg wal-push"); "" is the overview. */
export const USAGE: Record<string, string> = {
  '': OVERVIEW,
  init: `usage: keep init [--kdf-cost K] [--chunk-min SIZE --chunk-avg SIZE --chunk-max SIZE]

Create the repository's master key, wrapped by the passphrase (an embedded repository's
directory is created too; a keepd's must exist: keepd init).
  --kdf-cost K        scrypt cost as log2 N (default 17)
  --chunk-min SIZE, --chunk-avg SIZE, --chunk-max SIZE
                      content-defined chunk sizes (512K, 2M; embedded repositories only)`,
  backup: `usage: keep backup [options] PATH...
       keep backup --stdin --stdin-name NAME [options]

Back up files and directories; an unchanged file (size, mtime, inode) is not read again.
  --source N          the source the snapshot belongs to (default: --host, else the hostname)
  --host H            the host name recorded (default: this machine's)
  --tag T             a tag on the snapshot (repeatable)
  --tier T            critical|high|standard|lower: retention, compression and sync defaults
  --compression C     none|low|medium|high (default medium, or the tier's)
  --parent ID         compare against this snapshot instead of the source's latest
  --force             read every file again (no parent)
  --stdin             back up standard input as one file named by --stdin-name NAME
  --quiet, -q         no progress (a terminal's status line, --json's status lines); the summary stays
  --no-scan           no scan for the progress's total (the parent snapshot's size stands in)
progress: on a terminal a status line (percent, files and bytes of the total, rate, ETA); with --json
restic's JSON lines: "status" each second (KEEP_PROGRESS_FPS), "error" on stderr per skipped entry, one "summary"
selecting files (restic's patterns: * ? [..] **, a leading / anchors, !PATTERN re-includes):
  --exclude, -e PATTERN          leave out what matches (repeatable); --iexclude ignores case
  --exclude-file FILE            patterns from FILE (repeatable); --iexclude-file ignores case
  --exclude-caches               leave out directories holding a CACHEDIR.TAG (the tag file stays)
  --exclude-if-present NAME[:HEADER]   leave out directories holding NAME (repeatable)
  --exclude-larger-than SIZE     leave out files larger than SIZE (k, m, g, t)
  --one-file-system, -x          do not cross mount points
  --files-from FILE              paths or globs to back up, one a line (repeatable);
                                 --files-from-verbatim FILE (no globs), --files-from-raw FILE (NUL-separated)`,
  snapshots: `usage: keep snapshots [--source N] [--group-by LIST]

List snapshots (all sources, or --source N); --json gives restic's fields (id, short_id, time,
tree, paths, hostname, username, tags) beside Keep's.
  --group-by LIST     list per group of source,paths,tags (any subset)`,
  forget: `usage: keep forget [policy] [--group-by LIST] [--source N] [--dry-run] [--prune]

Remove snapshots a retention policy does not keep, by the engine keepd forget runs: embedded,
or by keepd for an admin token (an agent token may add snapshots, never remove them).
--json prints restic's array of groups (group_key, keep, remove, reasons).
${FORGET_POLICY_USAGE}`,
  tag: `usage: keep tag --add T | --remove T | --set T [--source N] [SNAPSHOT...]

Rewrite snapshots' tags as restic does: each changed snapshot gets a new id and MAC and the old
record is removed (embedded, or an admin token over gRPC). No snapshot named: every snapshot
(of --source).
  --add T, --remove T, --set T   (repeatable)`,
  restore: `usage: keep restore SNAPSHOT|latest --target DIR [options]

Restore a snapshot (an id prefix, or latest of --source).
  --target DIR, -t DIR  where to write (the snapshot's absolute paths go below it)
  --source N            the source for latest / --at
  --at TIME             the newest snapshot at or before TIME
  --include, -i PATTERN   restore only what matches (restic's patterns; repeatable); --iinclude ignores case
  --exclude, -e PATTERN   leave out what matches (repeatable); --iexclude ignores case
                        a pattern that matches nothing is an error (exit 1)
  --overwrite MODE        always (default) | if-changed (size, mtime, then content by chunk ids) |
                        if-newer | never: what to do with a file already in the target
  --delete                remove what the target holds and the snapshot lacks (inside what is restored)
  --dry-run               write nothing; -v lists what would be restored, updated, deleted
  --verify                read back every restored file and compare it with the snapshot (exit 4 on a mismatch)
  --verbose, -v           one line per item (restored, updated, unchanged, skipped, deleted)
  --quiet, -q             no progress (status line, --json's status lines); --json ends with restic's summary line
a target that is not empty is restored into, as restic does: --overwrite decides each existing file
  --allow-unauthenticated  accept snapshots whose origin cannot be verified
progress: percent, files and bytes of the total (counted from the snapshot before writing), rate, ETA
(--json: restic's status lines, with seconds_remaining). Ctrl-C stops cleanly: exit 130 and what is
not restored; a file being written is removed, never left under its name. To finish, run the same
restore with --overwrite if-changed: complete files are skipped without reading them again.`,
  drill: `usage: keep drill [SNAPSHOT|latest] --source SOURCE [--target DIR | --no-write] [--at TIME] [--check SQL]... [--json]

A restore drill: restore the snapshot (default latest of --source) the way a recovery would (the same
restore code and parallelism) into a fresh scratch directory, read every file back against the snapshot
(size, content ids), check the metadata (type, mode, mtime, symlink targets), then remove the scratch
directory. Reports wall time, bytes/s and files/s, and sends the result to keepd (ReportDrills), which
keeps each source's drill history and its RTO estimate. A failed drill is reported and exits 4.
  --source N            the snapshot's source (required)
  --target DIR          where the scratch directory goes (default: the temp directory); a scratch
                        directory of a killed drill found there is removed first (only ours: marked)
  --no-write            fetch, decrypt and verify every file without writing (hosts without scratch space)
  --json                one line: the drill report (message_type "drill")

A PostgreSQL source (one with keep pg backup base backups) is drilled by recovering it: the latest base
backup (or SNAPSHOT) and its WAL are restored into the scratch directory as keep pg restore does, a
private PostgreSQL on a Unix socket there (never a TCP port, archiving off) recovers it, first to where
it is consistent (the row counts keep pg backup recorded are compared there), then to the target and
promoted; pg_amcheck runs where installed, then each --check. Reports the time to a consistent and to a
promoted database and the last transaction replayed; the server and scratch are removed afterwards.
  --at TIME             the recovery target (default: the end of the archived WAL)
  --check SQL           a statement that must return true on the recovered database (repeatable; a
                        drill job's are its "checks")
  --dbname DB           where the checks run (default postgres)
  --pg-bin DIR          PostgreSQL's programs (default: the backup's major version, else PATH)`,
  ls: `usage: keep ls SNAPSHOT|latest [PATH] [--source N] [--at TIME] [--allow-unauthenticated]

List a snapshot's files (below PATH).`,
  diff: `usage: keep diff SNAPSHOT SNAPSHOT [--allow-unauthenticated]

What changed between two snapshots: + added, - removed, M modified.`,
  find: `usage: keep find PATTERN... [options]

Find files and directories in snapshots, newest snapshot first (restic's find). A pattern is
matched against each whole path: without a leading / it matches at any depth (a bare name:
that name anywhere), with one from the root; * ? [..] ** as in --exclude. A matching
directory brings what lies below it.
  --snapshot, -s ID        search only this snapshot (repeatable)
  --source N, --host, -H H only snapshots of this source / taken on this host (repeatable)
  --path P                 only snapshots that backed up this path (repeatable: all of them)
  --tag T[,T]              only snapshots with all these tags (repeatable: any of the lists)
  --ignore-case, -i        match regardless of case
  --long, -l               type, mode, owner, size and mtime of each entry
  --oldest, -O TIME / --newest, -N TIME   only entries modified at or after / at or before TIME
  --reverse, -R            oldest snapshot first
  --allow-unauthenticated  also search snapshots whose origin cannot be verified
  --json                   [{snapshot, source, time, hits, matches: [...]}], snapshots with hits`,
  dump: `usage: keep dump SNAPSHOT[:SUBDIR] PATH [options]

Write a file of a snapshot to stdout, or a directory as an archive (restic's dump). Entries
carry their path in the snapshot (no leading /); with SNAPSHOT:SUBDIR, paths are relative to
SUBDIR (PATH / dumps all of it). Modes, owners, mtimes and symlinks are kept; an archive is
never written onto a terminal.
  --archive, -a tar|zip    a directory's format (default tar; zip has no hardlinks, whole seconds)
  --target, -t FILE        write to FILE (replaced if it exists) instead of stdout
  --source N               latest of this source
  --at TIME                the newest snapshot at or before TIME
  --allow-unauthenticated  accept a snapshot whose origin cannot be verified`,
  cat: `usage: keep cat config | snapshot ID|latest | tree ID|SNAPSHOT[:PATH] | key ID | blob ID [--source N]

Print a repository object for debugging as JSON, decrypted here in the agent (keepd only
holds ciphertext); a data blob comes out as its plaintext bytes. The master key is never
printed (restic's cat masterkey has no counterpart).
  --source N               snapshot and tree: latest of this source`,
  stats: `usage: keep stats [--source N]

Repository size, and the space deduplication and compression saved.`,
  check: `usage: keep check [--read-data | --read-data-subset PCT%]

Verify the repository's structure; --read-data also reads and decrypts every blob,
--read-data-subset a share of the packs. Exit 4 when damage is found.`,
  key: `usage: keep key add|list|remove ID|passwd [--kdf-cost K] [--new-password-file FILE]

Manage the passphrases that unwrap the master key.`,
  'key add': `usage: keep key add [--kdf-cost K] [--new-password-file FILE]

Add a passphrase that unwraps the same master key (from --new-password-file FILE,
KEEP_NEW_PASSWORD(_FILE), or asked twice on a terminal).
  --new-password-file FILE   the new passphrase
  --kdf-cost K        scrypt cost as log2 N (default 17)`,
  'key list': `usage: keep key list

List the key files (the one this passphrase opened is marked).`,
  'key remove': `usage: keep key remove ID

Remove a key file (not the one in use).`,
  'key passwd': `usage: keep key passwd [--kdf-cost K] [--new-password-file FILE]

Replace this passphrase (the new one from --new-password-file FILE, KEEP_NEW_PASSWORD(_FILE),
or asked twice on a terminal).
  --new-password-file FILE   the new passphrase
  --kdf-cost K        scrypt cost as log2 N (default 17)`,
  pg: PG,
  'pg backup': `usage: keep pg backup --pgdata DIR [options]

A base backup of a running PostgreSQL (pg_backup_start/stop over psql).
  --pgdata DIR, -D DIR   the cluster's data directory
  --host H | --socket DIR, --port P, --user U, --dbname D   how psql connects
  --checkpoint fast|spread   (default fast)
  --pg-bin DIR        where psql lives
  --tag T (repeatable), --tier T, --compression C

${PG_ENV}`,
  'pg wal-push': `usage: keep pg wal-push [--source N] [--socket PATH | --direct] PATH

Archive one WAL file: archive_command = 'keep pg wal-push %p' (also archive-push).
A running keep agent with a postgres job of the source stores it (exit 0 once committed);
without one it is pushed directly with the repository variables below.
  --socket PATH       the agent's socket (default KEEP_AGENT_SOCKET, else /var/lib/keep/agent.sock)
  --direct            do not ask the agent
  --tier T, --compression C   for a direct push (the agent uses its job's)

${PG_ENV}`,
  'pg wal-fetch': `usage: keep pg wal-fetch [--source N] [--prefetch N] [--system ID] NAME PATH

Fetch one WAL file: restore_command = 'keep pg wal-fetch %f %p' (also archive-get).
Exit 1 when the file is not archived (recovery ends there), 128 on other failures.
  --prefetch N        fetch the next N segments ahead
  --system ID         the cluster's system identifier, when the source holds several

${PG_ENV}`,
  'pg restore': `usage: keep pg restore --pgdata DIR [options]

Restore a base backup and configure recovery to --at TIME (default: the end of the WAL).
  --pgdata DIR, -D DIR   the (empty) data directory to restore into
  --at TIME           recovery target time
  --base ID           this base backup instead of the newest before --at
  --timeline latest|current|N
  --tablespace OID=DIR   where a tablespace goes (repeatable)
  --target-action promote|pause|shutdown
  --archive-mode off|preserve
  --restore-command CMD  restore_command to write (default keep pg wal-fetch %f %p)
  --dry-run           print the plan only
  --allow-unauthenticated  accept snapshots whose origin cannot be verified

${PG_ENV}`,
  'pg config': `usage: keep pg config [--source N] [--tier T]

The postgresql.conf lines: archive_command, archive_timeout (the tier's RPO) and restore_command.

${PG_ENV}`,
  'pg info': `usage: keep pg info [--source N]

Base backups, archived WAL and the recovery window.

${PG_ENV}`,
  admin: `usage: keep admin status|alerts|report|forget|prune|check|token|audit list [options] [--json]

keepd's own commands run over gRPC on the keepd in KEEP_REPO (grpc:// or grpcs://), with an admin
token (--token-file, KEEP_TOKEN_FILE or KEEP_TOKEN); no passphrase needed. Each prints what its
keepd counterpart prints (--json: the same JSON); keepd audits every call with the token id and
peer address. Another token is refused (PERMISSION_DENIED, exit 1).
  keep admin status [--check]        keepd status
  keep admin alerts                  keepd alerts
  keep admin report [--since 30d]    keepd report (the DR report)
  keep admin forget [policy] ...     keepd forget (with --prune: then collect garbage)
  keep admin prune [--dry-run] ...   keepd prune
  keep admin check [--read-data | --read-data-subset PCT%]   keepd check
  keep admin token create|list|revoke                         keepd token
  keep admin audit list [--since T] [--source S] [--event E]  keepd audit list`,
  'admin status': `usage: keep admin status [--check] [--json]

keepd status over gRPC: per source its newest snapshot and age against the RPO, agents' runs,
replicas, and the watchdog's states.
  --check   one line and monitoring-plugin exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
            (no keepd watching, or keepd could not be asked)`,
  'admin alerts': `usage: keep admin alerts [--json]

keepd alerts over gRPC: the firing alerts, then recently resolved ones, with their deliveries.`,
  'admin report': `usage: keep admin report [--since 30d] [--format md|json] [--json]

keepd report over gRPC: per source, backups attempted and succeeded, RPO compliance, drills and
the measured RTO against its target, replica lag compliance and storage growth over the window.
  --since AGE|TIME      the window's start: 30d (default), 12h, 2026-12-01
  --format md|json      Markdown (default, as keepd renders it) or JSON (--json is --format json)`,
  'admin forget': `usage: keep admin forget [policy] [--group-by LIST] [--source N] [--tier T] [--dry-run] [--prune]

keepd forget over gRPC: remove snapshots a retention policy does not keep (a dry run is audited
too); --prune then collects garbage. Prints keepd forget's report, not restic's (no key here).
${FORGET_POLICY_USAGE}`,
  'admin prune': `usage: keep admin prune [--dry-run] [--repack-below FRACTION] [--json]

keepd prune over gRPC: collect garbage and repack; backups keep running.
  --dry-run             show what would be removed
  --repack-below F      repack packs whose live share is below F (default 0.5)`,
  'admin check': `usage: keep admin check [--read-data | --read-data-subset PCT%] [--json]

keepd check over gRPC: verify the repository without a key. Exit 4 when damage is found.
  --read-data              read every pack
  --read-data-subset PCT%  read this share of the packs`,
  'admin token': `usage: keep admin token create|list|revoke [options] [--json]

keepd's access tokens over gRPC.
  keep admin token create --role agent|admin|replica [--source NAME... | --all-sources] [--dedup source|repository]
      create a token on keepd and print it, once, on stdout (keepd keeps only its hash)
      --role R              agent, admin or replica
      --source NAME         a source an agent token may back up and read (repeatable)
      --all-sources         every source, present and future
      --dedup source|repository   deduplicate against the source's own blobs (default) or the whole repository
  keep admin token list       id, role, sources, dedup scope, revoked (never hashes or secrets)
  keep admin token revoke ID  revoke a token; its open calls end at their next request`,
  'admin audit': `usage: keep admin audit list [--since TIME] [--source S] [--event E] [--json]

keepd's audit records over gRPC, oldest first, as keepd audit list prints them
(keepd audit verify runs on the server).
  --since TIME          from this time (2026-12-01, RFC 3339) or age (7d, 12h, 30m) by keepd's clock
  --source S            only records about source S
  --event E             only this event (token.create) or family (token, admin)`,
  agent: `usage: keep agent run|check-config|status|install [--config FILE]

The resident agent: runs the config's jobs on their schedules (keep agent run --help).
The config defaults to /etc/keep/agent.yaml.`,
  'agent check-config': `usage: keep agent check-config [--config FILE] [--json]

Validate the config without running it: exit 0, or 2 with each error as FILE:LINE: KEY: problem.`,
  'agent run': `usage: keep agent run [--config FILE] [--state-dir DIR] [--grace 60s]

Run the jobs on their schedules in the foreground (for systemd): a JSON log on stdout; SIGTERM
lets the running job finish (aborting it past --grace, nothing committed); SIGHUP reloads the
config (an invalid one keeps the old). The key is unlocked once.`,
  'agent status': `usage: keep agent status [--config FILE] [--state-dir DIR] [--socket PATH] [--json]

The running agent's jobs, their last and next runs (over its 0600 Unix socket).`,
  'agent install': `usage: keep agent install [--config FILE] [--user USER] [--prefix DIR] [--unit-dir DIR] [--grace 60s] [--dry-run] [--json]

Write the systemd unit keep-agent.service (ExecStart: keep agent run --config FILE --grace ...; hardened,
its comments say why), and, only where missing, an example config (FILE, default /etc/keep/agent.yaml)
and the environment file agent.env beside it (mode 0600, secrets by reference). An existing config or
environment file is never overwritten; the unit is replaced. Prints the systemctl steps that follow.
  --user USER         run as USER (default root), reading every file through CAP_DAC_READ_SEARCH alone
  --prefix DIR        ExecStart runs DIR/bin/keep (default: the keep running this command)
  --unit-dir DIR      where the unit goes (default /etc/systemd/system)
  --grace 60s         keep agent run's --grace; TimeoutStopSec is 30s more
  --dry-run           print the unit and what would be written; write nothing`,
  version: `usage: keep version [--json]   (or keep --version)

keep's version, the repository format versions it reads and writes, Node's version and the platform.`,
  help: `usage: keep help [COMMAND [SUBCOMMAND]]

The overview, or one command's usage (as keep COMMAND --help).`,
};
