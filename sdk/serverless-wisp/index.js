// serverless-wisp: the Serverless Framework (v3) provider for wisp.
//
// `provider: { name: wisp }` with `plugins: [serverless-wisp]` makes
// `serverless deploy`, `deploy function -f`, `info`, `invoke -f`, `logs -f`,
// `rollback` (and `rollback function`) and `remove` talk to a wisp host's
// admin API. This file holds the commands; `lib/functions.js` maps the
// configuration to deploys and `lib/client.js` speaks to the host.

'use strict';

const fs = require('fs');
const { spawnSync } = require('child_process');
const { AdminClient } = require('./lib/client');
const { ConfigError, providerConfig, wispFunction, deployQuery } = require('./lib/functions');

/** A setting's value in `serverless.yml`: a scalar, a list or a table. */
const SETTING_VALUE = {
  anyOf: [
    { type: 'string' },
    { type: 'number' },
    { type: 'boolean' },
    { type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] } },
    { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] } },
  ],
};
const SETTINGS = { type: 'object', additionalProperties: SETTING_VALUE };
const ENVIRONMENT = { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] } };
/** What the provider sets for every function and a function for itself. */
const RUN_WITH = {
  settings: SETTINGS,
  environment: ENVIRONMENT,
  timeout: { type: 'number' },
  memorySize: { type: 'integer' },
};
const HTTP_EVENT = {
  anyOf: [
    { type: 'string' },
    {
      type: 'object',
      properties: { path: { type: 'string' }, method: { type: 'string' } },
      required: ['path'],
      additionalProperties: false,
    },
  ],
};

const SCHEDULE_EVENT = {
  anyOf: [
    { type: 'string' },
    {
      type: 'object',
      properties: {
        rate: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
        enabled: { type: 'boolean' },
      },
      required: ['rate'],
      additionalProperties: false,
    },
  ],
};

class WispProvider {
  static getProviderName() {
    return 'wisp';
  }

  constructor(serverless, options, { log, writeText } = {}) {
    this.serverless = serverless;
    this.options = options || {};
    this.log = log || { notice: console.error, warning: console.error };
    this.writeText = writeText || ((text) => process.stdout.write(`${text}\n`));
    serverless.setProvider('wisp', this);
    serverless.configSchemaHandler.defineProvider('wisp', {
      provider: {
        properties: {
          endpoint: { type: 'string' },
          token: { type: 'string' },
          url: { type: 'string' },
          routePrefix: { type: 'string' },
          ...RUN_WITH,
        },
      },
      function: {
        properties: {
          wasm: { type: 'string' },
          build: { type: 'string' },
          ...RUN_WITH,
          description: { type: 'string' },
          package: { type: 'object', properties: { artifact: { type: 'string' } } },
        },
      },
      functionEvents: { http: HTTP_EVENT, httpApi: HTTP_EVENT, schedule: SCHEDULE_EVENT },
    });

    this.hooks = {
      'before:package:createDeploymentArtifacts': () => this.buildAll(),
      'deploy:deploy': () => this.deployAll(),
      'deploy:function:packageFunction': () => this.build(this.one(this.options.function)),
      'deploy:function:deploy': () => this.deployOne(this.one(this.options.function)),
      'info:info': () => this.info(),
      'invoke:invoke': () => this.invoke(),
      'logs:logs': () => this.logs(),
      'rollback:rollback': () => this.rollbackAll(),
      'rollback:function:rollback': () => this.rollbackOne(),
      'remove:remove': () => this.removeAll(),
    };
  }

  // --- configuration -------------------------------------------------------

  get stage() {
    return this.options.stage || this.serverless.service.provider.stage || 'dev';
  }

  /** Provider settings, functions and the client, checked once. */
  get config() {
    if (!this.checked) {
      const { service } = this.serverless;
      const provider = service.provider;
      const wrap = (fn) => {
        try {
          return fn();
        } catch (error) {
          if (error instanceof ConfigError) throw new this.serverless.classes.Error(error.message, 'WISP_CONFIG');
          throw error;
        }
      };
      this.checked = wrap(() => {
        const host = providerConfig(provider, this.stage);
        const context = {
          service: service.service,
          stage: this.stage,
          provider,
          serviceDir: this.serverless.serviceDir,
          prefix: host.prefix,
        };
        const functions = Object.entries(service.functions || {}).map(([key, fn]) =>
          wispFunction(context, key, fn)
        );
        return { host, functions, client: new AdminClient(host.endpoint, host.token) };
      });
    }
    return this.checked;
  }

