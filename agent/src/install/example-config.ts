import { AGENT_RUNTIME_DIR, AGENT_STATE_DIR } from './agent-unit.js';

/**
 * The example /etc/keep/agent.yaml `keep agent install` writes when none
 * exists: every job kind, commented, valid as written (test/install-units.test.ts
 * runs check-config on it) so an administrator edits a working file.
 */
export function exampleAgentConfig(envFile: string): string {
  return `# keep agent's config: the jobs \`keep agent run\` runs on their schedules.
# Check it with \`keep agent check-config --config THIS_FILE\`; reload with \`systemctl reload keep-agent\`.
# No secrets here (check-config refuses password:, token: ...): name files of mode 0600 instead,
# here or in ${envFile}.

repository:
  # a keepd (grpcs://host:port, token in KEEP_TOKEN_FILE, CA in KEEP_CA), or a local directory
  location: grpcs://keepd.example.net:7420
  # password_file: /etc/keep/password      (default: KEEP_PASSWORD_FILE from the environment file)
  # token_file: /etc/keep/token            (default: KEEP_TOKEN_FILE)
  # ca_file: /etc/keep/ca.pem              (default: KEEP_CA)

# the state file (last runs); the unit's StateDirectory
state_dir: ${AGENT_STATE_DIR}
# \`keep agent status\` asks here (mode 0600, owner only); the unit's RuntimeDirectory
socket: ${AGENT_RUNTIME_DIR}/agent.sock
# host: db1                                (default: the hostname)

jobs:
  # files: back up paths, with the exclude options of \`keep backup\`
  - name: system
    type: files
    paths: [/etc, /home, /root, /var/www]
    exclude: ["*.tmp", /home/*/.cache]
    exclude_caches: true
    one_file_system: true
    exclude_larger_than: 2G
    # exclude_file: [/etc/keep/excludes]     (must exist)
    # tier sets the default schedule (its RPO apart), compression and retention:
    # critical (1 min RPO), high (5 min), standard (15 min), lower (1 h)
    tier: standard
    tags: [system]
    # source: web1-system                    (default: the job's name)
    schedule:
      every: 15m             # or cron: "30 2 * * *"; without a schedule, the tier's RPO apart
      jitter: 2m             # a random delay, so many hosts do not start at once

  # command: run a program and back up its standard output as one file; a non-zero exit
  # fails the run and commits nothing. The unit keeps only CAP_DAC_READ_SEARCH, so the
  # program cannot switch users: connect as a role with a password (PGPASSFILE in the
  # environment file) rather than through sudo -u postgres.
  - name: app-db
    type: command
    argv: [pg_dump, --format=custom, "--dbname=postgresql://backup@localhost/app"]
    stdin_name: app.dump
    tier: lower              # an hour's RPO: hourly dumps
    compression: low         # pg_dump's custom format is compressed already
    schedule:
      every: 1h

  # postgres: base backups on the schedule (default from the tier: critical 6h, high 12h,
  # standard and lower 24h; the RPO is kept by WAL archiving), and every WAL segment that
  # archive_command = 'keep pg wal-push --source main-db %p' hands to this agent over its
  # socket (run the agent as the postgres user so archive_command can reach the 0600 socket;
  # with no agent running, wal-push pushes directly).
  - name: main-db
    type: postgres
    pgdata: /var/lib/postgresql/16/main
    connection: { socket: /var/run/postgresql, port: 5432, user: postgres }
    tier: high
    checkpoint: spread       # or fast: an immediate checkpoint at the start

  # drill: prove a source restorable on a schedule (default monthly, weekly for critical):
  # restore its latest snapshot into a scratch directory, verify and time it, tell keepd.
  # A PostgreSQL source is recovered in a private server and checked (row counts, checks).
  - name: drill-main-db
    type: drill
    source: main-db
    checks: ["select count(*) > 0 from pg_class"]
    # target: /var/tmp                       (where the scratch directory goes)
    # no_write: true                         (files sources: read and verify only)
`;
}
