/**
 * The translator's interface, as the commands use it. Stand-in until the translator package is a
 * dependency of this one: every call fails with a clear message.
 */

export interface IstioResources {
  readonly virtualServices: object[];
  readonly destinationRules: object[];
  readonly ignored: string[];
}

export interface IstioTranslation {
  serviceConfig: Record<string, unknown>;
  warnings: string[];
  used: string[];
}

export class IstioYamlError extends Error {}

export class IstioTranslationError extends Error {
  readonly code: string = 'UNUSABLE_RESOURCE';
}

export function parseIstioYaml(_text: string, _file?: string): IstioResources {
  throw new Error('the Istio translator is not available in this build');
}

export function translateIstio(_input: {
  host: string;
  namespace?: string;
  virtualServices: readonly object[];
  destinationRules: readonly object[];
}): IstioTranslation {
  throw new Error('the Istio translator is not available in this build');
}
