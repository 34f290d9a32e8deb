export { releaseWorkflow } from './release';
export { rollbackWorkflow } from './rollback';
