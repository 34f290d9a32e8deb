/** The identifiers every room shares, declared once in model/identifiers.ts. */
import { isReleaseId, parsePrincipal, parseQualifiedImageRef, releaseWorkflowId } from '../../model/identifiers';

const D = `sha256:${'b'.repeat(64)}`;

test('a release id is release:<service>:<version> within the service (53) and version (63) limits', () => {
  expect(isReleaseId(releaseWorkflowId('delivery', 'v1.0.2'))).toBe(true);
  expect(isReleaseId(`release:${'a'.repeat(53)}:v1`)).toBe(true);
  for (const bad of [`release:${'a'.repeat(54)}:v1`, `release:delivery:${'1'.repeat(64)}`, 'release:Delivery:v1', 'release:delivery-:v1', 'release:delivery:', 'rel:delivery:v1', 'release:delivery:v1 <script>', 'release:delivery:v1\n']) {
    expect([bad, isReleaseId(bad)]).toEqual([bad, false]);
  }
});

test('approvers: a bare name or user: is a person, group: a group', () => {
  expect(parsePrincipal('alice')).toEqual({ kind: 'user', name: 'alice' });
  expect(parsePrincipal('user:alice')).toEqual({ kind: 'user', name: 'alice' });
  expect(parsePrincipal('group:release-managers')).toEqual({ kind: 'group', name: 'release-managers' });
});

test.each([
  ['myrepo.azurecr.io/delivery:v1.0.2', { name: 'myrepo.azurecr.io/delivery', registry: 'myrepo.azurecr.io', repository: 'delivery', tag: 'v1.0.2' }],
  [`127.0.0.1:5000/prod/delivery@${D}`, { name: '127.0.0.1:5000/prod/delivery', registry: '127.0.0.1:5000', repository: 'prod/delivery', digest: D }],
  [`127.0.0.1:5000/prod/delivery:v1@${D}`, { name: '127.0.0.1:5000/prod/delivery', registry: '127.0.0.1:5000', repository: 'prod/delivery', tag: 'v1', digest: D }],
])('a qualified reference %s splits into registry and repository', (ref, parts) => expect(parseQualifiedImageRef(ref)).toEqual(parts));

test.each([
  ['delivery:v1', /must start with a registry host/],
  ['127.0.0.1:5000', /must start with a registry host/],
  ['127.0.0.1:5000/', /has no repository/],
])('an unqualified reference %s is refused', (ref, message) => expect(() => parseQualifiedImageRef(ref)).toThrow(message));
