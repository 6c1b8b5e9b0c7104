import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { JwtKey } from './config';

// The two key pairs the service signs and verifies tokens with: access
// tokens and refresh tokens, each a private key and its public half.
const pairs: ReadonlyArray<readonly [JwtKey, JwtKey]> = [
  ['JWT_ACCESS_PRIVATE_KEY', 'JWT_ACCESS_PUBLIC_KEY'],
  ['JWT_REFRESH_PRIVATE_KEY', 'JWT_REFRESH_PUBLIC_KEY'],
];

// checkJwtKeys answers 'up' when both pairs are present, parse as PEM keys,
// each public key is the half of its private key, and the two pairs differ;
// otherwise 'down: <what is wrong>', naming variables, never their values.
export function checkJwtKeys(keys: Record<JwtKey, string>): string {
  const problems: string[] = [];
  const spki: string[] = [];
  for (const [privName, pubName] of pairs) {
    const missing = [privName, pubName].filter((k) => keys[k] === '');
    if (missing.length > 0) {
      problems.push(...missing.map((k) => `${k} is not set`));
      continue;
    }
    const priv = parse(() => createPrivateKey(keys[privName]), privName, 'a PEM private key', problems);
    const pub = parse(() => createPublicKey(keys[pubName]), pubName, 'a PEM public key', problems);
    if (!priv || !pub) continue;
    if (der(createPublicKey(priv)) !== der(pub)) {
      problems.push(`${pubName} is not the public half of ${privName}`);
      continue;
    }
    spki.push(der(pub));
  }
  if (spki.length === 2 && spki[0] === spki[1]) {
    problems.push('the access and refresh key pairs are the same pair; give each its own');
  }
  return problems.length === 0 ? 'up' : `down: ${problems.join('; ')}`;
}

function parse(f: () => KeyObject, name: string, what: string, problems: string[]): KeyObject | undefined {
  try {
    return f();
  } catch {
    // The parser's message may quote the input: say only what was expected.
    problems.push(`${name} is not ${what}`);
    return undefined;
  }
}

function der(k: KeyObject): string {
  return k.export({ type: 'spki', format: 'der' }).toString('base64');
}
