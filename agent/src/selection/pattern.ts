import path from 'node:path';
import { KeepError } from '@keep/core';

/**
 * restic's path patterns (internal/filter): a pattern is cleaned and split at
 * `/`; each part is a glob of one path component (`*`, `?`, `[...]`, `\`
 * escapes, as Go's filepath.Match), and a part `**` stands for any number of
 * components. A pattern with a leading `/` is anchored at the start of the
 * (absolute) path; any other may match at any depth. Either matches a path
 * when it matches a leading run of components at that place, so a pattern
 * that names a directory also names everything below it. `!` in front negates.
 */
export interface Pattern {
  /** as given (for messages) */
  readonly original: string;
  readonly negated: boolean;
  readonly parts: Part[];
  /** matched against lower-cased paths (--iexclude) */
  readonly foldCase: boolean;
}

/** One component of a pattern: a literal, a compiled glob, or `**`. */
type Part = { kind: 'literal'; text: string } | { kind: 'glob'; re: RegExp } | { kind: 'any-depth' };

const ANY_ONE: Part = { kind: 'glob', re: /^[^/]*$/su };

export function compilePattern(text: string, foldCase = false): Pattern {
  const original = text;
  const negated = text.startsWith('!');
  if (negated) text = text.slice(1);
  if (foldCase) text = text.toLowerCase();
  if (text === '') throw new KeepError('INVALID_ARGUMENT', `empty pattern ${JSON.stringify(original)}`);
  const parts = cleanPath(text).split('/').map((p): Part => {
    if (p === '**') return { kind: 'any-depth' };
    if (!/[\\[\]*?]/.test(p)) return { kind: 'literal', text: p };
    return { kind: 'glob', re: globToRegExp(p, original) };
  });
  return { original, negated, parts, foldCase };
}

/** Go's filepath.Clean: no empty or `.` parts, `..` resolved, no trailing slash. */
function cleanPath(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** A component glob as an anchored RegExp; a malformed one is refused (restic validates patterns before it runs). */
export function globToRegExp(glob: string, original = glob): RegExp {
  const bad = () => new KeepError('INVALID_ARGUMENT', `malformed pattern ${JSON.stringify(original)}`);
  const chars = [...glob];
  let re = '';
  const lit = (c: string) => `\\u{${c.codePointAt(0)!.toString(16)}}`;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      if (++i >= chars.length) throw bad();
      re += lit(chars[i]);
    } else if (c === '[') {
      i++;
      const negate = chars[i] === '^';
      if (negate) i++;
      let ranges = '';
      let n = 0;
      // one escaped-or-plain character of a class; `-` and `]` must be escaped where they are not syntax
      const one = (): string => {
        let ch = chars[i];
        if (ch === undefined || ch === '-' || ch === ']') throw bad();
        if (ch === '\\') {
          ch = chars[++i];
          if (ch === undefined) throw bad();
        }
        i++;
        return ch;
      };
      for (;;) {
        if (chars[i] === ']' && n > 0) break;
        const lo = one();
        let hi = lo;
        if (chars[i] === '-') {
          i++;
          hi = one();
        }
        n++;
        // Go accepts a reversed range and matches nothing with it
        if (lo.codePointAt(0)! <= hi.codePointAt(0)!) ranges += `${lit(lo)}-${lit(hi)}`;
      }
      if (ranges === '') re += negate ? '[^/]' : '(?!)';
      else re += negate ? `[^/${ranges}]` : `[${ranges}]`;
    } else re += lit(c);
  }
  return new RegExp(`^${re}$`, 'su');
}

function partMatches(p: Part, s: string): boolean {
  if (p.kind === 'literal') return p.text === s;
  if (p.kind === 'glob') return p.re.test(s);
  return true;
}

/** The components of a path as restic splits it: "/a/b" -> ["", "a", "b"]. */
export function splitPath(p: string): string[] {
  return p.split('/');
}

function components(pattern: Pattern, p: string | string[]): string[] {
  const s = typeof p === 'string' ? splitPath(p) : p;
  return pattern.foldCase ? s.map((x) => x.toLowerCase()) : s;
}

/** True when `pattern` matches path `p` (absolute) or a directory above it. */
export function matches(pattern: Pattern, p: string | string[]): boolean {
  return matchParts(pattern.parts, components(pattern, p));
}

function matchParts(parts: Part[], strs: string[]): boolean {
  const star = parts.findIndex((p) => p.kind === 'any-depth');
  if (star >= 0) {
    // `**` tried as zero, one, two... single-component wildcards
    for (let k = 0; k <= strs.length - parts.length + 1; k++) {
      const expanded = [...parts.slice(0, star), ...Array<Part>(k).fill(ANY_ONE), ...parts.slice(star + 1)];
      if (matchParts(expanded, strs)) return true;
    }
    return false;
  }
  if (parts.length === 0) return strs.length === 0;
  if (parts.length > strs.length) return false;
  // an anchored pattern (first part "") only at the start; any other at every depth
  const anchored = parts[0].kind === 'literal' && parts[0].text === '';
  const maxOffset = anchored ? 0 : strs.length - parts.length;
  for (let off = maxOffset; off >= 0; off--) {
    if (parts.every((p, i) => partMatches(p, strs[off + i]))) return true;
  }
  return false;
}

/** True when something below directory `p` could match: always for an unanchored pattern. */
export function childMayMatch(pattern: Pattern, p: string | string[]): boolean {
  const parts = pattern.parts;
  if (!(parts[0].kind === 'literal' && parts[0].text === '')) return true;
  let strs = components(pattern, p);
  const star = parts.findIndex((x) => x.kind === 'any-depth');
  if (star >= 0 && strs.length >= star) strs = strs.slice(0, star);
  return matchParts(parts.slice(0, Math.min(strs.length, parts.length)), strs);
}

/**
 * A list of patterns applied in order, as restic's filter.List: a pattern
 * that matches sets the result, a negated one that matches clears it again,
 * so the last matching one decides. `seen` counts what each pattern matched.
 */
export class PatternList {
  readonly seen: number[];
  constructor(readonly patterns: Pattern[]) {
    this.seen = patterns.map(() => 0);
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** whether `p` is matched, and whether something below it could be */
  test(p: string, withChildren = false): { matched: boolean; childMayMatch: boolean } {
    const strs = splitPath(p);
    let matched = false;
    let child = false;
    this.patterns.forEach((pat, i) => {
      const m = matches(pat, strs);
      if (m) this.seen[i]++;
      if (pat.negated) {
        matched &&= !m;
        child &&= !m;
      } else {
        matched ||= m;
        child ||= withChildren ? childMayMatch(pat, strs) : true;
      }
    });
    return { matched, childMayMatch: child };
  }

  /** patterns that matched no path so far */
  unmatched(): string[] {
    return this.patterns.filter((_, i) => this.seen[i] === 0).map((p) => p.original);
  }
}
