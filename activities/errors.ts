/**
 * How adapters speak the one error vocabulary (model/errors.ts). `portError` is the only place an activity's
 * ApplicationFailure is built: the catalogue sets its retryability, so no adapter can pick the wrong one
 * (test/unit/retry-policy.test.ts scans activities/ for any other). Each adapter maps its tool's failures in one
 * function next to it: helmFailure (helm/helm.ts), kubeFailure (deploy/guarded.ts), toRegistryFailure
 * (registry/oci.ts), armFailure (registry/acr.ts), scannerFailure (scanner/trivy.ts), buildFailure and
 * pushFailure (docker/builder.ts), metricsFailure (metrics/prometheus.ts). `classifyHttp`, `classifyNetwork` and
 * `classifyRegistryMessage` are the shared parts of those maps.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { ErrorTypes, isRetryable, type ErrorType } from '../model/errors';

/** A catalogue failure with the catalogue's retryability; `details` travel as the failure's first detail. */
export function portError(type: ErrorType, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: !isRetryable(type), details: details ? [details] : undefined });
}

/** Per-adapter names for the HTTP outcomes (a registry's 404 is a missing image, Prometheus's 400 a bad query). */
export interface HttpVocabulary {
  auth: ErrorType;
  notFound: ErrorType;
  /** Other 4xx: the request itself is wrong; retrying sends the same request. */
  rejected: ErrorType;
  /** 408, 429, 5xx and network errors: the server may answer next time. */
  unavailable: ErrorType;
}

export const REGISTRY_HTTP: HttpVocabulary = {
  auth: ErrorTypes.RegistryAuth,
  notFound: ErrorTypes.ImageNotFound,
  rejected: ErrorTypes.RegistryRejected,
  unavailable: ErrorTypes.RegistryUnavailable,
};

export function classifyHttp(status: number, vocabulary: HttpVocabulary = REGISTRY_HTTP): ErrorType {
  if (status === 401 || status === 403) return vocabulary.auth;
  if (status === 404) return vocabulary.notFound;
  if (status === 408 || status === 429 || status >= 500) return vocabulary.unavailable;
  if (status >= 400) return vocabulary.rejected;
  // A 2xx/3xx where another was expected (a 202 instead of 201): the server is not behaving; try again.
  return vocabulary.unavailable;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** The network error code under a fetch "TypeError: fetch failed" (undici puts it in `cause`), if any. */
export function networkCode(err: unknown): string | undefined {
  let e: any = err;
  for (let depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return e.code;
    e = e.cause;
  }
  return undefined;
}

/** An error already in the vocabulary passes through; a network error becomes `unavailable`; anything else is left alone. */
export function classifyNetwork(err: unknown, what: string, vocabulary: HttpVocabulary = REGISTRY_HTTP): unknown {
  if (err instanceof ApplicationFailure) return err;
  const code = networkCode(err);
  if (code) return portError(vocabulary.unavailable, `${what}: ${code} (${(err as Error).message})`);
  return err;
}

/**
 * For adapters that only get a registry's answer as text (the Docker engine's push stream): the registry's own
 * error codes (distribution spec) and the engine's phrasing of them.
 */
export function classifyRegistryMessage(message: string): ErrorType {
  if (/\b(unauthorized|denied|authentication required|no basic auth credentials|forbidden)\b/i.test(message)) return ErrorTypes.RegistryAuth;
  if (/\b(name unknown|manifest unknown|not found|does not exist)\b/i.test(message)) return ErrorTypes.ImageNotFound;
  if (/\b(manifest invalid|blob unknown to registry|digest invalid|size invalid|tag invalid|unsupported)\b/i.test(message)) return ErrorTypes.RegistryRejected;
  return ErrorTypes.RegistryUnavailable;
}
