-- AlterTable
ALTER TABLE `restore_mounts` ADD COLUMN `api_key_id` VARCHAR(64) NULL;

-- CreateIndex
CREATE INDEX `idx_mount_api_key` ON `restore_mounts`(`api_key_id`);
