/**
 * Validation and output. Every object is checked against the Kubernetes API schemas
 * (kubernetes-models, generated from the OpenAPI of Kubernetes) before anything is printed;
 * output is multi-document YAML (`---`), or a `v1` List as JSON for `--json`.
 */
import { stringify } from 'yaml';
import { TesseraError } from '../../shared/errors.js';

/** A kubernetes-models object: validates itself, serialises to plain JSON. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  validate(): void;
  toJSON(): unknown;
}

/** Throws TESSERA_K8S_MANIFEST_OBJECT_INVALID naming the first object that fails, and why. */
export function validateAll(objects: readonly KubeObject[]): void {
  for (const obj of objects) {
    try {
      obj.validate();
    } catch (e) {
      const where = `${obj.kind} ${obj.metadata?.namespace ? `${obj.metadata.namespace}/` : ''}${obj.metadata?.name ?? '(unnamed)'}`;
      throw new TesseraError('TESSERA_K8S_MANIFEST_OBJECT_INVALID', `${where} failed the Kubernetes API schema: ${(e as Error).message}; nothing was printed`);
    }
  }
}

/** Plain JSON of each object (what kubectl receives). */
export function plainObjects(objects: readonly KubeObject[]): Record<string, unknown>[] {
  return objects.map((o) => JSON.parse(JSON.stringify(o.toJSON())) as Record<string, unknown>);
}

/** Multi-document YAML, each document opened by `---`, with a header comment. */
export function toYaml(objects: readonly KubeObject[], header: string): string {
  const docs = plainObjects(objects).map((o) => `---\n${stringify(o, { lineWidth: 0 })}`);
  return `${header.split('\n').map((l) => `# ${l}`).join('\n')}\n${docs.join('')}`;
}

/** A `v1` List holding the objects (`kubectl apply -f` accepts it). */
export function toJsonList(objects: readonly KubeObject[]): string {
  return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: plainObjects(objects) }, null, 2)}\n`;
}
