/** The simulated storage array: volumes with their own snapshot API, served over HTTP (REST/JSON + raw data). */
export { startArrayServer, type ArrayServer, type ArrayServerOptions } from './server.js';
export { ArrayStore, type ArrayStoreOptions, type ArrayWrite, type BlockBitmap } from './store.js';
