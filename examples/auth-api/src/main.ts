import 'reflect-metadata';
import { INestApplication, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MicroserviceOptions, Transport } from '@nestjs/microservices';
import { AppModule } from './app.module';
import { loadConfig } from './config';

const levels: Record<string, LogLevel[]> = {
  debug: ['error', 'warn', 'log', 'debug'],
  info: ['error', 'warn', 'log'],
  warn: ['error', 'warn'],
  error: ['error'],
};

// bootstrap starts the HTTP listener on PORT and the TCP transport on
// TCP_PORT, both on all interfaces (the pod's IP).
export async function bootstrap(env: Record<string, string | undefined> = process.env): Promise<INestApplication> {
  const config = loadConfig(env);
  const app = await NestFactory.create(AppModule.forConfig(config), {
    logger: levels[config.logLevel] ?? levels.info,
  });
  app.enableShutdownHooks();
  app.connectMicroservice<MicroserviceOptions>({
    transport: Transport.TCP,
    options: { host: '0.0.0.0', port: config.tcpPort },
  });
  await app.startAllMicroservices();
  await app.listen(config.port, '0.0.0.0');
  return app;
}

if (require.main === module) {
  bootstrap().catch((err: Error) => {
    console.error(`start failed: ${err.message}`);
    process.exit(1);
  });
}
