/**
 * The client methods behind the webhooks (client/client.ts), against a stub of Temporal's client that records what
 * would be sent: pullRequestChanged tells only a running release on the trusted task queue, names the Update the
 * workflow defines, waits for acceptance only, and derives the Update id from the forge's delivery id (a redelivery
 * is the same Update); startSigned signs the start with the given tokens and, with attachToEnded, attaches to a
 * release that already exists in any state instead of starting another run.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateStage, type Client } from '@temporalio/client';
import { GITOPS_PULL_REQUEST_UPDATE, SlipwayClient } from '../../client/client';
import type { DecisionTokens } from '../../client/identity/tokens';
import { readClaims } from '../../model/decision-token';
import { ORCHESTRATOR_QUEUE } from '../../model/queues';

type Described = { taskQueue: string; status: { name: string }; runId: string };

/** workflowId → what describe() says (absent: not found); records startUpdate and start calls. */
function stubTemporal(workflows: Record<string, Described>, refuse?: string) {
  const updates: { workflowId: string; name: unknown; options: any }[] = [];
  const starts: { options: any }[] = [];
  const client = {
    workflow: {
      getHandle: (workflowId: string) => ({
        describe: async () => {
          const d = workflows[workflowId];
          if (!d) throw new WorkflowNotFoundError('not found', workflowId, undefined);
          return d;
        },
        startUpdate: async (name: unknown, options: any) => {
          if (refuse) throw new WorkflowUpdateFailedError('update failed', Object.assign(new Error(refuse), { type: 'Refused' }));
          updates.push({ workflowId, name, options });
          return {};
        },
      }),
      start: async (_type: string, options: any) => {
        starts.push({ options });
        return { firstExecutionRunId: 'run-new' };
      },
    },
  } as unknown as Client;
  return { client, updates, starts };
}

const running: Described = { taskQueue: ORCHESTRATOR_QUEUE, status: { name: 'RUNNING' }, runId: 'run-1' };
const ID = 'release:delivery:v1.0.2';

describe('pullRequestChanged', () => {
  test('a running release on the trusted queue gets the Update, accepted-stage only, with an id from the delivery', async () => {
    const t = stubTemporal({ [ID]: running });
    const r = await new SlipwayClient(t.client).pullRequestChanged(ID, 'qa', 7, '72d3162e-cc78');
    expect(r).toEqual({ outcome: 'sent' });
    expect(t.updates).toHaveLength(1);
    // The workflow's own definition (workflows/messages.ts), by the name the workflow registers.
    expect((t.updates[0].name as { name: string }).name).toBe('gitopsPullRequestChanged');
    expect(GITOPS_PULL_REQUEST_UPDATE).toBe('gitopsPullRequestChanged');
    expect(t.updates[0].options).toEqual({ args: [{ environment: 'qa', number: 7 }], waitForStage: WorkflowUpdateStage.ACCEPTED, updateId: 'gitops-pr:qa:7:72d3162e-cc78' });
    await new SlipwayClient(t.client).pullRequestChanged(ID, 'qa', 7, '72d3162e-cc78');
    expect(t.updates[1].options.updateId).toBe(t.updates[0].options.updateId);
  });

  test('no release, an ended one, or a look-alike on another queue is not-found and nothing is sent', async () => {
    const t = stubTemporal({ 'release:delivery:v1.0.3': { ...running, status: { name: 'COMPLETED' } }, 'release:delivery:v1.0.4': { ...running, taskQueue: 'mallory' } });
    const c = new SlipwayClient(t.client);
    for (const id of [ID, 'release:delivery:v1.0.3', 'release:delivery:v1.0.4']) expect(await c.pullRequestChanged(id, 'qa', 7)).toEqual({ outcome: 'not-found' });
    expect(t.updates).toEqual([]);
  });

  test("the workflow's refusal comes back with its reason", async () => {
    const t = stubTemporal({ [ID]: running }, 'not waiting for pull request #7');
    expect(await new SlipwayClient(t.client).pullRequestChanged(ID, 'qa', 7)).toEqual({ outcome: 'refused', message: 'not waiting for pull request #7' });
  });
});

describe('startSigned', () => {
  const tokens: DecisionTokens = { token: async (req) => `h.${Buffer.from(JSON.stringify({ iss: 'ui', amr: 'local', iat: 1, exp: 2, jti: 'j', ...req })).toString('base64url')}.s` };
  const req = { service: 'delivery', version: 'v1.0.2', image: `127.0.0.1:5000/delivery:v1.0.2@sha256:${'d'.repeat(64)}`, requester: 'registry-webhook' };

  test('starts a release signed by the given tokens for the requester', async () => {
    const t = stubTemporal({});
    const r = await new SlipwayClient(t.client).startSigned(req, tokens, { attachToEnded: true });
    expect(r).toEqual({ workflowId: ID, runId: 'run-new', attached: false });
    expect(t.starts).toHaveLength(1);
    const input = t.starts[0].options.args[0];
    expect(input).toMatchObject({ service: 'delivery', version: 'v1.0.2', image: req.image, requester: 'registry-webhook' });
    expect(readClaims(input.requesterToken)).toMatchObject({ sub: 'registry-webhook', rel: ID, act: 'start', src: `image:${req.image}` });
  });

  test('attachToEnded: an existing release, even a failed one, is attached to and nothing is started', async () => {
    const t = stubTemporal({ [ID]: { ...running, status: { name: 'FAILED' }, runId: 'run-old' } });
    expect(await new SlipwayClient(t.client).startSigned(req, tokens, { attachToEnded: true })).toEqual({ workflowId: ID, runId: 'run-old', attached: true });
    expect(t.starts).toEqual([]);
  });
});
