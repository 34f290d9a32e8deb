/**
 * Smoke tests after a deploy: the rollout is complete, the chart's Helm test hooks pass, or a URL answers.
 *
 * An http check whose host is a cluster service name (`<svc>.<ns>.svc[.cluster.local]`) goes through the Service
 * the way a pod's request would, but resolved from where the worker runs: cluster DNS is not there, and a
 * ClusterIP is only routed inside the cluster (kube-proxy's rules live on the nodes). So the worker reads the
 * Service through the cluster's API (its port → the ready EndpointSlice endpoints behind it, what kube-proxy picks
 * from) and sends the request to every ready endpoint, keeping the Host header as written; the check passes when
 * each answers the expected status. Any other host (e.g. a Gateway's address with `headers: { Host: … }`) is called
 * as written.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ApplicationFailure } from '@temporalio/activity';
import { ErrorTypes } from '../../model/errors';
import { clusterServiceOf, type SmokeCheck } from '../../model/smoke';
import { smokeTestInputSchema, type SmokeTestInput, type SmokeTestResult } from '../../model/types';
import { check, heartbeat } from '../common';
import type { SlipwayActivities } from '../contract';
import { portError } from '../errors';
import { HelmError } from '../helm/helm';
import { KubeError } from '../kubernetes/cluster';
import type { Cluster } from '../ports';
import { guarded } from './guarded';
import { pollMs, sleep, where, workloadOf, type DeployDeps } from './shared';

type HttpCheck = Extract<SmokeCheck, { type: 'http' }>;

/** Where one attempt sends its request: the URL's own host, or a Service's endpoint (with the URL's Host kept). */
export interface SmokeCall {
  url: URL;
  headers: Record<string, string>;
  /** Connect here instead of the URL's host and port. */
  connectTo?: { ip: string; port: number };
  timeoutMs: number;
}

