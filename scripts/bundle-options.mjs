// What every esbuild bundle of ours shares (scripts/bundle.mjs, scripts/package.mjs).
// Native and wasm packages stay external: they load their binaries relative to their own files.
export const external = ['pino', 'lmdb', 'msgpackr', 'zstd-napi', '@napi-rs/blake-hash', 'fastcdc-wasm'];
// grpc-js is CommonJS: inside an ES module bundle its require() calls need a real require.
export const esmBanner = { js: "import { createRequire as __keepRequire } from 'node:module'; const require = __keepRequire(import.meta.url);" };
// the Node the project pins (package.json's optionalDependencies node-linux-*) and the packages ship
export const nodeTarget = 'node24';
