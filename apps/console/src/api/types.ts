/**
 * Shapes of the gateway's answers as the console reads them: every one is a
 * type of the OpenAPI document (@sendense/api-client's generated schema), so
 * a field the gateway renames, retypes or drops breaks the console's type
 * check instead of drifting (a hand-written copy once read FileEntry.mode as
 * a number while the gateway sends "0644"). Only what the document cannot
 * describe (the server-sent progress event) is spelled out here.
 */
import type { Schemas } from '@sendense/api-client';

export type WhoAmI = Schemas['WhoAmIDto'];
export type Role = WhoAmI['role'];

export type Repository = Schemas['RepositoryDto'];
export type RepositorySpace = Schemas['RepositorySpaceDto'];

export type VmDisk = Schemas['VmDiskDto'];
export type Vm = Schemas['VmDto'];

export type Backup = Schemas['BackupDto'];
export type BackupDetail = Schemas['BackupDetailDto'];
export type BackupType = Backup['backup_type'];
export type BackupList = Schemas['BackupListDto'];
export type Chain = Schemas['DiskChainDto'];
export type VmChains = Schemas['VmChainsDto'];
export type StartedBackup = Schemas['StartedBackupDto'];
export type VerifyResult = Schemas['VerificationDto'];
export type Consolidation = Schemas['ConsolidationDto'];

export type DiskProgress = Schemas['DiskProgressDto'];
export type JobProgress = Schemas['JobProgressDto'];
export type JobStatus = Schemas['JobStatusDto'];
export type JobState = JobStatus['status'];
export type JobEvent = Schemas['JobEventDto'];
export type CancelledJob = Schemas['CancelledJobDto'];

/**
 * One server-sent `progress` event of GET /api/v1/jobs/{runId}/progress (an
 * event stream, which the OpenAPI document does not type): the job's fields,
 * with the progress as the queue holds it (a number before a worker reports).
 */
export type ProgressEvent = Pick<JobStatus, 'run_id' | 'status' | 'error'> & { progress: JobProgress | number | null };

export type Partition = Schemas['PartitionDto'];
export type Mount = Schemas['MountInfoDto'];
export type FileEntry = Schemas['FileEntryDto'];
export type ListPage = Schemas['FileListingDto'];

export type DiskExport = Schemas['ExportDto'];
export type CreateExport = Schemas['CreateExportDto'];
export type RestoreDisk = Schemas['RestoreDiskDto'];
export type StartedRestore = Schemas['StartedRestoreDto'];
/** The formats GET /api/v1/backup/{id}/image converts to. */
export type ImageFormat = NonNullable<NonNullable<import('@sendense/api-client').paths['/api/v1/backup/{id}/image']['get']['parameters']['query']>['format']>;

export type VCenter = Schemas['VCenterDto'];
export type ImportedVm = Schemas['ImportedVmDto'];
export type RetentionPolicy = Schemas['RetentionPolicyResponseDto'];
export type RetentionResult = Schemas['RetentionResultDto'];

export type ApiKey = Schemas['ApiKeyDto'];
export type CreatedApiKey = Schemas['CreatedApiKeyDto'];
