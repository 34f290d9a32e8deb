/**
 * Traffic routers (issue #11, Shape): the weight arithmetic of each adapter and the factory's choice, with the
 * canary's scaling and the custom objects API replaced by recorders (no cluster).
 */
import { CanaryPlanError, checkWeights } from '../../activities/kubernetes/canary';
import { trafficRouterFor, type TrafficDeps } from '../../activities/traffic';
import { splitWeights } from '../../activities/traffic/route';

const target = { context: 'prod', namespace: 'shop' };

/** Deps whose API server holds `objects` (by plural/name) and records scales and writes. */
function fakeDeps(objects: Record<string, any> = {}) {
  const scaled: number[] = [];
  const written: { plural: string; name: string; body: any }[] = [];
  const reads: string[] = [];
  const deps: TrafficDeps = {
    canary: 'delivery-canary',
    scale: async (t, replicas) => {
      expect(t).toBe(target);
      scaled.push(replicas);
    },
    customObjects: (context) => {
      expect(context).toBe('prod');
      return {
        getNamespacedCustomObject: async ({ plural, name, namespace }: any) => {
          expect(namespace).toBe('shop');
          reads.push(`${plural}/${name}`);
          const obj = objects[`${plural}/${name}`];
          if (obj instanceof Error) throw obj;
          if (!obj) throw Object.assign(new Error('not found'), { code: 404 });
          return structuredClone(obj);
        },
        replaceNamespacedCustomObject: async ({ plural, name, body }: any) => {
          written.push({ plural, name, body });
          return body;
        },
      } as any;
    },
  };
  return { deps, scaled, written, reads };
}

const httpRoute = (...names: string[]) => ({ spec: { rules: [{ backendRefs: names.map((name) => ({ name, port: 80, weight: 1 })) }] } });
const virtualService = (...routes: { host: string; subset?: string }[][]) => ({ spec: { http: routes.map((r) => ({ route: r.map((destination) => ({ destination, weight: 1 })) })) } });

describe('splitWeights', () => {
  const canary = (b: string) => b === 'c';
  test('the canary backends get the weight, the stable ones share the rest, rounded down', () => {
    expect(splitWeights(['s', 'c'], canary, 30)).toEqual([70, 30]);
    expect(splitWeights(['s1', 'c', 's2', 's3'], canary, 30)).toEqual([23, 30, 23, 23]);
    expect(splitWeights(['c', 's'], canary, 0)).toEqual([0, 100]);
    expect(splitWeights(['c', 's'], canary, 100)).toEqual([100, 0]);
  });
  test('a list without a canary or without a stable backend has no split', () => {
    expect(splitWeights(['s1', 's2'], canary, 10)).toBeUndefined();
    expect(splitWeights(['c'], canary, 10)).toBeUndefined();
    expect(splitWeights([], canary, 10)).toBeUndefined();
  });
});

describe('replicas router', () => {
  test('the canary gets ceil(stable × w / (100 − w)) pods and the weight is the ratio they make', async () => {
    const { deps, scaled, written } = fakeDeps();
    const router = trafficRouterFor({ type: 'replicas' }, deps);
    expect(await router.setWeight(target, 25, 2)).toEqual({ weight: 33, canaryReplicas: 1 });
    expect(await router.setWeight(target, 50, 4)).toEqual({ weight: 50, canaryReplicas: 4 });
    expect(await router.setWeight(target, 10, 3)).toEqual({ weight: 25, canaryReplicas: 1 });
    expect(await router.setWeight(target, 0, 3)).toEqual({ weight: 0, canaryReplicas: 0 });
    expect(scaled).toEqual([1, 4, 1, 0]);
    await router.reset(target);
    expect(written).toEqual([]); // nothing routes but the pods
  });
  test('a weight needing more canary pods than stable ones is a problem; one it can express is not', () => {
    const router = trafficRouterFor({ type: 'replicas' }, fakeDeps().deps);
    expect(router.weightProblem(50, 2)).toBeUndefined();
    expect(router.weightProblem(99, 2)).toMatch(/99 % cannot be expressed by replica ratio with 2 stable replicas: it needs 198 canary pods.*33 %, 50 %/);
  });
});