  /** Which deploys are this service's, in this stage. */
  get origin() {
    return `serverless:${this.serverless.service.service}/${this.stage}`;
  }

  one(key) {
    const fn = this.config.functions.find((candidate) => candidate.key === key);
    if (!fn) throw new this.serverless.classes.Error(`function \`${key}\` is not in serverless.yml`, 'WISP_NO_FUNCTION');
    return fn;
  }

  fail(what, error) {
    throw new this.serverless.classes.Error(`${what}: ${error.message}`, 'WISP_API');
  }

  // --- deploy --------------------------------------------------------------

  /** Runs each function's `build` and points the packager at its `.wasm`. */
  buildAll() {
    for (const fn of this.config.functions) this.build(fn);
  }

  build(fn) {
    if (fn.build) {
      this.log.notice(`building ${fn.key}: ${fn.build}`);
      const run = spawnSync(fn.build, { shell: true, cwd: this.serverless.serviceDir, stdio: 'inherit' });
      if (run.status !== 0) {
        throw new this.serverless.classes.Error(
          `functions.${fn.key}.build failed (${run.error ? run.error.message : `exit ${run.status ?? run.signal}`})`,
          'WISP_BUILD'
        );
      }
    }
    if (!fs.existsSync(fn.wasm)) {
      throw new this.serverless.classes.Error(`functions.${fn.key}: ${fn.wasm} does not exist (build it first)`, 'WISP_NO_WASM');
    }
    // The framework packages nothing itself for a function with an artifact.
    const declared = this.serverless.service.getFunction(fn.key);
    declared.package = { ...(declared.package || {}), artifact: fn.wasm };
  }

  async deployOne(fn) {
    const { client, host } = this.config;
    let report;
    try {
      report = await client.deploy(fn.name, deployQuery(fn, this.origin), fs.readFileSync(fn.wasm));
    } catch (error) {
      this.fail(`deploying ${fn.key} as ${fn.name}`, error);
    }
    const moved = report.moved_from ? ` (moved from ${report.moved_from})` : '';
    this.log.notice(`${fn.key}: ${fn.name} v${report.version} at ${host.url}${report.route}${moved}`);
    return report;
  }

  async deployAll() {
    const { functions, client } = this.config;
    for (const fn of functions) await this.deployOne(fn);
    // What an earlier deploy of this service and stage made and the file no
    // longer lists goes, as the framework's stacks drop removed functions.
    const kept = new Set(functions.map((fn) => fn.name));
    for (const stale of await this.owned()) {
      if (kept.has(stale)) continue;
      await client.remove(stale).catch((error) => this.fail(`removing ${stale}`, error));
      this.log.notice(`removed ${stale} (no longer in serverless.yml)`);
    }
    this.log.notice(`deployed ${this.serverless.service.service} (stage ${this.stage}) to ${this.config.host.endpoint}`);
  }

  /** Functions whose newest version this service and stage deployed. */
  async owned() {
    let all;
    try {
      all = await this.config.client.list();
    } catch (error) {
      this.fail('listing functions', error);
    }
    return all
      .filter((info) => {
        const newest = info.versions[info.versions.length - 1];
        return newest && newest.origin === this.origin;
      })
      .map((info) => info.name);
  }

  // --- info, invoke, logs --------------------------------------------------

  async info() {
    const { functions, client, host } = this.config;
    const lines = [
      `service: ${this.serverless.service.service}`,
      `stage: ${this.stage}`,
      `endpoint: ${host.endpoint}`,
      'functions:',
    ];
    for (const fn of functions) {
      let info;
      try {
        info = await client.get(fn.name);
      } catch (error) {
        this.fail(`reading ${fn.name}`, error);
      }
      if (!info) {
        lines.push(`  ${fn.key}: ${fn.name} (not deployed)`);
        continue;
      }
      const split = info.traffic.map((share) => `v${share.version}=${share.weight}%`).join(' ');
      const state = info.unavailable ? ` — unavailable: ${info.unavailable}` : '';
      lines.push(`  ${fn.key}: ${fn.name} ${host.url}${info.route} (${split || 'no traffic'}; ${info.versions.length} versions)${state}`);
    }
    this.writeText(lines.join('\n'));
  }

