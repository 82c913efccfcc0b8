import fs from 'node:fs';
import path from 'node:path';
import { InstallReport, installedProgram, writeUnitFile } from '@keep/core';
import { KEEPD_UNIT_NAME, keepdUnit } from './keepd-unit.js';

export const DEFAULT_KEEPD_DATA = '/var/lib/keepd';
export const DEFAULT_KEEPD_USER = 'keep';

export interface KeepdInstallOptions {
  data: string;
  user: string;
  listen: string;
  unitDir: string;
  prefix?: string;
  dryRun: boolean;
}

/** `keepd install`: keepd.service (replaced by a second install); the data directory is left to keepd init. */
export function installKeepd(o: KeepdInstallOptions): InstallReport {
  const data = path.resolve(o.data);
  const program = installedProgram('keepd', o.prefix);
  const tlsDir = path.join(data, 'tls');
  const tls = fs.existsSync(path.join(tlsDir, 'server.pem')) ? { cert: path.join(tlsDir, 'server.pem'), key: path.join(tlsDir, 'server-key.pem') } : undefined;
  const unit = path.join(o.unitDir, KEEPD_UNIT_NAME);
  const text = keepdUnit({ program, data, listen: o.listen, user: o.user, tls });
  const files = [writeUnitFile(unit, text, o.dryRun)];
  const next = [
    `id ${o.user} || useradd --system --home-dir ${data} --shell /usr/sbin/nologin ${o.user}`,
    `a new repository: ${program} init --data ${data} && chown -R ${o.user}: ${data} && chmod 700 ${data}`,
    `systemctl daemon-reload && systemctl enable --now ${KEEPD_UNIT_NAME}`,
    `journalctl -u keepd -o cat -f; ${program} status --data ${data}`,
  ];
  return { unit, program, files, next, text };
}
