/**
 * Hiding secrets in text that quotes a target or an address setting. Targets, agent addresses and
 * endpoint lists end up in error messages, call details, warnings and trace lines; a credential a
 * user wrote into one must not follow it there. Every value below becomes `***`:
 *
 * - userinfo: `scheme://user:pass@host` → `scheme://***@host`, and a bare
 *   `user:pass@host:8500` (an address setting without a scheme) → `***@host:8500`;
 * - the value of a `name=value` pair (query parameter, `;attribute`, `&`- or `,`-separated) whose
 *   name is secret-bearing (`isSecretName`): `?token=abc` → `?token=***`;
 * - `Bearer <credentials>` and `Basic <credentials>` → `Bearer ***`, `Basic ***`.
 *
 * The text is otherwise unchanged, so a message still names the part that is wrong.
 */

/**
 * The last word of a parameter name that makes its value a secret. A name is split into words at
 * `-`, `_`, `.` and lower-to-upper case changes (`X-Consul-Token`, `access_token`, `apiKey`), and
 * is secret-bearing when its last word is one of these, or the whole name (lower case, separators
 * dropped) is one of `SECRET_COMPOUNDS`.
 */
export const SECRET_WORDS: readonly string[] = [
  'token',
  'password',
  'passwd',
  'pwd',
  'pass',
  'secret',
  'key',
  'apikey',
  'credential',
  'credentials',
  'auth',
  'authorization',
  'signature',
  'sig',
];

/** Whole names, written as one word, that hold secrets: `accesstoken`, `clientsecret`, … */
const SECRET_COMPOUNDS: readonly string[] = [
  'accesstoken',
  'authtoken',
  'idtoken',
  'refreshtoken',
  'apitoken',
  'bearertoken',
  'accesskey',
  'secretkey',
  'privatekey',
  'clientsecret',
  'xconsultoken',
];

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/** Whether a parameter, attribute or label name announces a secret value (`token`, `api_key`, `X-Consul-Token`). */
export function isSecretName(name: string): boolean {
  const decoded = decodeName(name).trim();
  const words = decoded
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[\s\-_.]+/)
    .filter((w) => w !== '');
  const last = words[words.length - 1]?.toLowerCase();
  if (last !== undefined && SECRET_WORDS.includes(last)) return true;
  return SECRET_COMPOUNDS.includes(decoded.toLowerCase().replace(/[\s\-_.]/g, ''));
}

const MASK = '***';

/** `scheme://userinfo@` — userinfo runs to the last `@` before the authority ends. */
const URI_USERINFO = /\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/?#"'<>]*@/g;
/**
 * A bare `userinfo@host` (no `//` before it): a run without separators ending in `@`, followed by
 * what starts a host. The run may begin with `scheme:` (`dns:u:p@host`), which is kept.
 */
const BARE_USERINFO =
  /(^|[\s"'(=,;/<>])([A-Za-z][A-Za-z0-9+.-]*:(?!\/\/))?(?!\*\*\*@)[^\s"'/?#@,;<>()=]+@(?=[A-Za-z0-9[])/g;
/**
 * `name=`, the name at the start or after a separator (`%26` and `%3F` count: a target nested in
 * another, as a composite's sources are, writes its `&` as `%26`). Only a secret name's value is
 * consumed (it runs to the next `&`, `;`, `,`, quote or space); after any other name the scan goes
 * on inside the value, which may itself be a target with parameters (`b=consul:///x?token=…`).
 */
const NAME_EQ = /(^|[\s?&;,"'(/]|%26|%3[Ff])((?:[^\s?&;,=#"'()/%]|%(?!26|3[Ff]))+)=/g;
const VALUE = /^[^\s&;,#"')]*/;

function maskSecretValues(text: string): string {
  let out = '';
  let copied = 0;
  NAME_EQ.lastIndex = 0;
  for (let m = NAME_EQ.exec(text); m !== null; m = NAME_EQ.exec(text)) {
    if (!isSecretName(m[2]!)) continue;
    const start = m.index + m[0].length;
    const value = VALUE.exec(text.slice(start))![0];
    if (value === '' || value === MASK) continue;
    out += text.slice(copied, start) + MASK;
    copied = start + value.length;
    NAME_EQ.lastIndex = copied;
  }
  return out + text.slice(copied);
}
/** `Bearer <token>`; `Basic <base64>` only when it looks encoded (a digit, `+`, `/`, `=` or mixed case), not "Basic auth". */
const AUTH_SCHEME =
  /\b([Bb]earer|BEARER)(\s+)[A-Za-z0-9\-._~+/]+=*|\b([Bb]asic|BASIC)(\s+)(?=[A-Za-z0-9+/]*(?:[0-9+/=]|[a-z][A-Z]|[A-Z]{2}))[A-Za-z0-9+/]+=*/g;

/**
 * `text` with every secret it quotes replaced by `***` (see the module comment for what counts).
 * Idempotent: redacting twice gives the same text.
 */
export function redactSecrets(text: string): string {
  if (typeof text !== 'string') return text;
  const withoutUserinfo = text
    .replace(URI_USERINFO, `$1${MASK}@`)
    .replace(BARE_USERINFO, (match: string, before: string, scheme: string | undefined) => {
      // `dns:u:p@h` keeps `dns:`; in `u:p@h` the `u:` is the user, not a scheme.
      const rest = match.slice(before.length + (scheme?.length ?? 0));
      const keep = scheme !== undefined && rest.includes(':') ? scheme : '';
      return `${before}${keep}${MASK}@`;
    });
  return maskSecretValues(withoutUserinfo).replace(
    AUTH_SCHEME,
    (_m, bearer: string | undefined, space1: string, basic: string, space2: string) =>
      bearer !== undefined ? `${bearer}${space1}${MASK}` : `${basic}${space2}${MASK}`,
  );
}
