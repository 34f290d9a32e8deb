/**
 * Secrets-in-history check: decodes EVERY payload and byte field of a workflow history (inputs, results, failure
 * details and messages with nested causes, heartbeat details, memo, search attributes, Update args/results, signal
 * inputs, markers …) and searches the decoded text, and the raw JSON form, for secrets in their usual encodings.
 *
 * It walks the whole event tree generically instead of listing the event types that carry payloads: a payload in
 * an event type nobody thought of is searched too.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { Client } from '@temporalio/client';

export interface Secret {
  /** What the secret is (for the report; never the value). */
  label: string;
  value: string;
}

export interface Leak {
  label: string;
  /** Which encoding of the secret was found (raw, base64, basic-auth …). */
  form: string;
  /** Where: workflow id, event id and type, and the field path inside the event. */
  where: string;
}

/** One piece of decoded history text and where it came from. */
export interface HistoryText {
  where: string;
  text: string;
}

type History = { events?: Array<Record<string, any>> | null; toJSON?: () => unknown };

const utf8 = new TextDecoder('utf-8', { fatal: false });
const BASE64_RUN = /[A-Za-z0-9+/_-]{16,}={0,2}/g;

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** Strings hidden inside a decoded text: base64 runs (e.g. a Buffer or a header value) decoded once more. */
function nestedBase64(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(BASE64_RUN)) {
    const s = m[0];
    for (const enc of ['base64', 'base64url'] as const) {
      const d = Buffer.from(s, enc).toString('utf8');
      // Keep only decodings that are mostly printable: the rest is noise that cannot hold a secret as text.
      if (d && d.replace(/[^\x20-\x7e\n\r\t]/g, '').length >= d.length * 0.9) out.push(d);
    }
  }
  return out;
}

/** JSON payload values as text, plus Buffers serialised by the JSON converter ({type:'Buffer', data:[…]}). */
function jsonTexts(text: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return [];
  }
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.type === 'Buffer' && Array.isArray(o.data)) out.push(Buffer.from(o.data as number[]).toString('utf8'));
      for (const [k, x] of Object.entries(o)) {
        out.push(k);
        walk(x);
      }
    }
  };
  walk(value);
  return out;
}

/** Every text of one byte field: utf8, JSON string values (unescaped), and base64 runs decoded. */
function decodeBytes(bytes: Uint8Array): string[] {
  const text = utf8.decode(bytes);
  const texts = [text, ...jsonTexts(text)];
  return [...texts, ...texts.flatMap(nestedBase64)];
}

/** Walks one event (a protobuf message or its plain form): strings as they are, byte fields decoded. */
function walk(value: unknown, path: string, out: HistoryText[], seen: Set<unknown>): void {
  if (value === null || value === undefined) return;
  if (typeof value === 'string') {
    out.push({ where: path, text: value });
    for (const t of nestedBase64(value)) out.push({ where: `${path} (base64-decoded)`, text: t });
    return;
  }
  if (isBytes(value)) {
    for (const t of decodeBytes(value)) out.push({ where: path, text: t });
    return;
  }
  if (typeof value !== 'object') return;
  if (seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    value.forEach((v, i) => walk(v, `${path}[${i}]`, out, seen));
    return;
  }
  // Longs (int64 fields) carry no text.
  if (typeof (value as any).low === 'number' && typeof (value as any).high === 'number') return;
  for (const [k, v] of Object.entries(value)) walk(v, `${path}.${k}`, out, seen);
}

/** All decoded texts of a history, each with the event it came from. */
export function historyTexts(history: History, workflowId = 'workflow'): HistoryText[] {
  const out: HistoryText[] = [];
  for (const e of history.events ?? []) {
    const type = Object.keys(e).find((k) => k.endsWith('EventAttributes')) ?? 'event';
    walk(e, `${workflowId} event ${String(e.eventId)} ${type.replace(/EventAttributes$/, '')}`, out, new Set());
  }
  return out;
}

/** The forms a secret may take in a history: as is, base64 (std and url), JSON-escaped. */
export function secretForms(value: string): Array<{ form: string; text: string }> {
  const b = Buffer.from(value, 'utf8');
  const forms = [
    { form: 'raw', text: value },
    { form: 'base64', text: b.toString('base64').replace(/=+$/, '') },
    { form: 'base64url', text: b.toString('base64url') },
    { form: 'json-escaped', text: JSON.stringify(value).slice(1, -1) },
  ];
  return forms.filter((f, i) => forms.findIndex((g) => g.text === f.text) === i);
}

