/** Clusters and portable save sets (seed 003): the contract, and the pure logic every process shares. */
export * from './types.js';
export * from './cpu-models.js';
export * from './config.js';
export * from './maps.js';
export * from './save-set.js';
export * from './plan.js';
