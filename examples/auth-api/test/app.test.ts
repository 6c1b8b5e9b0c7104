// The API's own tests. They run against real MySQL and Redis, reached through
// exactly the environment the chart gives the service (in `make test` the Go
// suite starts MariaDB and Redis and computes that environment with
// pipelines/appenv; in `dagger call integration-test` the same package feeds
// Dagger services). Nothing here invents a host, port or password.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import { bootstrap } from '../src/main';
import { ConfigKeys, FaultKeys, JwtKeys, SecretKeys, loadConfig } from '../src/config';
import { Share, exempt } from '../src/faults';
import { checkJwtKeys } from '../src/jwt';

const env = process.env;
const base = `http://127.0.0.1:${env.PORT}`;

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(base + path, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
}

// The data stores may still be starting when the tests begin: wait for
// readiness, bounded.
async function eventuallyReady(deadlineMs: number): Promise<{ status: number; body: string }> {
  const end = Date.now() + deadlineMs;
  let last = await get('/health/ready');
  while (last.status !== 200 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 500));
    last = await get('/health/ready');
  }
  return last;
}

describe('configuration', () => {
  it('is complete in the environment the chart provides', () => {
    for (const key of [...ConfigKeys, ...SecretKeys]) {
      assert.ok(env[key], `${key} must be set by the integration environment`);
    }
  });

  it('names a missing variable without echoing any value', () => {
    const broken = { ...env, MYSQL_HOST: '', REDIS_PORT: 'six' };
    assert.throws(() => loadConfig(broken), (err: Error) => {
      assert.match(err.message, /MYSQL_HOST is not set/);
      assert.match(err.message, /REDIS_PORT must be an integer/);
      assert.ok(!err.message.includes(env.MYSQL_PASSWORD as string), 'no password in the message');
      return true;
    });
  });
});

describe('the pool settings', () => {
  it('refuse more idle connections than the pool may hold', () => {
    assert.throws(() => loadConfig({ ...env, MYSQL_CONNECTION_LIMIT: '10', MYSQL_MAX_IDLE: '11' }),
      /MYSQL_MAX_IDLE must not exceed MYSQL_CONNECTION_LIMIT/);
  });
});