describe('gateway-api router', () => {
  test('scales the canary to the stable size, then rewrites every rule of the HTTPRoute', async () => {
    const route = { spec: { rules: [...httpRoute('delivery-stable', 'delivery-canary').spec.rules, ...httpRoute('delivery-canary', 'a', 'b').spec.rules] } };
    const { deps, scaled, written, reads } = fakeDeps({ 'httproutes/web': route });
    const router = trafficRouterFor({ type: 'gateway-api', route: 'web' }, deps);
    expect(router.weightProblem(99, 1)).toBeUndefined(); // a route carries any percentage
    expect(await router.setWeight(target, 30, 2)).toEqual({ weight: 30, canaryReplicas: 2 });
    expect(scaled).toEqual([2]);
    expect(reads).toEqual(['httproutes/web']);
    expect(written).toHaveLength(1);
    expect(written[0].body.spec.rules.map((r: any) => r.backendRefs.map((b: any) => [b.name, b.weight]))).toEqual([
      [['delivery-stable', 70], ['delivery-canary', 30]],
      [['delivery-canary', 30], ['a', 35], ['b', 35]],
    ]);
  });
  test('at least one canary pod, none at weight 0 (the route then sends it nothing)', async () => {
    const { deps, scaled, written } = fakeDeps({ 'httproutes/web': httpRoute('delivery', 'delivery-canary') });
    const router = trafficRouterFor({ type: 'gateway-api', route: 'web' }, deps);
    expect(await router.setWeight(target, 5, 0)).toEqual({ weight: 5, canaryReplicas: 1 });
    expect(await router.setWeight(target, 0, 3)).toEqual({ weight: 0, canaryReplicas: 0 });
    expect(scaled).toEqual([1, 0]);
    expect(written[1].body.spec.rules[0].backendRefs.map((b: any) => b.weight)).toEqual([100, 0]);
  });
  test('a route without a canary backend, or without rules, is refused and not written', async () => {
    const { deps, written } = fakeDeps({ 'httproutes/no-canary': httpRoute('delivery'), 'httproutes/empty': { spec: {} } });
    await expect(trafficRouterFor({ type: 'gateway-api', route: 'no-canary' }, deps).setWeight(target, 10, 2)).rejects.toThrow(
      'httproutes/no-canary needs a backend for delivery-canary and one for the stable service',
    );
    await expect(trafficRouterFor({ type: 'gateway-api', route: 'empty' }, deps).setWeight(target, 10, 2)).rejects.toThrow('httproutes/empty has no rules to weigh');
    expect(written).toEqual([]);
  });
  test('before a canary starts: a missing route, one without rules or without a canary backend is a problem, a weighable one is not; nothing is written', async () => {
    const { deps, written } = fakeDeps({ 'httproutes/web': httpRoute('delivery-stable', 'delivery-canary'), 'httproutes/no-canary': httpRoute('delivery'), 'httproutes/empty': { spec: {} } });
    const problem = (route: string) => trafficRouterFor({ type: 'gateway-api', route }, deps).routeProblem(target);
    expect(await problem('web')).toBeUndefined();
    expect(await problem('gone')).toBe('httproutes/gone does not exist in shop: the stable release must create it (the sample chart: route.enabled)');
    expect(await problem('no-canary')).toBe('httproutes/no-canary needs a backend for delivery-canary and one for the stable service');
    expect(await problem('empty')).toBe('httproutes/empty has no rules to weigh');
    expect(await trafficRouterFor({ type: 'replicas' }, deps).routeProblem(target)).toBeUndefined();
    expect(written).toEqual([]);
  });
  test('a header-match rule sending only to the canary (or only to stable) is left as written; the weighted rule is weighed', async () => {
    const route = {
      spec: {
        rules: [
          { matches: [{ headers: [{ name: 'x-canary', value: 'always' }] }], backendRefs: [{ name: 'delivery-canary', port: 80 }] },
          { matches: [{ headers: [{ name: 'x-canary', value: 'never' }] }], backendRefs: [{ name: 'delivery-stable', port: 80, weight: 1 }] },
          ...httpRoute('delivery-stable', 'delivery-canary').spec.rules,
        ],
      },
    };
    const { deps, written } = fakeDeps({ 'httproutes/web': route });
    const router = trafficRouterFor({ type: 'gateway-api', route: 'web' }, deps);
    await router.setWeight(target, 20, 2);
    await router.reset(target);
    for (const [i, w] of [20, 0].entries()) {
      const rules = written[i].body.spec.rules;
      expect(rules[0]).toEqual(route.spec.rules[0]); // untouched: no weight added
      expect(rules[1]).toEqual(route.spec.rules[1]);
      expect(rules[2].backendRefs.map((b: any) => [b.name, b.weight])).toEqual([['delivery-stable', 100 - w], ['delivery-canary', w]]);
    }
  });
  test('a route whose rules each send to one side only is refused: nothing would shift', async () => {
    const route = { spec: { rules: [...httpRoute('delivery-canary').spec.rules, ...httpRoute('delivery-stable').spec.rules] } };
    const { deps, written } = fakeDeps({ 'httproutes/split': route });
    await expect(trafficRouterFor({ type: 'gateway-api', route: 'split' }, deps).setWeight(target, 10, 2)).rejects.toThrow(
      'httproutes/split needs a backend for delivery-canary and one for the stable service',
    );
    expect(written).toEqual([]);
  });
  test('the route is weighed only once the canary Service has as many ready endpoints as canary pods', async () => {
    const { deps, written, scaled } = fakeDeps({ 'httproutes/web': httpRoute('delivery-stable', 'delivery-canary') });
    // EndpointSlices of delivery-canary as the endpoint controller fills them in: none ready, one, then two.
    const readiness = [[false, false], [true, false], [true, true, false]];
    const lists: string[] = [];
    const objects = deps.customObjects;
    deps.customObjects = (context) => ({
      ...objects(context),
      listNamespacedCustomObject: async ({ group, plural, namespace, labelSelector }: any) => {
        lists.push(`${group}/${plural} ${namespace} ${labelSelector} written=${written.length}`);
        const ready = readiness[Math.min(lists.length - 1, readiness.length - 1)];
        return { items: [{ endpoints: ready.map((r) => ({ conditions: { ready: r } })) }] };
      },
    }) as any;
    await trafficRouterFor({ type: 'gateway-api', route: 'web' }, deps).setWeight(target, 40, 2);
    expect(scaled).toEqual([2]);
    expect(lists).toEqual(Array(3).fill('discovery.k8s.io/endpointslices shop kubernetes.io/service-name=delivery-canary written=0'));
    expect(written[0].body.spec.rules[0].backendRefs.map((b: any) => b.weight)).toEqual([60, 40]);
  }, 10_000);
  test('weight 0 moves the traffic before the canary pods are scaled away', async () => {
    const { deps, written } = fakeDeps({ 'httproutes/web': httpRoute('delivery-stable', 'delivery-canary') });
    const order: string[] = [];
    const scale = deps.scale;
    deps.scale = async (t, r) => {
      order.push(`scale ${r} after ${written.length} writes`);
      await scale(t, r);
    };
    await trafficRouterFor({ type: 'gateway-api', route: 'web' }, deps).setWeight(target, 0, 2);
    expect(order).toEqual(['scale 0 after 1 writes']);
  });
  test('reset sends everything to stable; a route already gone is fine, another failure is not', async () => {
    const { deps, written, scaled } = fakeDeps({ 'httproutes/web': httpRoute('delivery', 'delivery-canary'), 'httproutes/broken': Object.assign(new Error('boom'), { code: 500 }) });
    await trafficRouterFor({ type: 'gateway-api', route: 'web' }, deps).reset(target);
    expect(written[0].body.spec.rules[0].backendRefs.map((b: any) => b.weight)).toEqual([100, 0]);
    expect(scaled).toEqual([]); // the canary Deployment is deleted by its owner, not scaled
    await expect(trafficRouterFor({ type: 'gateway-api', route: 'gone' }, deps).reset(target)).resolves.toBeUndefined();
    await expect(trafficRouterFor({ type: 'gateway-api', route: 'broken' }, deps).reset(target)).rejects.toThrow('boom');
  });
});

