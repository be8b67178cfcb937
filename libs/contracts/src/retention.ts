/**
 * A retention policy: which restore points to keep. The one definition of its
 * shape; the queue payload (ApplyRetentionJobData.policy), the storage
 * planner (libs/storage planRetention), the database repository
 * (libs/db RetentionPolicyRepository) and the API DTO (keep_last, daily,
 * weekly, monthly) all derive from it.
 *
 * A count of 0 (or absent) keeps none of that kind; the newest restore point
 * of every disk is always kept.
 */
export interface RetentionPolicy {
  /** Keep the newest N restore points. */
  keepLast?: number;
  /** GFS: newest restore point of each of the last N days / ISO weeks / months (UTC) that have one. */
  daily?: number;
  weekly?: number;
  monthly?: number;
}

/** The counts of a policy, in a fixed order. */
export const RETENTION_COUNTS = ['keepLast', 'daily', 'weekly', 'monthly'] as const satisfies readonly (keyof RetentionPolicy)[];

// Compile-time check that RETENTION_COUNTS names every count of RetentionPolicy.
type MissingCount = Exclude<keyof RetentionPolicy, (typeof RETENTION_COUNTS)[number]>;
const everyCountListed: MissingCount extends never ? true : never = true;
void everyCountListed;

/** False for a policy that would keep nothing (applying it is refused). */
export function retentionKeepsSomething(p: RetentionPolicy): boolean {
  return RETENTION_COUNTS.some((k) => (p[k] ?? 0) > 0);
}
