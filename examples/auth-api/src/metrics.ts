import { CallHandler, ExecutionContext, HttpException, Injectable, NestInterceptor } from '@nestjs/common';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { Observable } from 'rxjs';
import { finalize, tap } from 'rxjs/operators';

// Metrics holds the service's Prometheus registry: the process defaults plus
// the two HTTP series the dashboards and alerts read.
@Injectable()
export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests served, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency in seconds, by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}

// HttpMetrics records every HTTP request under its route template (never
// the raw path, which would explode the label set).
@Injectable()
export class HttpMetrics implements NestInterceptor {
  constructor(private readonly metrics: Metrics) {}

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'http') return next.handle();
    const req = ctx.switchToHttp().getRequest();
    const res = ctx.switchToHttp().getResponse();
    const end = this.metrics.duration.startTimer();
    // A handler that throws has not set the response's status yet when this
    // runs (Nest's exception filter sets it later): take it from the error.
    let failed: number | undefined;
    return next.handle().pipe(
      tap({ error: (err: unknown) => { failed = err instanceof HttpException ? err.getStatus() : 500; } }),
      finalize(() => {
        const labels = {
          method: req.method as string,
          route: (req.route?.path as string | undefined) ?? 'unmatched',
          status_code: String(failed ?? res.statusCode),
        };
        this.metrics.requests.inc(labels);
        end(labels);
      }),
    );
  }
}