describe('the running API', () => {
  let app: INestApplication;

  before(async () => {
    app = await bootstrap(env);
  });

  after(async () => {
    await app?.close();
  });

  it('is live', async () => {
    const res = await get('/health');
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
  });

  it('is ready once MySQL and Redis answer', async () => {
    const res = await eventuallyReady(60_000);
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok', checks: { mysql: 'up', redis: 'up', jwt: 'up' } });
  });

  it('exports request counts and latencies by route template', async () => {
    await get('/health');
    const res = await get('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.body, /http_requests_total\{method="GET",route="\/health",status_code="200"\} \d+/);
    assert.match(res.body, /http_request_duration_seconds_bucket\{le="0\.005",method="GET",route="\/health",status_code="200"\}/);
    assert.match(res.body, /process_cpu_user_seconds_total/);
  });

  it('answers on the TCP transport port', async () => {
    await new Promise<void>((resolve, reject) => {
      const sock = connect(Number(env.TCP_PORT), '127.0.0.1', () => {
        sock.end();
        resolve();
      });
      sock.setTimeout(5_000, () => reject(new Error('TCP transport did not accept a connection')));
      sock.on('error', reject);
    });
  });
});

// The JWT key pairs as the Secret <service>-jwt holds them, broken the ways a
// hand-made Secret gets broken.
describe('the JWT keys', () => {
  const jwtKeys = () => Object.fromEntries(JwtKeys.map((k) => [k, env[k] as string])) as Record<(typeof JwtKeys)[number], string>;
  const material = () => JwtKeys.map((k) => env[k] as string);
  const noKeyIn = (text: string) => {
    for (const pem of material()) {
      const body = pem.split('\n').filter((l) => l && !l.startsWith('-----'))[0];
      assert.ok(!text.includes(body), 'no key material in the answer');
    }
  };
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cases: Array<{ name: string; change: Record<string, string>; want: RegExp }> = [
    { name: 'a missing public half', change: { JWT_ACCESS_PUBLIC_KEY: '' }, want: /^down: JWT_ACCESS_PUBLIC_KEY is not set$/ },
    { name: 'all keys missing', change: Object.fromEntries(JwtKeys.map((k) => [k, ''])),
      want: /^down: JWT_ACCESS_PRIVATE_KEY is not set; JWT_ACCESS_PUBLIC_KEY is not set; JWT_REFRESH_PRIVATE_KEY is not set; JWT_REFRESH_PUBLIC_KEY is not set$/ },
    { name: 'a public key of another pair', change: { JWT_REFRESH_PUBLIC_KEY: other.publicKey.export({ type: 'spki', format: 'pem' }) as string },
      want: /^down: JWT_REFRESH_PUBLIC_KEY is not the public half of JWT_REFRESH_PRIVATE_KEY$/ },
    { name: 'halves swapped between pairs', change: { JWT_ACCESS_PUBLIC_KEY: env.JWT_REFRESH_PUBLIC_KEY as string },
      want: /^down: JWT_ACCESS_PUBLIC_KEY is not the public half of JWT_ACCESS_PRIVATE_KEY$/ },
    { name: 'one pair for both', change: { JWT_REFRESH_PRIVATE_KEY: env.JWT_ACCESS_PRIVATE_KEY as string, JWT_REFRESH_PUBLIC_KEY: env.JWT_ACCESS_PUBLIC_KEY as string },
      want: /^down: the access and refresh key pairs are the same pair; give each its own$/ },
    { name: 'not PEM', change: { JWT_ACCESS_PRIVATE_KEY: (env.JWT_ACCESS_PRIVATE_KEY as string).slice(0, 80) },
      want: /^down: JWT_ACCESS_PRIVATE_KEY is not a PEM private key$/ },
  ];
  it('are usable as the integration environment gives them', () => {
    assert.equal(checkJwtKeys(jwtKeys()), 'up');
  });
  for (const tc of cases) {
    it(`are refused with ${tc.name}, naming the variable and no key`, () => {
      const got = checkJwtKeys({ ...jwtKeys(), ...tc.change });
      assert.match(got, tc.want);
      noKeyIn(got);
    });
  }

  it('missing keep the running API alive but not ready', async () => {
    // Port 0: the system picks free ports, so this second instance cannot collide.
    const app = await bootstrap({ ...env, PORT: '0', TCP_PORT: '0', JWT_REFRESH_PRIVATE_KEY: '' });
    const port = (app.getHttpServer().address() as { port: number }).port;
    try {
      const live = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(live.status, 200, 'liveness never depends on the keys');
      const ready = await fetch(`http://127.0.0.1:${port}/health/ready`, { signal: AbortSignal.timeout(10_000) });
      const body = await ready.text();
      assert.equal(ready.status, 503, body);
      assert.equal(JSON.parse(body).checks.jwt, 'down: JWT_REFRESH_PRIVATE_KEY is not set');
      noKeyIn(body);
    } finally {
      await app.close();
    }
  });
});

// The fault switch (the chart's services.<name>.faults, development only):
// a fixed share of the requests to normal routes fail or wait, counted by the
// metrics like real failures; probes and scrapes never do.
describe('the fault switch', () => {
  it('is off unless set, and refuses bad values naming the variable', () => {
    for (const k of FaultKeys) assert.equal(env[k], undefined, `${k} must not be set by the integration environment`);
    assert.deepEqual(loadConfig(env).faults, { errorRatio: 0, delayRatio: 1, delayMs: 0 });
    assert.throws(() => loadConfig({ ...env, FAULT_ERROR_RATIO: '1.5', FAULT_DELAY_MS: '0.5', FAULT_DELAY_RATIO: 'half' }), (err: Error) => {
      assert.match(err.message, /FAULT_ERROR_RATIO must be a number from 0 to 1/);
      assert.match(err.message, /FAULT_DELAY_MS must be an integer from 0 to 60000/);
      assert.match(err.message, /FAULT_DELAY_RATIO must be a number from 0 to 1/);
      return true;
    });
  });

  it('is refused in production', () => {
    assert.throws(() => loadConfig({ ...env, NODE_ENV: 'production', FAULT_ERROR_RATIO: '0.5' }),
      /FAULT_ERROR_RATIO: fault injection is refused when NODE_ENV is production/);
  });

  it('picks an exact, evenly spread share', () => {
    const pick = (ratio: number, n: number) => Array.from({ length: n }, ((s) => () => s.next())(new Share(ratio)));
    assert.deepEqual(pick(0.5, 6), [false, true, false, true, false, true]);
    assert.deepEqual(pick(0, 4), [false, false, false, false]);
    assert.deepEqual(pick(1, 4), [true, true, true, true]);
    for (const ratio of [0.1, 0.25, 0.29, 0.3, 0.7]) {
      assert.equal(pick(ratio, 100).filter(Boolean).length, Math.round(ratio * 100), `ratio ${ratio}`);
    }
  });

  it('leaves probes and scrapes alone', () => {
    assert.ok(exempt('/health') && exempt('/health/ready') && exempt('/metrics'));
    assert.ok(!exempt('/api/ping') && !exempt('/healthz'));
  });

  // A second instance on free ports with the switch on.
  async function withFaults(faults: Record<string, string>, body: (get: (path: string) => Promise<{ status: number; body: string; ms: number }>) => Promise<void>) {
    const app = await bootstrap({ ...env, PORT: '0', TCP_PORT: '0', ...faults });
    const port = (app.getHttpServer().address() as { port: number }).port;
    const get = async (path: string) => {
      const start = Date.now();
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
      return { status: res.status, body: await res.text(), ms: Date.now() - start };
    };
    try {
      await body(get);
    } finally {
      await app.close();
    }
  }
  const series = (metrics: string, name: string, status: string): number => {
    const m = metrics.match(new RegExp(`^${name}\\{method="GET",route="/api/ping",status_code="${status}"\\} (\\d+)$`, 'm'));
    return m ? Number(m[1]) : 0;
  };

  it('answers the chosen share of normal requests 500 and counts them', async () => {
    await withFaults({ FAULT_ERROR_RATIO: '0.5' }, async (get) => {
      const codes: number[] = [];
      for (let i = 0; i < 10; i++) codes.push((await get('/api/ping')).status);
      assert.deepEqual(codes, [200, 500, 200, 500, 200, 500, 200, 500, 200, 500]);
      for (let i = 0; i < 4; i++) assert.equal((await get('/health')).status, 200, 'liveness never fails on purpose');
      const metrics = await get('/metrics');
      assert.equal(metrics.status, 200);
      assert.equal(series(metrics.body, 'http_requests_total', '500'), 5);
      assert.equal(series(metrics.body, 'http_requests_total', '200'), 5);
      assert.equal(series(metrics.body, 'http_request_duration_seconds_count', '500'), 5);
    });
  });

  it('delays the chosen share of normal requests, as the latency histogram shows', async () => {
    await withFaults({ FAULT_DELAY_MS: '1500', FAULT_DELAY_RATIO: '0.5' }, async (get) => {
      const took: number[] = [];
      for (let i = 0; i < 4; i++) {
        const res = await get('/api/ping');
        assert.equal(res.status, 200, 'a delayed request still succeeds');
        took.push(res.ms);
      }
      assert.ok(took[1] >= 1500 && took[3] >= 1500, `the 2nd and 4th requests wait 1.5 s: ${took}`);
      const body = (await get('/metrics')).body;
      const bucket = body.match(/^http_request_duration_seconds_bucket\{le="1",method="GET",route="\/api\/ping",status_code="200"\} (\d+)$/m);
      assert.ok(bucket, body);
      assert.equal(Number(bucket[1]), 2, 'two requests under 1 s, two above');
      assert.equal(series(body, 'http_request_duration_seconds_count', '200'), 4);
    });
  });
});
