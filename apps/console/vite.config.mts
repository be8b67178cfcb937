import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The web console: a static build into dist/apps/console that the gateway
 * serves at `/` (apps/api-gateway/src/app/console). Everything is bundled:
 * the page makes no request beyond its own origin.
 * `npx nx serve console` runs Vite's dev server with /api proxied to a gateway
 * on SENDENSE_GATEWAY (default http://127.0.0.1:8080).
 */
export default defineConfig({
  root: here,
  base: '/',
  plugins: [react()],
  build: {
    outDir: join(here, '../../dist/apps/console'),
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: { '/api': process.env['SENDENSE_GATEWAY'] ?? 'http://127.0.0.1:8080' },
  },
});
