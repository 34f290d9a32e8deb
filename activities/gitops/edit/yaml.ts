/**
 * Shared by the editors: YAML edits that keep the file as its authors wrote it. A value that exists is replaced in
 * the source text at the node's own range (comments, quoting, indentation and key order stay byte for byte); only
 * when a key must be added is the document re-serialised through the `yaml` Document API, which keeps comments.
 */
import { isScalar, parseAllDocuments, Scalar, type Document } from 'yaml';

export type YamlPath = (string | number)[];

export interface YamlEdit {
  doc: Document;
  path: YamlPath;
  value: string;
}

export interface EditResult {
  text: string;
  /** False when every value already had the wanted content (editing to the same digest is a no-op). */
  changed: boolean;
  previousDigest?: string;
}

export function parseDocuments(text: string, file: string): Document[] {
  const docs = parseAllDocuments(text) as Document[] | { errors: unknown[] };
  if (!Array.isArray(docs)) return [];
  const broken = docs.find((d) => d.errors.length > 0);
  if (broken) throw new SyntaxError(`${file} is not valid YAML: ${broken.errors[0].message}`);
  return docs;
}

/** The scalar at a path, or undefined (a missing key, or a map/sequence where a value was expected). */
export function scalarAt(doc: Document, path: YamlPath): Scalar | undefined {
  const node = doc.getIn(path, true);
  return isScalar(node) ? node : undefined;
}

/** The scalar's new source text in the quoting style it was written in. */
function render(node: Scalar, value: string): string {
  if (node.type === Scalar.QUOTE_DOUBLE) return JSON.stringify(value);
  if (node.type === Scalar.QUOTE_SINGLE) return `'${value.replace(/'/g, "''")}'`;
  return value;
}

/** Applies the edits to `text`; a no-op edit (same value) changes nothing. */
export function applyEdits(text: string, docs: Document[], edits: YamlEdit[]): Omit<EditResult, 'previousDigest'> {
  const pending = edits.filter((e) => String(scalarAt(e.doc, e.path)?.value ?? '\0') !== e.value);
  if (pending.length === 0) return { text, changed: false };
  const splices = pending.map((e) => ({ e, node: scalarAt(e.doc, e.path) }));
  if (splices.every((s) => s.node?.range && (s.node.type === Scalar.PLAIN || s.node.type === Scalar.QUOTE_DOUBLE || s.node.type === Scalar.QUOTE_SINGLE))) {
    let out = text;
    // From the end, so earlier offsets stay valid.
    for (const { e, node } of splices.sort((a, b) => b.node!.range![0] - a.node!.range![0])) {
      out = out.slice(0, node!.range![0]) + render(node!, e.value) + out.slice(node!.range![1]);
    }
    return { text: out, changed: true };
  }
  for (const e of pending) e.doc.setIn(e.path, e.value);
  return { text: docs.map((d) => d.toString({ lineWidth: 0 })).join(''), changed: true };
}

export const digestOf = (ref: unknown): string | undefined => (typeof ref === 'string' ? /@(sha256:[0-9a-f]{64})$/.exec(ref)?.[1] ?? (/^sha256:[0-9a-f]{64}$/.test(ref) ? ref : undefined) : undefined);
