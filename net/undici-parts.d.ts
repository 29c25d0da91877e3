// Types for the undici modules Ferry loads one by one (see undici.ts): undici's own index loads
// fetch, WebSocket, caches and mocks as well, which cost every CLI start about 50 ms.
declare module 'undici/lib/dispatcher/agent.js' {
  import { Agent } from 'undici';
  export = Agent;
}

declare module 'undici/lib/dispatcher/env-http-proxy-agent.js' {
  import { EnvHttpProxyAgent } from 'undici';
  export = EnvHttpProxyAgent;
}

declare module 'undici/lib/dispatcher/dispatcher.js' {
  import { Dispatcher } from 'undici';
  export = Dispatcher;
}

declare module 'undici/lib/api/index.js' {
  const api: Record<string, unknown>;
  export = api;
}
