import { Controller, Get, Header, HttpStatus, Res } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { Metrics } from './metrics';
import { Stores } from './stores';

// The part of the HTTP response readiness needs (Express's, under Nest).
interface StatusResponse {
  status(code: number): unknown;
}

@Controller()
export class HealthController {
  constructor(private readonly stores: Stores, private readonly metrics: Metrics) {}

  // Liveness: the process answers. Never depends on the data server.
  @Get('health')
  health(): { status: string } {
    return { status: 'ok' };
  }

  // Readiness: 200 only when MySQL and Redis both answer.
  @Get('health/ready')
  async ready(@Res({ passthrough: true }) res: StatusResponse): Promise<{ status: string; checks: Record<string, string> }> {
    const checks = await this.stores.check();
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
