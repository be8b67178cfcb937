import { randomUUID } from 'node:crypto';
import type { PrismaClient } from '../prisma-client';
import type { Prisma, VCenter } from '../generated/client';

export interface NewVCenter {
  name: string;
  url: string;
  username: string;
  /** Already sealed (SecretBox); this repository never sees the password in clear. */
  passwordEnc: string;
  insecure: boolean;
  thumbprint: string | null;
  /** How the Capture Agent reads disk data (libs/contracts DiskReaderSpec). */
  diskReader: object;
}

/** The vcenters table. */
export class VCenterRepository {
  constructor(private readonly prisma: PrismaClient) {}

  find(id: string): Promise<VCenter | null> {
    return this.prisma.vCenter.findUnique({ where: { id } });
  }

  findByName(name: string): Promise<VCenter | null> {
    return this.prisma.vCenter.findUnique({ where: { name } });
  }

  /** By name. */
  list(): Promise<VCenter[]> {
    return this.prisma.vCenter.findMany({ orderBy: { name: 'asc' } });
  }

  create(v: NewVCenter): Promise<VCenter> {
    return this.prisma.vCenter.create({ data: { id: randomUUID(), ...v, diskReader: v.diskReader as Prisma.InputJsonObject } });
  }
}
