/** The workflow tier's globalSetup: Temporal and the bundle only (no Docker, registries, clusters or Trivy). */
import { prepareWorkflowTier } from './workflow-tier';

export default async function workflowSetup(): Promise<void> {
  await prepareWorkflowTier();
}
