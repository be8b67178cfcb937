-- AlterTable
ALTER TABLE `vcenters` ADD COLUMN `disk_reader` JSON NULL;

-- CreateTable
CREATE TABLE `retention_policies` (
    `id` VARCHAR(64) NOT NULL,
    `repository_id` VARCHAR(64) NOT NULL,
    `vm_context_id` VARCHAR(191) NULL,
    `keep_last` INTEGER NOT NULL DEFAULT 0,
    `keep_daily` INTEGER NOT NULL DEFAULT 0,
    `keep_weekly` INTEGER NOT NULL DEFAULT 0,
    `keep_monthly` INTEGER NOT NULL DEFAULT 0,
    `created_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    `updated_at` TIMESTAMP(0) NOT NULL DEFAULT CURRENT_TIMESTAMP(0),

    INDEX `idx_retention_vm`(`vm_context_id`),
    UNIQUE INDEX `unique_retention_scope`(`repository_id`, `vm_context_id`),
    PRIMARY KEY (`id`)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- AddForeignKey
ALTER TABLE `retention_policies` ADD CONSTRAINT `fk_retention_repository` FOREIGN KEY (`repository_id`) REFERENCES `backup_repositories`(`id`) ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE `retention_policies` ADD CONSTRAINT `fk_retention_vmctx` FOREIGN KEY (`vm_context_id`) REFERENCES `vm_replication_contexts`(`context_id`) ON DELETE CASCADE ON UPDATE CASCADE;
