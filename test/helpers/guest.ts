/** The real test guest (built from Debian packages and cached) and its serial console: see cli/src/guest/test-guest.ts. */
export * from '../../cli/src/guest/test-guest.js';
