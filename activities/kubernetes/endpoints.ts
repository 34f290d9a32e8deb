/**
 * A Service port resolved the way kube-proxy does it: the Service's port → its name → that port in the Service's
 * EndpointSlices → the ready endpoints' addresses and target port. Pure, so its rules are unit-tested.
 */
import type { K8s } from './client';
import type { ServiceEndpoints } from '../ports';

/** The Service's port `port` and the endpoints behind it, from the Service and its EndpointSlices. */
export function endpointsOf(svc: K8s.V1Service, slices: K8s.V1EndpointSlice[], port: number): ServiceEndpoints {
  const ports = (svc.spec?.ports ?? []).map((p) => `${p.port}${p.name ? `/${p.name}` : ''}`);
  const base = { exists: true, type: svc.spec?.type ?? 'ClusterIP', clusterIP: svc.spec?.clusterIP, ports };
  const sp = svc.spec?.ports?.find((p) => p.port === port && (p.protocol ?? 'TCP') === 'TCP');
  if (!sp) return { ...base, ready: [], notReady: 0 };
  // An EndpointSlice names its ports as the Service does (the empty name for a single unnamed port).
  const name = sp.name ?? '';
  const ready = new Map<string, { ip: string; port: number; pod?: string }>();
  let notReady = 0;
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue; // kube-proxy ignores these too
    const sliced = slice.ports?.find((p) => (p.name ?? '') === name && (p.protocol ?? 'TCP') === 'TCP');
    if (!sliced?.port) continue;
    for (const e of slice.endpoints ?? []) {
      const ip = e.addresses[0];
      if (!ip) continue;
      // A missing `ready` condition means ready (EndpointSlice API); terminating endpoints are not ready.
      if (e.conditions?.ready === false) {
        notReady++;
        continue;
      }
      // During a change an endpoint may briefly be listed by two slices: count it once.
      ready.set(`${ip}:${sliced.port}`, { ip, port: sliced.port, ...(e.targetRef?.name ? { pod: e.targetRef.name } : {}) });
    }
  }
  return {
    ...base,
    port: { name, port: sp.port, targetPort: String(sp.targetPort ?? sp.port) },
    ready: [...ready.values()].sort((a, b) => `${a.ip}:${a.port}`.localeCompare(`${b.ip}:${b.port}`)),
    notReady,
  };
}
