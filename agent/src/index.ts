export * from './repo/connection.js';
export * from './repo/local.js';
export * from './repo/open.js';
export * from './backup/archiver.js';
export * from './backup/uploader.js';
export * from './restore/restorer.js';
export * from './tree/tree-reader.js';
