import { CommandError, run } from '@sendense/process';

/** A partition as byte ranges on the exported disk (what losetup needs). */
export interface PartitionEntry {
  /** 1-based partition number as the table gives it (5+ for MBR logical). */
  index: number;
  name: string;
  offsetBytes: number;
  sizeBytes: number;
  /** GPT type GUID or MBR type byte (hex) as sfdisk prints it. */
  type: string;
}

export interface PartitionTable {
  label: 'gpt' | 'dos' | string;
  sectorSize: number;
  partitions: PartitionEntry[];
}

interface SfdiskJson {
  partitiontable: {
    label: string;
    device: string;
    sectorsize?: number;
    partitions?: Array<{ node: string; start: number; size: number; type: string }>;
  };
}

/** MBR container types: their range overlaps the logical partitions inside. */
const MBR_EXTENDED = new Set(['5', 'f', '85']);

export function parseSfdiskJson(json: SfdiskJson): PartitionTable {
  const table = json.partitiontable;
  const sectorSize = table.sectorsize ?? 512;
  const partitions: PartitionEntry[] = [];
  for (const p of table.partitions ?? []) {
    if (table.label === 'dos' && MBR_EXTENDED.has(p.type.toLowerCase())) continue;
    if (!p.size) continue;
    // Node names are the device name plus the number ("disk.img1", "nbd0p1").
    const m = /(\d+)$/.exec(p.node.slice(table.device.length));
    const index = m ? Number(m[1]) : partitions.length + 1;
    partitions.push({
      index,
      name: `p${index}`,
      offsetBytes: p.start * sectorSize,
      sizeBytes: p.size * sectorSize,
      type: p.type,
    });
  }
  return { label: table.label, sectorSize, partitions };
}

/** Read a GPT or MBR table from a disk (file or device); null when there is none. */
export async function readPartitionTable(device: string): Promise<PartitionTable | null> {
  let stdout: string;
  try {
    ({ stdout } = await run('sfdisk', ['--json', device], { timeoutMs: 30000 }));
  } catch (err) {
    // sfdisk exits 1 with "does not contain a recognized partition table".
    if (err instanceof CommandError && err.exitCode === 1 && /partition table/i.test(err.stderr)) return null;
    throw err;
  }
  if (!stdout.trim()) return null;
  return parseSfdiskJson(JSON.parse(stdout) as SfdiskJson);
}
