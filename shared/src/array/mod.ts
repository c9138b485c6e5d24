/** The simulated storage array's wire format, shared by the array (array/src) and its client (agent/src/array). */
export * from './api.js';
export * from './bitmap.js';
