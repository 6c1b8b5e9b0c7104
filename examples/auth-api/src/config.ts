// The service's configuration, read from exactly the variables the chart
// gives it: the ConfigMap <service>-config and the Secret <service>-secrets.
// A missing or malformed variable fails the start with its name; values are
// never echoed, so a password can't leak into a log.

export interface Config {
  nodeEnv: string;
  port: number;
  tcpPort: number;
  logLevel: string;
  mysql: {
    host: string;
    port: number;
    database: string;
    user: string;
    password: string;
    connectionLimit: number;
    maxIdle: number;
    idleTimeoutMs: number;
    connectTimeoutMs: number;
  };
  redis: {
    host: string;
    port: number;
    db: number;
    password: string;
    connectTimeoutMs: number;
  };
  // The fault switch (development only; all 0 when unset): the share of
  // normal requests answered 500, the share delayed and by how long.
  faults: { errorRatio: number; delayRatio: number; delayMs: number };
  // The JWT key pairs as PEM text, '' when unset. They are not needed to
  // start: without them the service is not ready (see jwt.ts), which keeps it
  // out of rotation instead of crash-looping on a Secret created late.
  jwt: Record<JwtKey, string>;
}

// ConfigKeys are the ConfigMap's keys, SecretKeys the Secret's.
export const ConfigKeys = [
  'NODE_ENV', 'PORT', 'TCP_PORT', 'LOG_LEVEL',
  'MYSQL_HOST', 'MYSQL_PORT', 'MYSQL_DATABASE', 'MYSQL_CONNECTION_LIMIT', 'MYSQL_MAX_IDLE',
  'MYSQL_IDLE_TIMEOUT_MS', 'MYSQL_CONNECT_TIMEOUT_MS',
  'REDIS_HOST', 'REDIS_PORT', 'REDIS_DB', 'REDIS_CONNECT_TIMEOUT_MS',
] as const;
// JwtKeys come from the Secret <service>-jwt, the others from <service>-secrets.
export const JwtKeys = [
  'JWT_ACCESS_PRIVATE_KEY', 'JWT_ACCESS_PUBLIC_KEY', 'JWT_REFRESH_PRIVATE_KEY', 'JWT_REFRESH_PUBLIC_KEY',
] as const;
export type JwtKey = (typeof JwtKeys)[number];
export const SecretKeys = ['MYSQL_USER', 'MYSQL_PASSWORD', 'REDIS_PASSWORD', ...JwtKeys] as const;
// FaultKeys are optional and set on the container by the chart's
// services.<name>.faults, which only development may render.
export const FaultKeys = ['FAULT_ERROR_RATIO', 'FAULT_DELAY_MS', 'FAULT_DELAY_RATIO'] as const;

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env): Config {
  const problems: string[] = [];
  const str = (key: string): string => {
    const v = env[key];
    if (v === undefined || v === '') {
      problems.push(`${key} is not set`);
      return '';
    }
    return v;
  };
  const int = (key: string, min: number, max: number): number => {
    const raw = str(key);
    if (raw === '') return 0;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${key} must be an integer from ${min} to ${max}`);
    }
    return n;
  };
  const optionalNumber = (key: string, unset: number, min: number, max: number, integer: boolean): number => {
    const raw = env[key];
    if (raw === undefined || raw === '') return unset;
    const n = Number(raw);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      problems.push(`${key} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
    return n;
  };
  const config: Config = {
    nodeEnv: str('NODE_ENV'),
    port: int('PORT', 0, 65535),
    tcpPort: int('TCP_PORT', 0, 65535),
    logLevel: str('LOG_LEVEL'),
    mysql: {
      host: str('MYSQL_HOST'),
      port: int('MYSQL_PORT', 1, 65535),
      database: str('MYSQL_DATABASE'),
      user: str('MYSQL_USER'),
      password: str('MYSQL_PASSWORD'),
      connectionLimit: int('MYSQL_CONNECTION_LIMIT', 1, 1000),
      maxIdle: int('MYSQL_MAX_IDLE', 0, 1000),
      idleTimeoutMs: int('MYSQL_IDLE_TIMEOUT_MS', 1000, 86400000),
      connectTimeoutMs: int('MYSQL_CONNECT_TIMEOUT_MS', 1, 600000),
    },
    redis: {
      host: str('REDIS_HOST'),
      port: int('REDIS_PORT', 1, 65535),
      db: int('REDIS_DB', 0, 15),
      password: str('REDIS_PASSWORD'),
      connectTimeoutMs: int('REDIS_CONNECT_TIMEOUT_MS', 1, 600000),
    },
    faults: {
      errorRatio: optionalNumber('FAULT_ERROR_RATIO', 0, 0, 1, false),
      delayMs: optionalNumber('FAULT_DELAY_MS', 0, 0, 60000, true),
      delayRatio: optionalNumber('FAULT_DELAY_RATIO', 1, 0, 1, false),
    },
    jwt: Object.fromEntries(JwtKeys.map((k) => [k, env[k] ?? ''])) as Record<JwtKey, string>,
  };
  const faulty = FaultKeys.filter((k) => env[k] !== undefined && env[k] !== '');
  if (faulty.length > 0 && config.nodeEnv === 'production') {
    problems.push(`${faulty.join(', ')}: fault injection is refused when NODE_ENV is production`);
  }
  if (config.mysql.maxIdle > config.mysql.connectionLimit) {
    problems.push('MYSQL_MAX_IDLE must not exceed MYSQL_CONNECTION_LIMIT');
  }
  if (problems.length > 0) {
    throw new Error(`configuration: ${problems.join('; ')}`);
  }
  return config;
}
