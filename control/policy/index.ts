// Migration policies (issue 5): parameters, the pure engine, and the cluster model it reasons on.
export { type Decision, type NodeSummary, type PolicyInput, type PolicyResult, type PolicyState, type Pool, type RankRef, evaluate } from './engine.js';
export { contribution, pressure } from './model.js';
export { POLICY_DEFAULTS, POOL_NAME, type PolicyParams, PolicyParamsSchema, crossCheck, withDefaults } from './params.js';
