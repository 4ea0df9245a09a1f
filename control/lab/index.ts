// The lab: a cluster in a box (DESIGN.md §7). One module per job; this is the public surface.
export { BRIDGE_NS, DEFAULT_SUBNET, LabError, MAX_NODES, labSubnet, nodeAddr, nodeNs, parseSubnet, validateNodeCount } from './config.js';
export type { Subnet } from './config.js';
export { labUp, type LabUpOptions, type LabUpResult } from './up.js';
export { labDown, type LabDownResult } from './down.js';
export { labStatus, type LabStatus, type NodeStatus } from './status.js';
export { assertLabRoute, assertLabRoutes, type LabRoute } from './route.js';
export { buildMpirunArgv, labExec, labMpirun, labSsh, ompiPkglibdir, type ExecResult, type LabExecOptions, type LabMpirunOptions } from './mpirun.js';
export { listLabNamespaces, nsPids } from './net.js';
export { readState, requireState, type LabNode, type LabState } from './state.js';
