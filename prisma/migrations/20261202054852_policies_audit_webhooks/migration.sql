-- CreateTable
CREATE TABLE `backup_policies` (
    `id` VARCHAR(64) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `cron` VARCHAR(128) NOT NULL,
    `timezone` VARCHAR(64) NOT NULL DEFAULT 'UTC',
    `repository_id` VARCHAR(64) NOT NULL,
    `selector` JSON NOT NULL,
    `full_every_days` INTEGER NULL,
    `full_after_incrementals` INTEGER NULL,
    `synthetic_full` BOOLEAN NOT NULL DEFAULT false,
    `retention` JSON NULL,
    `window_end` VARCHAR(5) NULL,
    `concurrency` INTEGER NOT NULL DEFAULT 2,
    `max_age_hours` INTEGER NULL,
    `paused` BOOLEAN NOT NULL DEFAULT false,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    UNIQUE INDEX `unique_policy_name`(`name`),
    INDEX `idx_policy_repository`(`repository_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `policy_runs` (
    `id` VARCHAR(64) NOT NULL,
    `policy_id` VARCHAR(64) NOT NULL,
    `queue_job_id` VARCHAR(191) NOT NULL,
    `trigger` VARCHAR(16) NOT NULL,
    `scheduled_for` TIMESTAMP(3) NULL,
    `status` ENUM('running', 'completed', 'partial', 'failed', 'skipped') NOT NULL DEFAULT 'running',
    `vms` JSON NULL,
    `bytes_transferred` BIGINT NOT NULL DEFAULT 0,
    `message` TEXT NULL,
    `started_at` TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `finished_at` TIMESTAMP(3) NULL,

    UNIQUE INDEX `unique_policy_run_job`(`queue_job_id`),
    INDEX `idx_run_policy_started`(`policy_id`, `started_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `audit_log` (
    `id` BIGINT NOT NULL AUTO_INCREMENT,
    `at` TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `key_id` VARCHAR(64) NULL,
    `key_name` VARCHAR(255) NULL,
    `role` VARCHAR(16) NULL,
    `method` VARCHAR(8) NOT NULL,
    `path` VARCHAR(1024) NOT NULL,
    `action` VARCHAR(191) NOT NULL,
    `target` VARCHAR(255) NULL,
    `result` VARCHAR(16) NOT NULL,
    `status` INTEGER NOT NULL,
    `error` TEXT NULL,
    `ip` VARCHAR(64) NULL,

    INDEX `idx_audit_at`(`at`),
    INDEX `idx_audit_key`(`key_id`),
    INDEX `idx_audit_action`(`action`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `webhooks` (
    `id` VARCHAR(64) NOT NULL,
    `name` VARCHAR(255) NOT NULL,
    `url` VARCHAR(2048) NOT NULL,
    `secret_enc` TEXT NOT NULL,
    `events` JSON NOT NULL,
    `enabled` BOOLEAN NOT NULL DEFAULT true,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    UNIQUE INDEX `unique_webhook_name`(`name`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- CreateTable
CREATE TABLE `webhook_deliveries` (
    `id` VARCHAR(64) NOT NULL,
    `webhook_id` VARCHAR(64) NOT NULL,
    `event` VARCHAR(64) NOT NULL,
    `payload` JSON NOT NULL,
    `status` VARCHAR(16) NOT NULL DEFAULT 'pending',
    `attempts` INTEGER NOT NULL DEFAULT 0,
    `last_status_code` INTEGER NULL,
    `last_error` TEXT NULL,
    `created_at` TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    `delivered_at` TIMESTAMP(3) NULL,

    INDEX `idx_delivery_webhook`(`webhook_id`, `created_at`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `backup_policies` ADD CONSTRAINT `fk_policy_repository` FOREIGN KEY (`repository_id`) REFERENCES `backup_repositories`(`id`) ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `policy_runs` ADD CONSTRAINT `fk_run_policy` FOREIGN KEY (`policy_id`) REFERENCES `backup_policies`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `webhook_deliveries` ADD CONSTRAINT `fk_delivery_webhook` FOREIGN KEY (`webhook_id`) REFERENCES `webhooks`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;
