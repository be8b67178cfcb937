# Image for docker-compose.yml (not built in CI: no Docker engine there).
FROM node:20-bookworm
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      qemu-utils qemu-system-common nbd-server libnbd-bin nbdkit fdisk util-linux e2fsprogs xfsprogs \
      dosfstools ntfs-3g fuse3 mariadb-client redis-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY prisma ./prisma
COPY prisma.config.ts ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx nx run-many -t build
