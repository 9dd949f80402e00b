export { parseIstioYaml, type IstioResources } from './parse-yaml';
export { translateIstio, type IstioTranslation, type IstioTranslationInput } from './translate';
export { IstioTranslationError, IstioYamlError, type IstioErrorCode } from './errors';
export { FIVE_XX_STATUSES, GATEWAY_STATUSES } from './destination-rule';
