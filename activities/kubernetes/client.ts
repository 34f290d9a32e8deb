/**
 * @kubernetes/client-node is ESM-only. Node ≥ 20.19 loads ESM through require(); jest's module loader does not and
 * intercepts `node:module` too, so the package is loaded through Node's own require (process.getBuiltinModule).
 * The types come from the package as usual.
 */
import type * as K8s from '@kubernetes/client-node';

const nodeModule = process.getBuiltinModule('node:module') as typeof import('node:module');
export const k8s: typeof K8s = nodeModule.createRequire(__filename)('@kubernetes/client-node');
export type { K8s };
