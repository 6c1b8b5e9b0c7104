import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { createPool, Pool } from 'mysql2/promise';
import { Config } from './config';

export const CONFIG = Symbol('CONFIG');

// Stores owns the connections to the service's MySQL and Redis. Neither is
// needed to start: a data server that is down makes the service not ready,
// not dead, so Kubernetes keeps it out of rotation instead of restarting it.
@Injectable()
export class Stores implements OnApplicationShutdown {
  readonly mysql: Pool;
  readonly redis: Redis;
  private readonly timeoutMs: number;

  constructor(@Inject(CONFIG) config: Config) {
    this.timeoutMs = Math.min(config.mysql.connectTimeoutMs, config.redis.connectTimeoutMs);
    this.mysql = createPool({
      host: config.mysql.host,
      port: config.mysql.port,
      user: config.mysql.user,
      password: config.mysql.password,
      database: config.mysql.database,
      connectionLimit: config.mysql.connectionLimit,
      maxIdle: config.mysql.maxIdle,
      idleTimeout: config.mysql.idleTimeoutMs,
      connectTimeout: config.mysql.connectTimeoutMs,
      waitForConnections: true,
    });
    this.redis = new Redis({
      host: config.redis.host,
      port: config.redis.port,
      db: config.redis.db,
      password: config.redis.password,
      connectTimeout: config.redis.connectTimeoutMs,
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    // Connection errors surface through readiness; don't crash on them.
    this.redis.on('error', () => undefined);
    this.redis.connect().catch(() => undefined);
  }

  // check answers 'up' or 'down: <reason>' for each store, within the
  // connect timeout. Reasons are driver messages, which never hold passwords.
  async check(): Promise<Record<'mysql' | 'redis', string>> {
    const [mysql, redis] = await Promise.all([
      this.bounded(this.mysql.query('SELECT 1').then(() => undefined)),
      this.bounded(this.redis.ping().then(() => undefined)),
    ]);
    return { mysql, redis };
  }

  private async bounded(p: Promise<void>): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs}ms`)), this.timeoutMs);
    });
    try {
      await Promise.race([p, timeout]);
      return 'up';
    } catch (err) {
      return `down: ${(err as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.mysql.end(), this.redis.quit()]);
    this.redis.disconnect();
  }
}
