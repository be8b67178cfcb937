-- AlterTable
ALTER TABLE `nbd_exports` ADD COLUMN `restore_point_id` VARCHAR(64) NULL,
    ADD COLUMN `overlay_path` VARCHAR(1024) NULL,
    ADD COLUMN `idle_timeout_s` INTEGER NULL,
    ADD COLUMN `last_active_at` TIMESTAMP(0) NULL,
    ADD COLUMN `tls_mode` VARCHAR(8) NULL;

-- CreateIndex
CREATE INDEX `idx_export_restore_point` ON `nbd_exports`(`restore_point_id`);
