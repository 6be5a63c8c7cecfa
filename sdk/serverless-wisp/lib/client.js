// The wisp admin API, as this plugin uses it: one small client over Node's
// own `fetch`, which turns every refusal into an error carrying the host's
// reason (`{"error": "...", "kind": "..."}`) and never prints the token.

'use strict';

/** An answer of the admin API other than 2xx, or no answer at all. */
class AdminError extends Error {
  constructor(message, status, kind) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

class AdminClient {
  /**
   * @param {string} endpoint the admin listener, e.g. `http://127.0.0.1:8081`
   * @param {string|undefined} token the admin token, if the host has one
   */
  constructor(endpoint, token) {
    this.endpoint = endpoint.replace(/\/+$/, '');
    this.token = token;
  }

  /** Sends a request; returns the `Response` of a 2xx answer. */
  async open(method, path, body, headers = {}) {
    const all = { ...headers };
    if (this.token) all.authorization = `Bearer ${this.token}`;
    let response;
    try {
      response = await fetch(`${this.endpoint}${path}`, { method, body, headers: all });
    } catch (error) {
      const cause = error.cause && error.cause.message ? `: ${error.cause.message}` : '';
      throw new AdminError(`cannot reach wisp's admin API at ${this.endpoint}${cause}`, 0);
    }
    if (response.ok) return response;
    const text = await response.text();
    let message = text.trim() || response.statusText;
    let kind;
    try {
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed.error === 'string') {
        message = parsed.error;
        kind = parsed.kind;
      }
    } catch {
      // Not JSON: the text is the reason.
    }
    if (response.status === 401) {
      message = `${message} (give the admin token as provider.token or WISP_ADMIN_TOKEN)`;
    }
    throw new AdminError(message, response.status, kind);
  }

  /** Sends a request and parses its JSON answer. */
  async json(method, path, body, headers) {
    const response = await this.open(method, path, body, headers);
    return response.json();
  }

  /** Every function the host serves. */
  list() {
    return this.json('GET', '/v1/functions');
  }

  /** One function, or `undefined` when the host has none of that name. */
  async get(name) {
    try {
      return await this.json('GET', `/v1/functions/${name}`);
    } catch (error) {
      if (error.status === 404) return undefined;
      throw error;
    }
  }

  /**
   * Deploys `wasm` (bytes) as a new version of `name`; `query` holds the
   * route and settings. Returns the host's deploy report.
   */
  deploy(name, query, wasm) {
    return this.json('PUT', `/v1/functions/${name}?${query}`, wasm, {
      'content-type': 'application/wasm',
    });
  }

  /** Removes `name` with its versions, state and logs; false if absent. */
  async remove(name) {
    try {
      await this.open('DELETE', `/v1/functions/${name}`);
      return true;
    } catch (error) {
      if (error.status === 404) return false;
      throw error;
    }
  }

  /** Restores `name`'s previous traffic split. */
  rollback(name) {
    return this.json('POST', `/v1/functions/${name}/rollback`);
  }

  /** Gives all of `name`'s traffic to `version`. */
  routeAllTo(name, version) {
    return this.json('PUT', `/v1/functions/${name}/traffic`, JSON.stringify([{ version, weight: 100 }]), {
      'content-type': 'application/json',
    });
  }

  /** Runs `name` directly (not through its route); returns the `Response`. */
  invoke(name, path, method, body) {
    return this.open(method, `/v1/functions/${name}/invoke${path}`, body);
  }

  /** Opens `name`'s log lines (JSON lines; streams when following). */
  logs(name, query) {
    return this.open('GET', `/v1/functions/${name}/logs?${query}`);
  }
}

module.exports = { AdminClient, AdminError };
