/** The coordinator package's public face. */
export { Coordinator, type CoordinatorOptions, type CoordinatorDeps } from './coordinator.js';
export { CoordinatorService, CLONE_DEFAULTS, type CloneRequest, type CreateVmRequest } from './service.js';
export { predict, thresholdPages, pickHost } from './planner.js';