describe('istio router', () => {
  test('a destination is the canary by its host or by the canary subset; every http route is weighed', async () => {
    const vs = virtualService(
      [{ host: 'delivery' }, { host: 'delivery-canary' }],
      [{ host: 'delivery', subset: 'stable' }, { host: 'delivery', subset: 'canary' }],
    );
    const { deps, written, reads } = fakeDeps({ 'virtualservices/delivery': vs });
    const router = trafficRouterFor({ type: 'istio', virtualService: 'delivery' }, deps);
    expect(await router.setWeight(target, 60, 2)).toEqual({ weight: 60, canaryReplicas: 2 });
    expect(reads).toEqual(['virtualservices/delivery']);
    expect(written[0].body.spec.http.map((h: any) => h.route.map((r: any) => r.weight))).toEqual([
      [40, 60],
      [40, 60],
    ]);
  });
  test('a VirtualService without http routes or without a canary destination is refused', async () => {
    const { deps } = fakeDeps({ 'virtualservices/none': { spec: { http: [] } }, 'virtualservices/stable-only': virtualService([{ host: 'delivery' }]) });
    await expect(trafficRouterFor({ type: 'istio', virtualService: 'none' }, deps).setWeight(target, 10, 2)).rejects.toThrow('virtualservices/none has no http routes to weigh');
    await expect(trafficRouterFor({ type: 'istio', virtualService: 'stable-only' }, deps).setWeight(target, 10, 2)).rejects.toThrow(/needs a backend for delivery-canary/);
  });
});

