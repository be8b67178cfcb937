import { createApiClient, RawApi, type ApiClient } from '@sendense/api-client';
import type { Command } from 'commander';
import { cliEnvironment } from '@sendense/config';
import { CliError, EXIT } from './errors';
import { configPath, readConfigFile, resolveSettings, type ConnectionSettings } from './settings';

export interface GlobalOptions {
  apiUrl?: string;
  apiKey?: string;
  json?: boolean;
  quiet?: boolean;
}

/** Where output goes; tests pass their own. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: Readonly<Record<string, string | undefined>>;
}

export const processIo = (): Io => ({ stdout: process.stdout, stderr: process.stderr, env: cliEnvironment() });

/** What every command gets: output helpers, settings and the API client. */
export class Ctx {
  readonly json: boolean;
  readonly quiet: boolean;
  private settingsCache?: ConnectionSettings;
  private clientCache?: ApiClient;
  private rawCache?: RawApi;

  constructor(
    readonly io: Io,
    readonly opts: GlobalOptions,
  ) {
    this.json = Boolean(opts.json);
    this.quiet = Boolean(opts.quiet);
  }

  static of(cmd: Command, io: Io): Ctx {
    return new Ctx(io, cmd.optsWithGlobals<GlobalOptions>());
  }

  get settings(): ConnectionSettings {
    this.settingsCache ??= resolveSettings({ apiUrl: this.opts.apiUrl, apiKey: this.opts.apiKey }, this.io.env, () => readConfigFile(configPath(this.io.env)));
    return this.settingsCache;
  }

  private needKey(): ConnectionSettings {
    const s = this.settings;
    if (!s.apiKey) {
      throw new CliError('no API key', EXIT.denied, 'give one with --api-key, SENDENSE_API_KEY, or store it with: sendense-ctl login --api-key sdk_...');
    }
    return s;
  }

  get api(): ApiClient {
    const s = this.needKey();
    this.clientCache ??= createApiClient({ baseUrl: s.apiUrl, apiKey: s.apiKey, headers: { 'user-agent': 'sendense-ctl' } });
    return this.clientCache;
  }

  get raw(): RawApi {
    const s = this.needKey();
    this.rawCache ??= new RawApi({ baseUrl: s.apiUrl, apiKey: s.apiKey, headers: { 'user-agent': 'sendense-ctl' } });
    return this.rawCache;
  }

  /** Width tables must fit: the terminal's, at most 80 columns... unless the terminal is wider. */
  get width(): number {
    const c = this.io.stdout.isTTY ? this.io.stdout.columns : undefined;
    return c && c > 20 ? c : 80;
  }

  /** Human output (stdout); nothing in --json mode. */
  print(text: string): void {
    if (this.json) return;
    this.io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** The one JSON document of a command (or one JSON line of a stream). */
  emit(doc: unknown): void {
    this.io.stdout.write(`${JSON.stringify(doc)}\n`);
  }

  /** A document: JSON in --json mode, else the human rendering. */
  result(doc: unknown, human: () => string): void {
    if (this.json) this.emit(doc);
    else this.print(human());
  }

  /** Notes and progress (stderr); silent with --quiet. */
  note(text: string): void {
    if (this.quiet) return;
    this.io.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  }
}
