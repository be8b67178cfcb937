import { Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ApiKeyGuard } from './api-key.guard';
import { ApiKeyService } from './api-key.service';
import { RequestLimiter } from './request-limiter.service';

/** API key authentication, the request limiter and the global role guard (every endpoint declares its roles). */
@Global()
@Module({
  providers: [ApiKeyService, RequestLimiter, { provide: APP_GUARD, useClass: ApiKeyGuard }],
  exports: [ApiKeyService, RequestLimiter],
})
export class AuthModule {}