describe('trafficRouterFor', () => {
  test('the plan picks the router', () => {
    const { deps } = fakeDeps();
    expect(trafficRouterFor({ type: 'replicas' }, deps).type).toBe('replicas');
    expect(trafficRouterFor({ type: 'gateway-api', route: 'r' }, deps).type).toBe('gateway-api');
    expect(trafficRouterFor({ type: 'istio', virtualService: 'v' }, deps).type).toBe('istio');
  });
  test('the route named in the plan is the one read', async () => {
    const { deps, reads } = fakeDeps({ 'httproutes/r': httpRoute('a', 'delivery-canary'), 'virtualservices/v': virtualService([{ host: 'a' }, { host: 'delivery-canary' }]) });
    await trafficRouterFor({ type: 'gateway-api', route: 'r' }, deps).setWeight(target, 10, 1);
    await trafficRouterFor({ type: 'istio', virtualService: 'v' }, deps).setWeight(target, 10, 1);
    expect(reads).toEqual(['httproutes/r', 'virtualservices/v']);
  });
});

describe('checkWeights', () => {
  const steps = [{ step: 0, weight: 25 }, { step: 2, weight: 99 }];
  test("the replica router's problems name the steps and refuse the plan", () => {
    const router = trafficRouterFor({ type: 'replicas' }, fakeDeps().deps);
    const err = (() => {
      try {
        checkWeights(router, steps, 'delivery', 2);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CanaryPlanError);
    expect((err as Error).message).toMatch(/^the canary of delivery cannot start \(the stable Deployment runs 2 replicas\):\ncanary\.steps\.2\.setWeight: 99 %/);
    expect((err as Error).message).not.toMatch(/steps\.0/);
    expect(() => checkWeights(router, [{ weight: 99 }], 'delivery', 1)).toThrow(/runs 1 replica\):\ncanary setWeight: 99 %/);
  });
  test('route routers carry the same steps', () => {
    expect(() => checkWeights(trafficRouterFor({ type: 'gateway-api', route: 'r' }, fakeDeps().deps), steps, 'delivery', 2)).not.toThrow();
  });
});
