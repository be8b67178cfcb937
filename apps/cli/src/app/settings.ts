import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError, EXIT } from './errors';

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

export interface ConnectionSettings {
  apiUrl: string;
  apiKey: string;
  /** where each value came from, for `sendense-ctl config` and error messages */
  source: { apiUrl: Source; apiKey: Source };
}
export type Source = 'flag' | 'env' | 'config' | 'default' | 'none';

export interface ConfigFile {
  api_url?: string;
  api_key?: string;
}

/** ~/.config/sendense/config.json (XDG_CONFIG_HOME honoured). */
export function configPath(env: Readonly<Record<string, string | undefined>>): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'sendense', 'config.json');
}

/**
 * Read the config file. A file that others can read (or write) is refused:
 * it holds an API key. Missing file: empty config.
 */
export function readConfigFile(path: string): ConfigFile {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, EXIT.usage, `fix its permissions, or write it again with: sendense-ctl login`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new CliError(
      `${path} is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}) and holds an API key; refusing to use it`,
      EXIT.denied,
      `run: chmod 600 ${path}  (and revoke the key if others may have read it: sendense-ctl apikey revoke ID)`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CliError(`${path} is not valid JSON: ${(err as Error).message}`, EXIT.usage, 'fix it or write it again with sendense-ctl login');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new CliError(`${path} must hold a JSON object`, EXIT.usage, 'write it again with sendense-ctl login');
  const o = parsed as Record<string, unknown>;
  const out: ConfigFile = {};
  if (typeof o['api_url'] === 'string') out.api_url = o['api_url'];
  if (typeof o['api_key'] === 'string') out.api_key = o['api_key'];
  return out;
}

/** Write the config file atomically with mode 0600 (directory 0700). */
export function writeConfigFile(path: string, cfg: ConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function validateApiUrl(u: string, from: string): string {
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new CliError(`${from} "${u}" is not a URL`, EXIT.usage, `give one like ${DEFAULT_API_URL}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new CliError(`${from} "${u}" must be http:// or https://`, EXIT.usage, 'give the gateway URL, e.g. --api-url http://127.0.0.1:8080');
  return u.replace(/\/+$/, '');
}

/**
 * Connection settings: flags, then the environment (SENDENSE_API_URL,
 * SENDENSE_API_KEY), then the config file, then the default URL. The config
 * file is only read when a value is still missing.
 */
export function resolveSettings(
  flags: { apiUrl?: string; apiKey?: string },
  env: Readonly<Record<string, string | undefined>>,
  readConfig: () => ConfigFile,
): ConnectionSettings {
  let apiUrl: string | undefined;
  let apiKey: string | undefined;
  const source: ConnectionSettings['source'] = { apiUrl: 'default', apiKey: 'none' };
  if (flags.apiUrl) [apiUrl, source.apiUrl] = [validateApiUrl(flags.apiUrl, '--api-url'), 'flag'];
  else if (env['SENDENSE_API_URL']) [apiUrl, source.apiUrl] = [validateApiUrl(env['SENDENSE_API_URL'], 'SENDENSE_API_URL'), 'env'];
  if (flags.apiKey) [apiKey, source.apiKey] = [flags.apiKey, 'flag'];
  else if (env['SENDENSE_API_KEY']) [apiKey, source.apiKey] = [env['SENDENSE_API_KEY'], 'env'];
  if (apiUrl === undefined || apiKey === undefined) {
    const cfg = readConfig();
    if (apiUrl === undefined && cfg.api_url) [apiUrl, source.apiUrl] = [validateApiUrl(cfg.api_url, 'api_url in the config file'), 'config'];
    if (apiKey === undefined && cfg.api_key) [apiKey, source.apiKey] = [cfg.api_key, 'config'];
  }
  return { apiUrl: apiUrl ?? DEFAULT_API_URL, apiKey: apiKey ?? '', source };
}
