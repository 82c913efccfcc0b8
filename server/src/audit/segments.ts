import fs from 'node:fs';
import path from 'node:path';
import { AUDIT_FILES } from '@keep/core';
import { AuditRecord, decodeLine } from './record.js';

/** One segment file: its path and the seq its name says it starts at. */
export interface Segment {
  file: string;
  name: string;
  firstSeq: number;
}

export function auditDir(data: string): string {
  return path.join(data, AUDIT_FILES.dir);
}

export function segmentName(firstSeq: number): string {
  return `${AUDIT_FILES.prefix}${String(firstSeq).padStart(AUDIT_FILES.seqDigits, '0')}${AUDIT_FILES.suffix}`;
}

/** The segments in seq order (none when the directory does not exist yet). */
export function listSegments(data: string): Segment[] {
  const dir = auditDir(data);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const re = new RegExp(`^${AUDIT_FILES.prefix}(\\d{${AUDIT_FILES.seqDigits}})${AUDIT_FILES.suffix.replace('.', '\\.')}$`);
  return names
    .map((name) => ({ name, m: re.exec(name) }))
    .filter((x): x is { name: string; m: RegExpExecArray } => x.m !== null)
    .map(({ name, m }) => ({ name, file: path.join(dir, name), firstSeq: Number(m[1]) }))
    .sort((a, b) => a.firstSeq - b.firstSeq);
}

/** A line of a segment: the record, or undefined where the line is damaged. */
export interface SegmentLine {
  line: number;
  record: AuditRecord | undefined;
}

/**
 * The complete lines of a segment. A last line without its newline is an
 * append still being written (or torn by a crash before it was
 * acknowledged): readers skip it.
 */
export function readSegment(seg: Segment): SegmentLine[] {
  const text = fs.readFileSync(seg.file, 'utf8');
  const end = text.lastIndexOf('\n');
  if (end < 0) return [];
  return text
    .slice(0, end)
    .split('\n')
    .map((l, i) => ({ line: i + 1, record: decodeLine(l) }));
}

/** The last complete record of a segment and the byte length of its complete lines (a torn tail lies beyond it). */
export function segmentTail(file: string): { last: AuditRecord | undefined; completeBytes: number } {
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r');
  try {
    // Records are small: the last one lies within the last 64 KiB unless the segment is broken.
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const end = buf.lastIndexOf(0x0a);
    if (end < 0) return { last: undefined, completeBytes: size - len };
    const start = buf.lastIndexOf(0x0a, end - 1) + 1;
    return { last: decodeLine(buf.subarray(start, end).toString('utf8')), completeBytes: size - len + end + 1 };
  } finally {
    fs.closeSync(fd);
  }
}
