/** The smoke checks a deploy runs (slipway.yaml's deploy.smoke). */
import { z } from 'zod';
import { durationSchema } from './duration';

export const smokeConfigSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('rollout') }),
  z.strictObject({ type: z.literal('helm-test'), timeout: durationSchema.default('5m') }),
  z.strictObject({
    type: z.literal('http'),
    // {service} and {namespace} are filled in; the default reaches the service through cluster DNS.
    url: z.string().max(2048).regex(/^https?:\/\/[^\s]+$/, 'must be an http(s) URL').default('http://{service}.{namespace}.svc/healthz'),
    expectStatus: z.number().int().min(100).max(599).default(200),
    timeout: durationSchema.default('30s'),
  }),
]);
