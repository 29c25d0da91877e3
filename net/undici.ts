/**
 * The parts of undici Ferry uses, loaded one by one: undici's index also loads fetch,
 * WebSocket, caches and mocks, about 50 ms at every CLI start. What the index does besides
 * loading is repeated here: it gives every dispatcher the request, stream, pipeline, upgrade
 * and connect methods (which ProxyAgent relies on to open its tunnels).
 */
import apiMethods from 'undici/lib/api/index.js';
import Agent from 'undici/lib/dispatcher/agent.js';
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import EnvHttpProxyAgent from 'undici/lib/dispatcher/env-http-proxy-agent.js';

Object.assign(Dispatcher.prototype, apiMethods);

export { Agent, EnvHttpProxyAgent };
