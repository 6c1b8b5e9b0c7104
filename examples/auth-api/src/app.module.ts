import { DynamicModule, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Config } from './config';
import { FaultInjection } from './faults';
import { HealthController } from './health.controller';
import { HttpMetrics, Metrics } from './metrics';
import { PingController } from './ping.controller';
import { CONFIG, Stores } from './stores';

@Module({})
export class AppModule {
  static forConfig(config: Config): DynamicModule {
    return {
      module: AppModule,
      controllers: [HealthController, PingController],
      providers: [
        { provide: CONFIG, useValue: config },
        Stores,
        Metrics,
        // Outermost first: the metrics see what the fault switch did.
        { provide: APP_INTERCEPTOR, useClass: HttpMetrics },
        { provide: APP_INTERCEPTOR, useClass: FaultInjection },
      ],
    };
  }
}