/** Leaks of `secrets` in one history: every decoded text and the raw JSON form are searched. */
export function findLeaks(history: History, secrets: Secret[], workflowId = 'workflow'): Leak[] {
  for (const s of secrets) if (s.value.length < 8) throw new Error(`secret "${s.label}" is shorter than 8 characters: searching for it would give false alarms`);
  const texts = historyTexts(history, workflowId);
  // The raw form: bytes as base64 the way the proto JSON mapping writes them (a base64 form at an aligned offset).
  const raw = JSON.stringify(typeof history.toJSON === 'function' ? history.toJSON() : history);
  texts.push({ where: `${workflowId} raw history JSON`, text: raw });
  const leaks: Leak[] = [];
  for (const s of secrets) {
    for (const f of secretForms(s.value)) {
      for (const t of texts) if (t.text.includes(f.text)) leaks.push({ label: s.label, form: f.form, where: t.where });
    }
  }
  return leaks;
}

/** The history of a workflow and of every child workflow it started (rollbacks run as children). */
export async function fetchHistories(client: Client, workflowId: string): Promise<Array<{ workflowId: string; history: History }>> {
  const out: Array<{ workflowId: string; history: History }> = [];
  const queue = [workflowId];
  while (queue.length) {
    const id = queue.shift()!;
    const history = (await client.workflow.getHandle(id).fetchHistory()) as unknown as History;
    out.push({ workflowId: id, history });
    for (const e of history.events ?? []) {
      const child = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
      if (child && !queue.includes(child) && !out.some((h) => h.workflowId === child)) queue.push(child);
    }
  }
  return out;
}

/** Leaks in a workflow's history and its children's. */
export async function findLeaksInWorkflow(client: Client, workflowId: string, secrets: Secret[]): Promise<Leak[]> {
  const all = await fetchHistories(client, workflowId);
  return all.flatMap((h) => findLeaks(h.history, secrets, h.workflowId));
}

/**
 * The credentials of a kubeconfig: each user's client key, client certificate, token and password, as stored
 * (base64 `*-data`) and decoded (the PEM body lines, which survive any re-wrapping), plus key/cert files it names.
 */
export function kubeconfigSecrets(file: string): Secret[] {
  const cfg = parseYaml(readFileSync(file, 'utf8')) as { users?: Array<{ name: string; user?: Record<string, unknown> }> };
  const out: Secret[] = [];
  const pem = (label: string, text: string) => {
    // The base64 body of a PEM block: its longest lines identify it wherever it is copied.
    const lines = text.split(/\r?\n/).filter((l) => l && !l.startsWith('-----'));
    for (const [i, l] of lines.entries()) if (l.length >= 40) out.push({ label: `${label} line ${i + 1}`, value: l });
  };
  for (const u of cfg.users ?? []) {
    const user = u.user ?? {};
    for (const field of ['client-key-data', 'client-certificate-data']) {
      const v = user[field];
      if (typeof v === 'string' && v) {
        out.push({ label: `kubeconfig ${u.name} ${field}`, value: v });
        pem(`kubeconfig ${u.name} ${field} (decoded)`, Buffer.from(v, 'base64').toString('utf8'));
      }
    }
    for (const field of ['client-key', 'client-certificate']) {
      const v = user[field];
      if (typeof v === 'string' && v) pem(`kubeconfig ${u.name} ${field} file`, readFileSync(v, 'utf8'));
    }
    for (const field of ['token', 'password']) {
      const v = user[field];
      if (typeof v === 'string' && v.length >= 8) out.push({ label: `kubeconfig ${u.name} ${field}`, value: v });
    }
  }
  return out;
}

/** A registry login as secrets: the password, and the basic-auth credential (base64 of user:password). */
export function registrySecrets(name: string, r: { username: string; password: string }): Secret[] {
  return [
    { label: `${name} registry password`, value: r.password },
    { label: `${name} registry basic auth`, value: Buffer.from(`${r.username}:${r.password}`).toString('base64') },
  ];
}