/** One GET; resolves with the status (the body is read and dropped), rejects on a network error or timeout. */
export function smokeGet(call: SmokeCall): Promise<number> {
  const https = call.url.protocol === 'https:';
  const host = call.connectTo?.ip ?? call.url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = call.connectTo?.port ?? (Number(call.url.port) || (https ? 443 : 80));
  // Host as written in the URL unless the check sets its own (a route's hostname behind a Gateway).
  const own = Object.entries(call.headers).find(([k]) => k.toLowerCase() === 'host')?.[1];
  const headers: Record<string, string> = { ...(own ? {} : { host: call.url.host }), ...call.headers };
  return new Promise((resolve, reject) => {
    const options = { host, port, path: `${call.url.pathname}${call.url.search}`, method: 'GET', headers, agent: false as const, timeout: call.timeoutMs };
    const done = (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    };
    // TLS names the host written in the URL (or the Host header's name), not the endpoint address dialled.
    const servername = (own ?? call.url.hostname).replace(/:\d+$/, '');
    const req = https ? httpsRequest({ ...options, servername }, done) : httpRequest(options, done);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${call.timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const describeError = (err: unknown): string => (err as Error).message;

/** The http check: retried until its deadline, since a just-rolled-out service may take a moment behind its Service. */
async function httpSmoke(cluster: Cluster, input: SmokeTestInput, c: HttpCheck, poll: number, fail: (detail: string) => ApplicationFailure, started: number): Promise<SmokeTestResult> {
  const url = new URL(c.url);
  const headers = c.headers ?? {};
  const perRequestMs = Math.min(10_000, c.timeoutMs);
  const named = clusterServiceOf(url.hostname);
  const deadline = Date.now() + c.timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      if (!named) {
        const status = await smokeGet({ url, headers, timeoutMs: perRequestMs });
        if (status === c.expectStatus) return { check: c.type, detail: `GET ${c.url}${describeHeaders(headers)} answered ${status}`, durationMs: Date.now() - started };
        last = `answered ${status}, expected ${c.expectStatus}`;
      } else {
        const r = await throughService(cluster, input, c, url, named, perRequestMs);
        if (r.passed) return { check: c.type, detail: r.detail, durationMs: Date.now() - started };
        last = r.detail;
      }
    } catch (err) {
      // A cluster that cannot be asked is the cluster's failure (retried by Temporal), not the service's.
      if (err instanceof KubeError) throw err;
      last = describeError(err);
    }
    heartbeat({ smoke: c.url, last });
    await sleep(Math.min(poll, 1_000));
  }
  throw fail(`GET ${c.url}${describeHeaders(headers)}: ${last} (for ${c.timeoutMs} ms)`);
}

const describeHeaders = (h: Record<string, string>) => (Object.keys(h).length ? ` (${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join(', ')})` : '');

/** One attempt through a Service: every ready endpoint of the URL's port must answer the expected status. */
async function throughService(
  cluster: Cluster,
  input: SmokeTestInput,
  c: HttpCheck,
  url: URL,
  named: { service: string; namespace: string },
  timeoutMs: number,
): Promise<{ passed: boolean; detail: string }> {
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const svcName = `Service ${named.namespace}/${named.service}`;
  const s = await cluster.serviceEndpoints({ context: input.target.context, namespace: named.namespace }, named.service, port);
  if (!s.exists) return { passed: false, detail: `no ${svcName} in ${input.target.context}` };
  if (s.type === 'ExternalName') return { passed: false, detail: `${svcName} is an ExternalName Service: name an address the worker reaches instead` };
  if (!s.port) return { passed: false, detail: `${svcName} has no TCP port ${port} (it has: ${s.ports.join(', ') || 'none'})` };
  if (!s.ready.length) return { passed: false, detail: `${svcName} port ${port} has no ready endpoint${s.notReady ? ` (${s.notReady} not ready)` : ''}` };
  const answers = await Promise.all(
    s.ready.map(async (e) => {
      const at = `${e.ip}:${e.port}${e.pod ? ` (pod ${e.pod})` : ''}`;
      try {
        const status = await smokeGet({ url, headers: c.headers ?? {}, connectTo: e, timeoutMs });
        return status === c.expectStatus ? undefined : `${at} answered ${status}, expected ${c.expectStatus}`;
      } catch (err) {
        return `${at}: ${describeError(err)}`;
      }
    }),
  );
  const failed = answers.filter((a): a is string => a !== undefined);
  const via = `${svcName} (ClusterIP ${s.clusterIP ?? '?'}:${port} → target port ${s.port.targetPort})`;
  if (failed.length) return { passed: false, detail: `${failed.length}/${s.ready.length} ready endpoints of ${via} failed: ${failed.join('; ')}` };
  return { passed: true, detail: `GET ${c.url} answered ${c.expectStatus} from all ${s.ready.length} ready endpoints of ${via}${s.notReady ? `; ${s.notReady} not ready` : ''}` };
}

export function createSmokeActivities(deps: DeployDeps): Pick<SlipwayActivities, 'smokeTest'> {
  const poll = pollMs(deps);
  const { deployer, cluster } = deps;
  return {
    async smokeTest(raw): Promise<SmokeTestResult> {
      const input = check(smokeTestInputSchema, raw, 'smokeTest');
      const started = Date.now();
      const c = input.check;
      const fail = (detail: string) => portError(ErrorTypes.SmokeTestFailed, `smoke test "${c.type}" failed for ${input.service} in ${input.environment}: ${detail}`);
      return guarded(async () => {
        if (c.type === 'rollout') {
          const state = await cluster.rollout(input.target, await workloadOf(cluster, input.target, input.service));
          if (!state.exists) throw fail(`no Deployment for ${input.service} in ${where(input.target)}`);
          if (!state.done) throw fail(`${state.available}/${state.replicas} available${state.warnings.length ? `; ${state.warnings.join('; ')}` : ''}`);
          return { check: c.type, detail: `${state.available}/${state.replicas} replicas available, all updated`, durationMs: Date.now() - started };
        }
        if (c.type === 'helm-test') {
          let passed: string[];
          try {
            ({ passed } = await deployer.test(input.target, input.service, c.timeoutMs, heartbeat));
          } catch (err) {
            // A failing test hook is the smoke test failing; an unreachable cluster is Helm's failure (retried).
            if (err instanceof HelmError && err.kind !== 'unreachable') throw fail(err.message);
            throw err;
          }
          // A chart without test hooks would pass vacuously: that is not a smoke test.
          if (!passed.length) throw fail('the chart has no Helm test hooks (add one, or remove helm-test from the smoke checks)');
          return { check: c.type, detail: `Helm test hooks succeeded: ${passed.join(', ')}`, durationMs: Date.now() - started };
        }
        return httpSmoke(cluster, input, c, poll, fail, started);
      });
    },
  };
}
