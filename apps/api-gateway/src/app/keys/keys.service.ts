import { Injectable, NotFoundException } from '@nestjs/common';
import { ApiKeyRepository, type ApiKeyInfo, type ApiRole, type CreatedApiKey } from '@sendense/db';
import { ApiKeyService } from '../auth/api-key.service';

/** Managing API keys (admin only); verifying them is the auth module's ApiKeyService. */
@Injectable()
export class KeysService {
  constructor(
    private readonly keys: ApiKeyRepository,
    private readonly auth: ApiKeyService,
  ) {}

  list(): Promise<ApiKeyInfo[]> {
    return this.keys.list();
  }

  create(name: string, role: ApiRole): Promise<CreatedApiKey> {
    return this.keys.create(name, role);
  }

  async revoke(id: string): Promise<void> {
    if (!(await this.keys.revoke(id))) throw new NotFoundException(`no active API key with id ${id}`);
    // A revoked key must stop working now, not when its cache entry expires.
    this.auth.forget();
  }
}
