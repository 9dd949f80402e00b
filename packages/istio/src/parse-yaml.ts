import { LineCounter, parseAllDocuments } from 'yaml';
import { IstioYamlError } from './errors';

/** The resources of some YAML (or JSON) text that the translator reads, and what else was in it. */
export interface IstioResources {
  /** `networking.istio.io` VirtualServices (v1, v1beta1, v1alpha3), as plain objects. */
  readonly virtualServices: object[];
  /** `networking.istio.io` DestinationRules (v1, v1beta1, v1alpha3), as plain objects. */
  readonly destinationRules: object[];
  /** Every other resource, named: `Gateway prod/public (vs.yaml document 2)`. */
  readonly ignored: string[];
}

const ISTIO_GROUP = 'networking.istio.io/';
const ISTIO_VERSIONS = new Set(['v1', 'v1beta1', 'v1alpha3']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `Kind namespace/name` of a resource, with what is missing left out. */
export function resourceName(resource: Record<string, unknown>, kind?: string): string {
  const metadata = isObject(resource['metadata']) ? resource['metadata'] : {};
  const name = typeof metadata['name'] === 'string' ? metadata['name'] : '(unnamed)';
  const namespace = typeof metadata['namespace'] === 'string' ? metadata['namespace'] : undefined;
  const shownKind = kind ?? (typeof resource['kind'] === 'string' ? resource['kind'] : '(no kind)');
  return `${shownKind} ${namespace === undefined ? name : `${namespace}/${name}`}`;
}

/**
 * Reads Kubernetes resources from YAML (several documents separated by `---`)
 * or JSON, as `kubectl get -o yaml` or a manifest file holds them: `List`
 * objects (`kind: List`, `VirtualServiceList`, …) are opened. VirtualServices
 * and DestinationRules of `networking.istio.io` are returned; anything else is
 * named in `ignored`. Text that is not YAML, or a document that is not a
 * resource (no `kind`), is an `IstioYamlError` naming the file, document and
 * line.
 */
export function parseIstioYaml(text: string, file = '(input)'): IstioResources {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const result: IstioResources = { virtualServices: [], destinationRules: [], ignored: [] };
  if (!Array.isArray(documents)) return result;
  documents.forEach((doc, i) => {
    const number = i + 1;
    const lineOf = (offset: number | undefined): number | undefined =>
      offset === undefined ? undefined : lineCounter.linePos(offset).line;
    const error = doc.errors[0];
    if (error) {
      throw new IstioYamlError(file, number, lineOf(error.pos[0]), error.message.split('\n')[0]!);
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    const where = `${file} document ${number}`;
    const line = lineOf(doc.range[0]);
    const add = (item: unknown, path: string): void => {
      if (!isObject(item) || typeof item['kind'] !== 'string') {
        throw new IstioYamlError(
          file,
          number,
          line,
          `${path}expected a Kubernetes resource (an object with kind and apiVersion)`,
        );
      }
      const kind = item['kind'];
      if (kind === 'List' || (kind.endsWith('List') && Array.isArray(item['items']))) {
        const items = item['items'];
        if (!Array.isArray(items)) {
          throw new IstioYamlError(file, number, line, `${path}items: expected a list`);
        }
        items.forEach((entry: unknown, j) => add(entry, `${path}items[${j}]: `));
        return;
      }
      const apiVersion = typeof item['apiVersion'] === 'string' ? item['apiVersion'] : '';
      const istio =
        apiVersion.startsWith(ISTIO_GROUP) &&
        ISTIO_VERSIONS.has(apiVersion.slice(ISTIO_GROUP.length));
      if (istio && kind === 'VirtualService') result.virtualServices.push(item);
      else if (istio && kind === 'DestinationRule') result.destinationRules.push(item);
      else {
        const version = apiVersion ? ` ${apiVersion}` : ' (no apiVersion)';
        result.ignored.push(`${resourceName(item)}${version} (${where})`);
      }
    };
    add(value, '');
  });
  return result;
}
