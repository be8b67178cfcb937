-- AlterTable
ALTER TABLE `backup_jobs` ADD COLUMN `suspect_reason` TEXT NULL,
    ADD COLUMN `cbt_audit` JSON NULL;
