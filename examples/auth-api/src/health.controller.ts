import { Controller, Get, Header, HttpStatus, Inject, Res } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { Config } from './config';
import { checkJwtKeys } from './jwt';
import { Metrics } from './metrics';
import { CONFIG, Stores } from './stores';

// The part of the HTTP response readiness needs (Express's, under Nest).
interface StatusResponse {
  status(code: number): unknown;
}

@Controller()
export class HealthController {
  // The keys do not change while the process runs: check them once.
  private readonly jwt: string;

  constructor(private readonly stores: Stores, private readonly metrics: Metrics, @Inject(CONFIG) config: Config) {
    this.jwt = checkJwtKeys(config.jwt);
  }

  // Liveness: the process answers. Never depends on the data server.
  @Get('health')
  health(): { status: string } {
    return { status: 'ok' };
  }

  // Readiness: 200 only when MySQL and Redis both answer and the JWT key
  // pairs are usable: a pod that cannot sign or verify tokens must not serve.
  @Get('health/ready')
  async ready(@Res({ passthrough: true }) res: StatusResponse): Promise<{ status: string; checks: Record<string, string> }> {
    const checks: Record<string, string> = { ...(await this.stores.check()), jwt: this.jwt };
    const up = Object.values(checks).every((c) => c === 'up');
    res.status(up ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return { status: up ? 'ok' : 'unavailable', checks };
  }

  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  async scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }

  // The TCP transport's own health check, for callers such as authz-server.
  @MessagePattern({ cmd: 'ping' })
  ping(): string {
    return 'pong';
  }
}
