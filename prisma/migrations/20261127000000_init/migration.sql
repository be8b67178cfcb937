-- CreateTable
CREATE TABLE `vcenters` (
    `id` VARCHAR(64) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `url` VARCHAR(512) NOT NULL,
    `username` VARCHAR(255) NOT NULL,
    `password_enc` TEXT NOT NULL,
    `thumbprint` VARCHAR(128) NULL,
    `insecure` BOOLEAN NOT NULL DEFAULT false,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    UNIQUE INDEX `unique_vcenter_name`(`name`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `vm_replication_contexts` (
    `context_id` VARCHAR(191) NOT NULL,
    `vm_name` VARCHAR(255) NOT NULL,
    `vcenter_id` VARCHAR(64) NULL,
    `vcenter_host` VARCHAR(255) NOT NULL,
    `vm_moref` VARCHAR(64) NOT NULL,
    `instance_uuid` VARCHAR(64) NULL,
    `cbt_enabled` BOOLEAN NOT NULL DEFAULT false,
    `cbt_state` ENUM('unknown', 'enabled', 'disabled', 'reset') NOT NULL DEFAULT 'unknown',
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    INDEX `idx_vm_name`(`vm_name`),
    INDEX `idx_instance_uuid`(`instance_uuid`),
    INDEX `idx_vcenter`(`vcenter_id`),
    UNIQUE INDEX `unique_vcenter_moref`(`vcenter_host`, `vm_moref`),
    PRIMARY KEY (`context_id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `vm_disks` (
    `id` VARCHAR(64) NOT NULL,
    `vm_context_id` VARCHAR(191) NOT NULL,
    `disk_index` INTEGER NOT NULL,
    `device_key` INTEGER NOT NULL,
    `label` VARCHAR(255) NULL,
    `capacity_bytes` BIGINT NOT NULL,
    `backing_file` VARCHAR(1024) NULL,
    `last_change_id` VARCHAR(191) NULL,
    `last_backup_id` VARCHAR(64) NULL,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    UNIQUE INDEX `unique_vm_disk_index`(`vm_context_id`, `disk_index`),
    UNIQUE INDEX `unique_vm_device_key`(`vm_context_id`, `device_key`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `backup_repositories` (
    `id` VARCHAR(64) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `repository_type` ENUM('local', 's3', 'azure', 'nfs') NOT NULL,
    `config` JSON NOT NULL,
    `enabled` BOOLEAN NOT NULL DEFAULT true,
    `total_size_bytes` BIGINT NOT NULL DEFAULT 0,
    `available_size_bytes` BIGINT NOT NULL DEFAULT 0,
    `storage_node` VARCHAR(255) NOT NULL,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    INDEX `idx_type`(`repository_type`),
    INDEX `idx_storage_node`(`storage_node`),
    UNIQUE INDEX `unique_name`(`name`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `backup_jobs` (
    `id` VARCHAR(64) NOT NULL,
    `vm_context_id` VARCHAR(191) NOT NULL,
    `vm_name` VARCHAR(255) NOT NULL,
    `run_id` VARCHAR(64) NOT NULL,
    `disk_id` INTEGER NOT NULL,
    `backup_type` ENUM('full', 'incremental', 'differential') NOT NULL,
    `requested_type` ENUM('full', 'incremental', 'differential') NOT NULL,
    `fallback_reason` TEXT NULL,
    `status` ENUM('pending', 'running', 'completed', 'failed', 'cancelled') NOT NULL DEFAULT 'pending',
    `repository_id` VARCHAR(64) NULL,
    `repository_type` VARCHAR(50) NOT NULL,
    `repository_path` VARCHAR(512) NOT NULL,
    `parent_backup_id` VARCHAR(64) NULL,
    `change_id` VARCHAR(191) NULL,
    `previous_change_id` VARCHAR(191) NULL,
    `bytes_transferred` BIGINT NOT NULL DEFAULT 0,
    `total_bytes` BIGINT NOT NULL DEFAULT 0,
    `virtual_size_bytes` BIGINT NULL,
    `allocated_bytes` BIGINT NULL,
    `checksum` VARCHAR(128) NULL,
    `compression_enabled` BOOLEAN NOT NULL DEFAULT true,
    `progress` JSON NULL,
    `error_message` TEXT NULL,
    `storage_node` VARCHAR(255) NULL,
    `queue_job_id` VARCHAR(191) NULL,
    `verified_at` TIMESTAMP(0) NULL,
    `verify_status` VARCHAR(32) NULL,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `started_at` TIMESTAMP(0) NULL,
    `completed_at` TIMESTAMP(0) NULL,

    INDEX `idx_vm_context`(`vm_context_id`),
    INDEX `idx_status`(`status`),
    INDEX `idx_created`(`created_at`),
    INDEX `idx_run`(`run_id`),
    INDEX `idx_repository`(`repository_id`),
    INDEX `idx_parent`(`parent_backup_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `backup_chains` (
    `id` VARCHAR(64) NOT NULL,
    `vm_context_id` VARCHAR(191) NOT NULL,
    `disk_id` INTEGER NOT NULL,
    `full_backup_id` VARCHAR(64) NOT NULL,
    `latest_backup_id` VARCHAR(64) NOT NULL,
    `total_backups` INTEGER NOT NULL DEFAULT 0,
    `total_size_bytes` BIGINT NOT NULL DEFAULT 0,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    INDEX `idx_chain_vm_context`(`vm_context_id`),
    INDEX `idx_chain_full`(`full_backup_id`),
    INDEX `idx_chain_latest`(`latest_backup_id`),
    UNIQUE INDEX `unique_vm_disk`(`vm_context_id`, `disk_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `restore_mounts` (
    `id` VARCHAR(64) NOT NULL,
    `backup_id` VARCHAR(64) NOT NULL,
    `mount_path` VARCHAR(1024) NOT NULL,
    `state` ENUM('mounting', 'mounted', 'unmounting', 'failed') NOT NULL DEFAULT 'mounting',
    `node_name` VARCHAR(255) NOT NULL,
    `partitions` JSON NULL,
    `error_message` TEXT NULL,
    `last_access_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    INDEX `idx_mount_backup`(`backup_id`),
    INDEX `idx_mount_state`(`state`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `api_keys` (
    `id` VARCHAR(64) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `prefix` VARCHAR(16) NOT NULL,
    `key_hash` VARCHAR(255) NOT NULL,
    `role` ENUM('admin', 'operator', 'viewer') NOT NULL,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `last_used_at` TIMESTAMP(0) NULL,
    `revoked_at` TIMESTAMP(0) NULL,

    UNIQUE INDEX `unique_key_prefix`(`prefix`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `job_events` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `backup_job_id` VARCHAR(64) NULL,
    `run_id` VARCHAR(64) NULL,
    `level` ENUM('debug', 'info', 'warn', 'error') NOT NULL DEFAULT 'info',
    `phase` VARCHAR(64) NOT NULL,
    `message` TEXT NOT NULL,
    `data` JSON NULL,
    `created_at` TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),

    INDEX `idx_event_job`(`backup_job_id`),
    INDEX `idx_event_run`(`run_id`),
    INDEX `idx_event_created`(`created_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `nbd_exports` (
    `name` VARCHAR(64) NOT NULL,
    `kind` VARCHAR(16) NOT NULL,
    `server` VARCHAR(16) NOT NULL,
    `file_path` VARCHAR(1024) NOT NULL,
    `writable` BOOLEAN NOT NULL DEFAULT false,
    `host` VARCHAR(255) NOT NULL,
    `port` INTEGER NULL,
    `socket_path` VARCHAR(1024) NULL,
    `pid` INTEGER NULL,
    `node_name` VARCHAR(255) NOT NULL,
    `backup_job_id` VARCHAR(64) NULL,
    `state` VARCHAR(16) NOT NULL DEFAULT 'starting',
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    INDEX `idx_export_node`(`node_name`),
    PRIMARY KEY (`name`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `vm_replication_contexts` ADD CONSTRAINT `fk_vmctx_vcenter` FOREIGN KEY (`vcenter_id`) REFERENCES `vcenters`(`id`) ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `vm_disks` ADD CONSTRAINT `fk_disk_vmctx` FOREIGN KEY (`vm_context_id`) REFERENCES `vm_replication_contexts`(`context_id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `backup_jobs` ADD CONSTRAINT `fk_job_vmctx` FOREIGN KEY (`vm_context_id`) REFERENCES `vm_replication_contexts`(`context_id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `backup_jobs` ADD CONSTRAINT `fk_job_repository` FOREIGN KEY (`repository_id`) REFERENCES `backup_repositories`(`id`) ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `backup_jobs` ADD CONSTRAINT `fk_job_parent` FOREIGN KEY (`parent_backup_id`) REFERENCES `backup_jobs`(`id`) ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `backup_chains` ADD CONSTRAINT `fk_chain_vmctx` FOREIGN KEY (`vm_context_id`) REFERENCES `vm_replication_contexts`(`context_id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `backup_chains` ADD CONSTRAINT `fk_chain_full` FOREIGN KEY (`full_backup_id`) REFERENCES `backup_jobs`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `backup_chains` ADD CONSTRAINT `fk_chain_latest` FOREIGN KEY (`latest_backup_id`) REFERENCES `backup_jobs`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `restore_mounts` ADD CONSTRAINT `fk_mount_backup` FOREIGN KEY (`backup_id`) REFERENCES `backup_jobs`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `job_events` ADD CONSTRAINT `fk_event_job` FOREIGN KEY (`backup_job_id`) REFERENCES `backup_jobs`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;
