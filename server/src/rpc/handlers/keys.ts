import fs from 'node:fs';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { KeepError, REPO_FILES } from '@keep/core';
import { AddKeyResponseSchema, GetConfigResponseSchema, PROTOCOL_VERSION, RemoveKeyResponseSchema } from '@keep/proto';
import { RpcCalls } from '../call.js';
import { admitKeyFile } from '../key-rules.js';
import { audit } from '../../audit/log.js';

/** The repository's configuration and key files: GetConfig, AddKey, RemoveKey. */
export function keyHandlers(rpc: RpcCalls) {
  const { d } = rpc;
  const warnedKeys = new Set<string>();
  const usableKeyFiles = () => {
    for (const k of d.repo.damagedKeyFiles()) if (!warnedKeys.has(k.problem)) warnedKeys.add(k.problem), d.log.warn({ key: k.id, problem: k.problem }, 'skipping a damaged key file (an admin removes it: keep key remove ID)');
    return d.repo.keyFiles();
  };

  return {
    getConfig: rpc.unary('GetConfig', 'any', (req: { protocolVersion: number }) => {
      if (req.protocolVersion > PROTOCOL_VERSION) {
        throw new KeepError('INVALID_ARGUMENT', `client speaks protocol ${req.protocolVersion}, this keepd speaks ${PROTOCOL_VERSION}: upgrade keepd`);
      }
      return create(GetConfigResponseSchema, {
        protocolVersion: PROTOCOL_VERSION,
        configJson: fs.readFileSync(path.join(d.repo.dir, REPO_FILES.config), 'utf8'),
        // Only usable key files go out: a damaged one would stop older agents (warned about once here).
        keyFilesJson: usableKeyFiles().map((f) => JSON.stringify(f)),
        readOnly: Boolean(d.readOnly?.()),
        // issue 21: agents may send several blobs per UploadRequest
        batchedUploads: true,
      });
    }),

    addKey: rpc.unary('AddKey', ['agent', 'admin'], async (req: { keyFileJson: string }, p) => {
      rpc.writable();
      const key = admitKeyFile(d.repo, req.keyFileJson, p);
      await d.repo.addKeyFile(key);
      await audit(d.repo).record('key.add', p, { key: key.id });
      return create(AddKeyResponseSchema, {});
    }),

    removeKey: rpc.unary('RemoveKey', ['admin'], async (req: { keyId: string }, p) => {
      rpc.writable();
      await d.repo.removeKeyFile(req.keyId);
      await audit(d.repo).record('key.remove', p, { key: req.keyId });
      return create(RemoveKeyResponseSchema, {});
    }),
  };
}
