// What `serverless.yml` says of a function, as a wisp deploy: its name (the
// framework's `SERVICE-STAGE-KEY`), its route (from its `http`/`httpApi`
// events, under the stage's prefix), its `.wasm`, and its settings. Every
// key wisp cannot honour is refused here by name, before anything is sent.

'use strict';

const path = require('path');

/** What a wisp function name may be (the host's own rule). */
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Keys of `provider` this plugin reads; any other is refused. */
const PROVIDER_KEYS = new Set([
  'name',
  'stage',
  'endpoint',
  'token',
  'url',
  'routePrefix',
  'settings',
  'environment',
  'timeout',
  'memorySize',
]);

/** Keys of a function this plugin reads; any other is refused. */
const FUNCTION_KEYS = new Set([
  'name',
  'description',
  'events',
  'wasm',
  'build',
  'package',
  'settings',
  'environment',
  'timeout',
  'memorySize',
]);

/** Deploy query parameters that are not settings: never taken from `settings`. */
const RESERVED = new Set(['route', 'origin', 'no-traffic', 'reset-settings', 'move-route']);

/** A refusal of the configuration, naming the key at fault. */
class ConfigError extends Error {}

/** The provider's configuration, checked, with its defaults. */
function providerConfig(provider, stage) {
  for (const key of Object.keys(provider)) {
    if (!PROVIDER_KEYS.has(key)) {
      throw new ConfigError(`provider.${key}: wisp cannot honour it (it reads ${[...PROVIDER_KEYS].join(', ')})`);
    }
  }
  const endpoint = provider.endpoint || process.env.WISP_ADMIN_URL || 'http://127.0.0.1:8081';
  let adminUrl;
  try {
    adminUrl = new URL(endpoint);
  } catch {
    throw new ConfigError(`provider.endpoint: \`${endpoint}\` is not a URL (e.g. http://127.0.0.1:8081)`);
  }
  let url = provider.url;
  if (!url) {
    // wisp serve's defaults: the public listener on 8080 beside the admin one.
    const guess = new URL(adminUrl.href);
    guess.port = '8080';
    url = guess.origin;
  }
  const prefix = provider.routePrefix === undefined ? `/${stage}` : String(provider.routePrefix);
  if (prefix !== '' && !/^(\/[A-Za-z0-9._~-]+)+$/.test(prefix)) {
    throw new ConfigError(`provider.routePrefix: \`${prefix}\` must be empty or a path such as /dev`);
  }
  return {
    endpoint: adminUrl.href.replace(/\/+$/, ''),
    token: provider.token || process.env.WISP_ADMIN_TOKEN || undefined,
    url: url.replace(/\/+$/, ''),
    prefix,
  };
}

/**
 * What a function's events give: the one path of its `http`/`httpApi`
 * events (`undefined` with none) and the cron schedules of its `schedule`
 * events.
 */
function readEvents(key, events) {
  const paths = new Set();
  const schedules = [];
  for (const [index, event] of (events || []).entries()) {
    const where = `functions.${key}.events[${index}]`;
    const [type, ...others] = Object.keys(event || {});
    if (others.length) throw new ConfigError(`${where}: one event type per entry`);
    if (type === 'schedule') {
      schedules.push(...schedule(where, event.schedule));
      continue;
    }
    if (type !== 'http' && type !== 'httpApi') {
      throw new ConfigError(`${where}: event type \`${type}\` is not supported by wisp (it runs \`http\`, \`httpApi\` and \`schedule\` events)`);
    }
    const value = event[type];
    let raw;
    if (typeof value === 'string') {
      // "GET /users/{id}", or httpApi's "*".
      raw = value === '*' ? '/' : value.trim().split(/\s+/).pop();
    } else if (value && typeof value.path === 'string') {
      raw = value.path;
    } else {
      throw new ConfigError(`${where}: an ${type} event needs a path ("GET /hello" or { path: /hello })`);
    }
    paths.add(routePath(raw));
  }
  if (paths.size > 1) {
    throw new ConfigError(
      `functions.${key}.events: wisp serves a function at one route (and every path under it); these give ${[...paths].join(', ')}`
    );
  }
  return { path: paths.size ? [...paths][0] : undefined, schedules };
}

