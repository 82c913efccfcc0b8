// The packages a bundle still loads at run time (the externals: native addons, wasm, pino)
// with everything they depend on, copied from pnpm's store into one flat node_modules.
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';

// needed to build or type-check an addon, never loaded by it
const BUILD_ONLY = new Set(['node-addon-api', 'prebuild-install', 'node-gyp']);

/** The bare package names a bundle imports or requires (not node: modules, not relative paths). */
export function importedPackages(bundleText) {
  const builtins = new Set(builtinModules);
  const names = new Set();
  for (const m of bundleText.matchAll(/(?:require\(|\bfrom |import\()\s*["']([^"'./][^"']*)["']/g)) {
    const spec = m[1];
    if (!/^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/[\w.\/-]*)?$/.test(spec)) continue; // not a package specifier (text in a string)
    if (spec.startsWith('node:') || builtins.has(spec) || builtins.has(spec.split('/')[0])) continue;
    const parts = spec.split('/');
    names.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
  }
  return [...names].sort();
}

/** Node's lookup: NAME in node_modules beside or above `fromDir`, followed to its real directory. */
function findPackage(fromDir, name) {
  for (let d = fromDir; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return fs.realpathSync(candidate);
    if (path.dirname(d) === d) return undefined;
  }
}

/**
 * Every package `names` need at run time, resolved from `fromDir` (the workspace package the bundle
 * comes from): name → real directory. Optional dependencies pnpm skipped (other platforms) are left out.
 */
export function dependencyClosure(fromDir, names) {
  const found = new Map();
  const visit = (name, from, optional) => {
    if (BUILD_ONLY.has(name) || name.startsWith('@types/')) return;
    const dir = findPackage(from, name);
    if (!dir) {
      if (optional) return;
      throw new Error(`package: ${name} (needed from ${from}) is not installed`);
    }
    const seen = found.get(name);
    if (seen === dir) return;
    if (seen) throw new Error(`package: two versions of ${name} (${seen}, ${dir}) would share one flat node_modules`);
    found.set(name, dir);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep, dir, false);
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dep, dir, true);
  };
  for (const n of names) visit(n, fromDir, false);
  return found;
}

/**
 * What a host never needs from a package: docs, types, tests, source maps, and for an addon
 * built here its C sources and object files (only build/**.node stays).
 */
function keepFile(pkgDir, rel, isDir) {
  const base = path.basename(rel);
  const top = rel.split(path.sep)[0];
  const native = fs.existsSync(path.join(pkgDir, 'binding.gyp'));
  if (isDir) {
    if (['test', 'tests', 'benchmark', 'benchmarks', 'docs', 'examples', '.github', 'node_modules'].includes(base)) return false;
    if (native && rel === top && ['src', 'deps', 'dependencies'].includes(top)) return false;
    return true;
  }
  if (/\.(md|markdown|map|d\.ts|d\.cts|d\.mts|gyp|gypi|tsbuildinfo|cc|cpp|c|h|hpp)$/i.test(base) && !/^licen[cs]e/i.test(base)) return false;
  if (top === 'build' && !base.endsWith('.node')) return false;
  return true;
}

/** Copy each package (its files, not its pnpm links) to `nodeModules/<name>`. */
export function copyPackages(packages, nodeModules) {
  for (const [name, dir] of packages) {
    const dest = path.join(nodeModules, name);
    fs.cpSync(dir, dest, {
      recursive: true,
      dereference: true,
      filter: (src) => {
        const rel = path.relative(dir, src);
        return rel === '' || keepFile(dir, rel, fs.statSync(src).isDirectory());
      },
    });
  }
}
