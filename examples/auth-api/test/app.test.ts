// The API's own tests. They run against real MySQL and Redis, reached through
// exactly the environment the chart gives the service (in `make test` the Go
// suite starts MariaDB and Redis and computes that environment with
// pipelines/appenv; in `dagger call integration-test` the same package feeds
// Dagger services). Nothing here invents a host, port or password.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { INestApplication } from '@nestjs/common';
import { bootstrap } from '../src/main';
import { ConfigKeys, SecretKeys, loadConfig } from '../src/config';

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
    assert.deepEqual(JSON.parse(res.body), { status: 'ok', checks: { mysql: 'up', redis: 'up' } });
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
