import { classifyS3Error, parseS3Url, StoreError } from '@keep/core/store';
import { describe, expect, it } from 'vitest';

describe('S3 store: URLs and error classes', () => {
  it('s3://bucket/prefix parses to a bucket and a prefix ending in /', () => {
    expect(parseS3Url('s3://backups')).toEqual({ bucket: 'backups', prefix: '' });
    expect(parseS3Url('s3://backups/')).toEqual({ bucket: 'backups', prefix: '' });
    expect(parseS3Url('s3://backups/keep/prod')).toEqual({ bucket: 'backups', prefix: 'keep/prod/' });
    expect(parseS3Url('s3://backups/keep/prod//')).toEqual({ bucket: 'backups', prefix: 'keep/prod/' });
    expect(() => parseS3Url('/var/lib/keep')).toThrow(StoreError);
  });

  it('503 SlowDown, 500, 409 conflicts and socket resets are transient; 404 and 412 are answers; 403 is a failure', () => {
    const sdk = (name: string, status?: number, code?: string) => Object.assign(new Error(name), { name, code, $metadata: { httpStatusCode: status } });
    expect(classifyS3Error(sdk('SlowDown', 503))).toBe('transient');
    expect(classifyS3Error(sdk('InternalError', 500))).toBe('transient');
    expect(classifyS3Error(sdk('ConditionalRequestConflict', 409))).toBe('transient');
    expect(classifyS3Error(sdk('TimeoutError'))).toBe('transient');
    expect(classifyS3Error(sdk('Error', undefined, 'ECONNRESET'))).toBe('transient');
    expect(classifyS3Error(sdk('NoSuchKey', 404))).toBe('not-found');
    expect(classifyS3Error(sdk('PreconditionFailed', 412))).toBe('precondition-failed');
    expect(classifyS3Error(sdk('AccessDenied', 403))).toBe('failed');
  });
});
