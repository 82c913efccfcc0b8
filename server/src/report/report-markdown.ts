import { age, bytes } from '../web/layout.js';
import type { DrReport } from './dr-report.js';

/** `keepd report --format md`: one table per KPI, then how each figure is computed. */

const pct = (share: number | null) => (share === null ? '–' : `${(share * 100).toFixed(2)} %`);
const row = (cells: (string | number | null)[]) => `| ${cells.map((c) => (c === null ? '–' : String(c))).join(' | ')} |`;
const table = (head: string[], rows: string[]) => [row(head), row(head.map(() => '---')), ...rows].join('\n');

export function formatReportMarkdown(r: DrReport): string {
  const s = r.sources;
  const out = [
    `# Keep DR report`,
    '',
    `Window: ${r.window.start} – ${r.window.end}`,
    '',
    '## Backups',
    '',
    s.length ? table(['Source', 'Tier', 'Attempted', 'Succeeded', 'Failed', 'Success rate', 'Basis'], s.map((x) => row([x.source, x.tier, x.backups.attempted, x.backups.succeeded, x.backups.failed, pct(x.backups.success_rate), x.backups.basis]))) : 'No sources.',
    '',
    '## RPO compliance',
    '',
    s.length ? table(['Source', 'RPO', 'Within RPO', 'Measured', 'Share'], s.map((x) => row([x.source, age(x.rpo.rpo_s), age(x.rpo.within_ms / 1000), age(x.rpo.measured_ms / 1000), pct(x.rpo.share)]))) : 'No sources.',
    '',
    '## Drills and RTO',
    '',
    s.length
      ? table(['Source', 'Drills', 'Failures', 'Longest', 'Within target', 'RTO estimate', 'RTO target', 'Met'], s.map((x) => row([x.source, x.drills.count, x.drills.failures, age(x.drills.longest_s), x.drills.within_target, age(x.drills.rto_estimate_s), age(x.drills.rto_target_s), x.drills.rto_met === null ? '–' : x.drills.rto_met ? 'yes' : 'NO'])))
      : 'No sources.',
    '',
    '## Replica lag',
    '',
    r.replicas.length ? table(['Replica', 'Within RPO', 'Measured', 'Share'], r.replicas.map((x) => row([x.replica, age(x.within_ms / 1000), age(x.measured_ms / 1000), pct(x.share)]))) : 'No replica transitions recorded in the window.',
    '',
    '## Storage',
    '',
    s.length ? table(['Source', 'New data stored', 'Size (first)', 'Size (last)'], s.map((x) => row([x.source, bytes(x.storage.new_bytes), bytes(x.storage.size_first), bytes(x.storage.size_last)]))) : 'No sources.',
    '',
    `Repository: ${r.storage.samples ? `${bytes(r.storage.used_first)} → ${bytes(r.storage.used_last)} used (${r.storage.samples} samples)${r.storage.growth_bytes_per_day === null ? '' : `, ${bytes(r.storage.growth_bytes_per_day)}/day`}` : 'no usage samples in the window (keepd serve --config samples them)'}`,
    '',
    '## How these are computed',
    '',
    ...Object.entries(r.methods).map(([k, v]) => `- ${k}: ${v}`),
  ];
  return out.join('\n');
}
