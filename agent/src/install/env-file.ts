/**
 * The agent's environment file (EnvironmentFile= of keep-agent.service),
 * written with mode 0600. It names secrets, never holds them: each is a file
 * of mode 0600 the agent reads at start (repo/credentials.ts).
 */
export function agentEnvFile(dir: string): string {
  return `# keep agent's environment, read by systemd for keep-agent.service (mode 0600).
# Secrets by reference only: each variable names a file of mode 0600, never the secret itself.
# (repository: keys in the config take precedence over these.)

# the repository passphrase, one line
KEEP_PASSWORD_FILE=${dir}/password
# an agent token from \`keepd token create --role agent --source NAME\` (grpc:// and grpcs:// repositories)
#KEEP_TOKEN_FILE=${dir}/token
# keepd's CA certificate from \`keepd tls init\` (grpcs://)
#KEEP_CA=${dir}/ca.pem
# a password file for command jobs that run pg_dump as a role with a password (libpq's ~/.pgpass format)
#PGPASSFILE=${dir}/pgpass
`;
}
