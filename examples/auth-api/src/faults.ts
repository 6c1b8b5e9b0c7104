import { CallHandler, ExecutionContext, Inject, Injectable, InternalServerErrorException, NestInterceptor } from '@nestjs/common';
import { Observable, mergeMap, throwError, timer } from 'rxjs';
import { Config } from './config';
import { CONFIG } from './stores';

// Share picks a fixed share of a sequence of requests, spread evenly and the
// same every run: with ratio 0.5 every second request, with 0.25 every fourth,
// so N requests pick exactly floor(N * ratio) of them. A random draw would
// make a test, or a canary analysis proof, depend on luck.
export class Share {
  private seen = 0;

  constructor(private readonly ratio: number) {}

  next(): boolean {
    this.seen++;
    // The epsilon keeps 0.29 * 100 (28.999…) at 29.
    return Math.floor(this.seen * this.ratio + 1e-9) > Math.floor((this.seen - 1) * this.ratio + 1e-9);
  }
}

// exempt routes never see a fault: probes and scrapes must keep telling the
// truth about the pod, or the kubelet restarts it and Prometheus loses it.
export function exempt(path: string): boolean {
  return path === '/health' || path.startsWith('/health/') || path === '/metrics';
}

// FaultInjection is the development switch behind FAULT_ERROR_RATIO,
// FAULT_DELAY_MS and FAULT_DELAY_RATIO (the chart's services.<name>.faults):
// it delays a share of the requests to normal routes and answers a share 500.
// It runs inside HttpMetrics, so both show in http_requests_total and
// http_request_duration_seconds exactly as real failures would.
@Injectable()
export class FaultInjection implements NestInterceptor {
  private readonly errors: Share;
  private readonly delays: Share;
  private readonly delayMs: number;

  constructor(@Inject(CONFIG) config: Config) {
    this.errors = new Share(config.faults.errorRatio);
    this.delays = new Share(config.faults.delayRatio);
    this.delayMs = config.faults.delayMs;
  }

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (ctx.getType() !== 'http') return next.handle();
    const req = ctx.switchToHttp().getRequest();
    if (exempt((req.route?.path as string | undefined) ?? (req.path as string))) return next.handle();
    const delay = this.delayMs > 0 && this.delays.next() ? this.delayMs : 0;
    const served = this.errors.next()
      ? throwError(() => new InternalServerErrorException('injected fault (FAULT_ERROR_RATIO)'))
      : next.handle();
    return delay > 0 ? timer(delay).pipe(mergeMap(() => served)) : served;
  }
}
