/**
 * Typed errors of the Istio translator. Each carries a string `code`, and a
 * brand so that `instanceof` still works when an application ends up with two
 * copies of this package.
 */

const KINDS = Symbol.for('@grpc-lb/istio.IstioError.kinds');

export type IstioErrorCode =
  /** The YAML (or JSON) text cannot be read. */
  | 'BAD_YAML'
  /** A resource has a field of the wrong shape or value. */
  | 'BAD_RESOURCE'
  /** A resource for the host gives nothing the client can apply. */
  | 'UNUSABLE_RESOURCE'
  /** No VirtualService or DestinationRule applies to the host. */
  | 'NO_RESOURCE_FOR_HOST'
  /** The host asked for is not a usable name. */
  | 'BAD_HOST';

abstract class IstioError extends Error {
  readonly code: IstioErrorCode;

  constructor(code: IstioErrorCode, message: string) {
    super(message);
    this.code = code;
    Object.defineProperty(this, KINDS, { value: [this.constructor.name] });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    const kinds = (value as Record<symbol, unknown>)[KINDS];
    return Array.isArray(kinds) && kinds.includes(this.name);
  }
}

/** YAML or JSON text that cannot be read: names the file, the document (from 1) and the line. */
export class IstioYamlError extends IstioError {
  readonly file: string;
  /** 1-based index of the YAML document in the file (`---` separated). */
  readonly document: number;
  /** 1-based line in the file, when known. */
  readonly line: number | undefined;
  readonly problem: string;

  constructor(file: string, document: number, line: number | undefined, problem: string) {
    super(
      'BAD_YAML',
      `${file}: document ${document}${line === undefined ? '' : `, line ${line}`}: ${problem}`,
    );
    this.name = 'IstioYamlError';
    this.file = file;
    this.document = document;
    this.line = line;
    this.problem = problem;
  }
}

/**
 * A VirtualService or DestinationRule that cannot be used: names the resource
 * (`VirtualService prod/hello2`) and the field path in it (`http[0].route[1].weight`).
 */
export class IstioTranslationError extends IstioError {
  /** `Kind namespace/name`, or `''` when the problem is not one resource's (e.g. the host). */
  readonly resource: string;
  /** The field path inside the resource, `''` for the resource as a whole. */
  readonly field: string;
  readonly problem: string;

  constructor(
    code: Exclude<IstioErrorCode, 'BAD_YAML'>,
    resource: string,
    field: string,
    problem: string,
  ) {
    const where = [resource, field].filter((s) => s !== '').join(': ');
    super(code, where ? `${where}: ${problem}` : problem);
    this.name = 'IstioTranslationError';
    this.resource = resource;
    this.field = field;
    this.problem = problem;
  }
}
