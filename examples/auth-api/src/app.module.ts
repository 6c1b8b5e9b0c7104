import { DynamicModule, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { Config } from './config';
import { HealthController } from './health.controller';
import { HttpMetrics, Metrics } from './metrics';
import { CONFIG, Stores } from './stores';

@Module({})
export class AppModule {
  static forConfig(config: Config): DynamicModule {
    return {
      module: AppModule,
      controllers: [HealthController],
      providers: [
        { provide: CONFIG, useValue: config },
        Stores,
        Metrics,
        { provide: APP_INTERCEPTOR, useClass: HttpMetrics },
      ],
    };
  }
}