/**
 * A `schedule` event as wisp cron schedules (UTC; each tick POSTs to the
 * function's route): `rate(N minutes|hours|days)` or AWS's six-field
 * `cron(…)`, as a string or `{ rate, enabled }`.
 */
function schedule(where, value) {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const field of Object.keys(value)) {
      if (field !== 'rate' && field !== 'enabled') {
        throw new ConfigError(`${where}.schedule.${field}: wisp cannot honour it (a tick is a POST with no body)`);
      }
    }
    if (value.enabled === false) return [];
    value = value.rate;
  }
  const rates = Array.isArray(value) ? value : [value];
  return rates.map((rate) => cronOf(`${where}.schedule`, rate));
}

/** One AWS schedule expression as a five-field cron schedule. */
function cronOf(where, expression) {
  const text = String(expression).trim();
  const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(text);
  if (rate) {
    const n = Number(rate[1]);
    // Every N, counted from the top of the hour (or day, or month).
    const every = n === 1 ? '*' : `*/${n}`;
    const limit = { minute: 59, hour: 23, day: 31 }[rate[2].replace(/s$/, '')];
    if (n < 1 || n > limit) throw new ConfigError(`${where}: \`${text}\`: at most ${limit} ${rate[2]}`);
    if (rate[2].startsWith('minute')) return `${every} * * * *`;
    if (rate[2].startsWith('hour')) return `0 ${every} * * *`;
    return `0 0 ${every} * *`;
  }
  const cron = /^cron\((.+)\)$/.exec(text);
  if (cron) {
    const fields = cron[1].trim().split(/\s+/);
    if (fields.length !== 6) throw new ConfigError(`${where}: \`${text}\`: AWS's cron has six fields`);
    const [minute, hour, day, month, weekday, year] = fields;
    if (year !== '*') throw new ConfigError(`${where}: \`${text}\`: wisp's cron has no year field (give \`*\`)`);
    // AWS counts weekdays 1-7 from Sunday, cron 0-6 (the `#N` of an
    // Nth weekday is a count, kept).
    const week = weekday.replace(/(#\d+)|(\d)/g, (match, nth, day) => nth || String(Number(day) - 1));
    return [minute, hour, day, month, week].map((field) => (field === '?' ? '*' : field)).join(' ');
  }
  throw new ConfigError(`${where}: \`${text}\` is neither \`rate(N minutes|hours|days)\` nor \`cron(…)\``);
}

/**
 * An event's path as a wisp route: a leading `/`, cut before the first
 * parameter (`/users/{id}` and `/files/{proxy+}` are served by `/users`
 * and `/files`, which take every path under them).
 */
function routePath(raw) {
  const segments = [];
  for (const segment of raw.split('/')) {
    if (segment === '') continue;
    if (segment.includes('{')) break;
    segments.push(segment);
  }
  return `/${segments.join('/')}`;
}

/** A setting's value as the query strings the admin API takes. */
function settingValues(where, value) {
  if (value === null || value === undefined) throw new ConfigError(`${where}: no value`);
  if (Array.isArray(value)) return value.flatMap((item, i) => settingValues(`${where}[${i}]`, item));
  if (typeof value === 'object') {
    // env and config as tables: { GREETING: hi } is GREETING=hi.
    return Object.entries(value).map(([name, item]) => {
      if (item !== null && typeof item === 'object') throw new ConfigError(`${where}.${name}: a table nested too deep`);
      return `${name}=${scalar(item)}`;
    });
  }
  return [scalar(value)];
}

function scalar(value) {
  if (value === true) return 'on';
  if (value === false) return 'off';
  return String(value);
}

/** A settings table as `[name, value]` pairs, each key checked. */
function settingPairs(where, table) {
  if (table === undefined) return new Map();
  if (table === null || typeof table !== 'object' || Array.isArray(table)) {
    throw new ConfigError(`${where}: a table of wisp settings (e.g. { timeout: 2s })`);
  }
  const pairs = new Map();
  for (const [name, value] of Object.entries(table)) {
    if (RESERVED.has(name)) {
      throw new ConfigError(`${where}.${name}: not a setting (the plugin sets it from serverless.yml)`);
    }
    pairs.set(name, settingValues(`${where}.${name}`, value));
  }
  return pairs;
}

/** Serverless's whole seconds (`timeout: 6`) as a wisp duration. */
function seconds(where, value) {
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`${where}: a number of seconds`);
  return `${value}s`;
}

/** Serverless's megabytes (`memorySize: 128`) as a wisp size. */
function megabytes(where, value) {
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(`${where}: a whole number of megabytes`);
  return `${value}MiB`;
}

/**
 * What wisp is to deploy for function `key` of `service`: `{ key, name,
 * route, wasm, build, settings }`, `settings` as `[name, value]` pairs.
 */
function wispFunction({ service, stage, provider, serviceDir, prefix }, key, fn) {
  for (const field of Object.keys(fn)) {
    if (!FUNCTION_KEYS.has(field)) {
      const hint = field === 'handler' || field === 'runtime' || field === 'image'
        ? ': wisp runs WebAssembly — give the function `wasm: path/to/it.wasm`'
        : '';
      throw new ConfigError(`functions.${key}.${field}: wisp cannot honour it${hint}`);
    }
  }
  const name = fn.name || `${service}-${stage}-${key}`;
  if (!NAME.test(name)) {
    throw new ConfigError(
      `functions.${key}: its wisp name \`${name}\` is not one: use 1 to 63 lowercase letters, digits, \`-\` or \`_\`, starting with a letter or digit (set functions.${key}.name)`
    );
  }
  const artifact = fn.wasm || (fn.package && fn.package.artifact);
  if (!artifact) {
    throw new ConfigError(`functions.${key}: no \`wasm\` (the .wasm to deploy, relative to serverless.yml) and no \`package.artifact\``);
  }
  const events = readEvents(key, fn.events);
  const pathOfEvents = events.path || `/${key}`;
  const route = prefix + (pathOfEvents === '/' && prefix ? '' : pathOfEvents) || '/';

  const settings = settingPairs('provider.settings', provider.settings);
  for (const [name, values] of settingPairs(`functions.${key}.settings`, fn.settings)) settings.set(name, values);
  const environment = { ...(provider.environment || {}), ...(fn.environment || {}) };
  if (Object.keys(environment).length) {
    settings.set('env', [...(settings.get('env') || []), ...settingValues(`functions.${key}.environment`, environment)]);
  }
  const timeout = fn.timeout === undefined ? provider.timeout : fn.timeout;
  if (timeout !== undefined && !settings.has('timeout')) settings.set('timeout', [seconds(`functions.${key}.timeout`, timeout)]);
  const memory = fn.memorySize === undefined ? provider.memorySize : fn.memorySize;
  if (memory !== undefined && !settings.has('memory')) settings.set('memory', [megabytes(`functions.${key}.memorySize`, memory)]);
  if (events.schedules.length) settings.set('cron', [...(settings.get('cron') || []), ...events.schedules]);

  return {
    key,
    name,
    route,
    wasm: path.resolve(serviceDir, artifact),
    build: fn.build,
    settings: [...settings].flatMap(([setting, values]) => values.map((value) => [setting, value])),
  };
}

/** The deploy query: the route, the settings, and that the file is the whole truth. */
function deployQuery(fn, origin) {
  const query = new URLSearchParams();
  query.append('route', fn.route);
  query.append('origin', origin);
  // serverless.yml is the whole truth, as wisp.toml is for `wisp up`: the
  // settings it leaves out are the defaults, and its route is where the
  // function goes.
  query.append('reset-settings', 'true');
  query.append('move-route', 'true');
  for (const [name, value] of fn.settings) query.append(name, value);
  return query.toString();
}

module.exports = { ConfigError, providerConfig, wispFunction, deployQuery, routePath };
