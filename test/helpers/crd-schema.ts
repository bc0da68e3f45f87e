/**
 * Custom resources checked offline against the OpenAPI v3 schemas of the pinned Envoy
 * Gateway's CRDs (extracted by scripts/envoy-gateway-crds.ts into .tools/), with ajv, the way
 * the API server would take them with `kubectl apply` (strict field validation, the default):
 *
 *   - an unknown field is an error: every object schema that lists its properties and neither
 *     allows more (`additionalProperties`) nor keeps unknown ones
 *     (`x-kubernetes-preserve-unknown-fields`) gets `additionalProperties: false`;
 *   - `x-kubernetes-int-or-string` accepts an integer or a string; `nullable` accepts null;
 *   - `format` is not checked (the API server checks only a few), nor the CEL rules
 *     (`x-kubernetes-validations`), which need a CEL evaluator: docs/envoy-gateway.md.
 */
import Ajv from 'ajv';
import type { ValidateFunction } from 'ajv';
import { readFileSync } from 'node:fs';
import { pin, tool, type K8sObject } from './deploy.js';

type Schema = Record<string, unknown>;

/** The file scripts/install-tools.sh writes for the pinned version. */
export function crdSchemaFile(): string {
  return tool(`envoy-gateway/${pin('ENVOY_GATEWAY_VERSION')}/crd-schemas.json`);
}

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A copy of `schema` as the API server applies it (see the header). */
export function strictSchema(schema: Schema): Schema {
  const out: Schema = { ...schema };
  if (out['x-kubernetes-int-or-string'] === true) {
    out['anyOf'] = [{ type: 'integer' }, { type: 'string' }];
  }
  const properties = out['properties'];
  if (isSchema(properties)) {
    out['properties'] = Object.fromEntries(
      Object.entries(properties).map(([k, v]) => [k, isSchema(v) ? strictSchema(v) : v]),
    );
    if (
      out['additionalProperties'] === undefined &&
      out['x-kubernetes-preserve-unknown-fields'] !== true
    ) {
      out['additionalProperties'] = false;
    }
  }
  for (const key of ['items', 'additionalProperties'] as const) {
    const child = out[key];
    if (isSchema(child)) out[key] = strictSchema(child);
  }
  return out;
}

export class CrdValidator {
  readonly envoyGateway: string;
  private readonly schemas: Record<string, Schema>;
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly ajv = new Ajv({
    allErrors: true,
    nullable: true,
    format: false,
    jsonPointers: true,
  });

  constructor(file: string = crdSchemaFile()) {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as {
      envoyGateway: string;
      schemas: Record<string, Schema>;
    };
    this.envoyGateway = parsed.envoyGateway;
    this.schemas = parsed.schemas;
  }

  /** True for an object of a group these CRDs define (the rest is Kubernetes' own). */
  covers(object: K8sObject): boolean {
    const group = object.apiVersion.includes('/') ? object.apiVersion.split('/')[0]! : '';
    return Object.keys(this.schemas).some((key) => key.startsWith(`${group}/`));
  }

  /** The problems of one object, each as `<Kind>/<name> <path>: <message>`; empty when valid. */
  problems(object: K8sObject): string[] {
    const key = `${object.apiVersion}/${object.kind}`;
    const where = `${object.kind}/${object.metadata?.name ?? '?'}`;
    let validate = this.compiled.get(key);
    if (validate === undefined) {
      const schema = this.schemas[key];
      if (schema === undefined)
        return [`${where}: no CRD of Envoy Gateway ${this.envoyGateway} serves ${key}`];
      validate = this.ajv.compile(strictSchema(schema));
      this.compiled.set(key, validate);
    }
    if (validate(object)) return [];
    return (validate.errors ?? []).map((e) => {
      const extra = (e.params as { additionalProperty?: string }).additionalProperty;
      return `${where} ${e.dataPath || '/'}: ${e.message ?? 'invalid'}${extra !== undefined ? ` '${extra}'` : ''}`;
    });
  }
}
