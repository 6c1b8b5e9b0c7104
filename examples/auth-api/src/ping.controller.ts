import { Controller, Get } from '@nestjs/common';

// A normal route: what clients call, so what canary analysis measures (and
// the only kind of route the fault switch touches).
@Controller()
export class PingController {
  @Get('api/ping')
  ping(): { status: string } {
    return { status: 'pong' };
  }
}
