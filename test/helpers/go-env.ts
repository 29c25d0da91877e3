// The environment for the go command as an independent judge: temp HOME/GOPATH/caches, one
// GOPROXY, the given GOSUMDB, module mode, no toolchain download, nothing else configured.
import { join } from 'node:path';

/** go's environment rooted at `home`, fetching only from `proxy`, verifying with `gosumdb` (default off). */
export function goEnv(home: string, proxy: string, gosumdb = 'off'): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: home,
    GOPATH: join(home, 'gopath'),
    GOMODCACHE: join(home, 'gopath', 'pkg', 'mod'),
    GOCACHE: join(home, 'gocache'),
    GOENV: 'off',
    GOPROXY: proxy,
    GOSUMDB: gosumdb,
    GONOSUMDB: '',
    GOPRIVATE: '',
    GONOPROXY: '',
    GOINSECURE: '',
    GOFLAGS: '-mod=mod',
    GOTOOLCHAIN: 'local',
    GO111MODULE: 'on',
    CGO_ENABLED: '0',
  };
}