  async invoke() {
    const fn = this.one(this.options.function);
    let body;
    if (this.options.data !== undefined) body = String(this.options.data);
    else if (this.options.path) body = fs.readFileSync(this.options.path);
    let response;
    try {
      response = await this.config.client.invoke(fn.name, '/', body === undefined ? 'GET' : 'POST', body);
    } catch (error) {
      const status = error.status ? ` (HTTP ${error.status})` : '';
      throw new this.serverless.classes.Error(`invoking ${fn.key}${status}: ${error.message}`, 'WISP_INVOKE');
    }
    this.writeText(await response.text());
  }

  async logs() {
    const fn = this.one(this.options.function);
    const query = new URLSearchParams({ since: since(this.options.startTime || '10m') });
    if (this.options.tail) query.set('follow', 'true');
    const filter = this.options.filter;
    let response;
    try {
      response = await this.config.client.logs(fn.name, query.toString());
    } catch (error) {
      this.fail(`reading ${fn.name}'s logs`, error);
    }
    let pending = '';
    const decoder = new TextDecoder();
    const print = (line) => {
      if (!line.trim()) return;
      const event = JSON.parse(line);
      if (event.text === undefined) {
        this.writeText(`(${event.dropped ?? event.skipped} lines left out)`);
        return;
      }
      if (filter && !event.text.includes(filter)) return;
      this.writeText(`${new Date(event.time_unix_ms).toISOString()} v${event.version} ${event.stream} ${event.text}`);
    };
    for await (const chunk of response.body) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split('\n');
      pending = lines.pop();
      lines.forEach(print);
    }
    print(pending);
  }

  // --- rollback and remove -------------------------------------------------

  async rollbackAll() {
    if (this.options.timestamp) {
      throw new this.serverless.classes.Error(
        'wisp rolls each function back to its previous traffic split: `--timestamp` is not supported (`serverless rollback function -f NAME --function-version N` picks a version)',
        'WISP_ROLLBACK'
      );
    }
    for (const fn of this.config.functions) {
      let info;
      try {
        info = await this.config.client.rollback(fn.name);
      } catch (error) {
        this.fail(`rolling back ${fn.key}`, error);
      }
      const split = info.traffic.map((share) => `v${share.version}=${share.weight}%`).join(' ');
      this.log.notice(`${fn.key}: ${fn.name} rolled back to ${split}`);
    }
  }

  async rollbackOne() {
    const fn = this.one(this.options.function);
    const raw = String(this.options['function-version'] || '').replace(/^v/, '');
    const version = Number(raw);
    if (!Number.isInteger(version) || version < 1) {
      throw new this.serverless.classes.Error(`--function-version: \`${raw}\` is not a version number`, 'WISP_ROLLBACK');
    }
    try {
      await this.config.client.routeAllTo(fn.name, version);
    } catch (error) {
      this.fail(`rolling ${fn.key} back to v${version}`, error);
    }
    this.log.notice(`${fn.key}: ${fn.name} v${version} takes all traffic`);
  }

  async removeAll() {
    const names = new Set(this.config.functions.map((fn) => fn.name));
    for (const name of await this.owned()) names.add(name);
    for (const name of names) {
      let removed;
      try {
        removed = await this.config.client.remove(name);
      } catch (error) {
        this.fail(`removing ${name}`, error);
      }
      this.log.notice(removed ? `removed ${name}` : `${name} was not deployed`);
    }
  }
}

/** `--startTime` as the log API's `since`: `10m`, `2h`, or a date. */
function since(startTime) {
  const text = String(startTime).trim();
  if (/^\d+(ms|s|m|h)$/.test(text)) return text;
  const days = /^(\d+)d$/.exec(text);
  if (days) return `${Number(days[1]) * 24}h`;
  const at = Date.parse(text);
  if (Number.isNaN(at)) {
    throw new Error(`--startTime: \`${text}\` is neither a span such as 10m or 2d nor a date`);
  }
  return `${Math.max(0, Math.ceil((Date.now() - at) / 1000))}s`;
}

module.exports = WispProvider;
