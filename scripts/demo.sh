#!/usr/bin/env bash
# Ferry's main job end to end on this machine, with nothing but loopback:
#   1. start an "upstream" registry (docker-registry) on 127.0.0.1,
#   2. build sample images (one multi-arch index, tags sharing a base layer) and push them with skopeo,
#   3. write a small Go module proxy tree (file://) with two modules, one requiring the other,
#   4. ferry sync images and modules into a store, sync again (nothing changes), move a tag and sync,
#   5. ferry status and ferry fsck,
#   6. ferry keygen, ferry export (full), ferry verify, and ferry import into a second "intranet"
#      registry and a Go module tree; skopeo and go check what arrived,
#   7. push a new tag upstream, sync, export incrementally and import again; ferry ledger.
# Everything lives under .demo/ (removed at the start of each run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
# Logs as human-readable text, not JSON lines: this output is read by a person.
FERRY="node $ROOT/dist/ferry.mjs --log-format text"

for cmd in docker-registry skopeo sha256sum gzip tar python3 curl; do
  command -v "$cmd" >/dev/null || { echo "demo: $cmd is missing (npm run demo installs what the demo needs)" >&2; exit 2; }
done

rm -rf "$DEMO"
mkdir -p "$DEMO"/{upstream,intranet,images,goproxy}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

start_registry() { # DIR PORT
  cat >"$1/config.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $1/data }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$2 }
EOF
  docker-registry serve "$1/config.yml" >"$1/registry.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$2/v2/" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: registry on port $2 did not start; see $1/registry.log" >&2
  exit 1
}

# blob FILE LAYOUT -> prints "sha256:HEX SIZE" and copies FILE into LAYOUT/blobs
blob() {
  local hex size
  hex=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mkdir -p "$2/blobs/sha256"
  cp "$1" "$2/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

# layer NAME MB -> a gzip layer with NAME/data of MB megabytes of random bytes
layer() {
  local d=$DEMO/images/src-$1
  mkdir -p "$d/$1"
  head -c $(($2 * 1024 * 1024)) /dev/urandom >"$d/$1/data"
  tar -C "$d" --sort=name --owner=0 --group=0 --mtime=@0 -cf - "$1" | gzip -n >"$DEMO/images/$1.tar.gz"
  echo "$DEMO/images/$1.tar.gz"
}

# image LAYOUT ARCH LAYER... -> writes config + manifest into LAYOUT, prints "DIGEST SIZE" of the manifest
image() {
  local layout=$1 arch=$2; shift 2
  local layers="" diffids="" first=1 l d s
  for l in "$@"; do
    read -r d s < <(blob "$l" "$layout")
    local diff; diff=$(gzip -dc "$l" | sha256sum | cut -d' ' -f1)
    [ $first = 1 ] || { layers+=","; diffids+=","; }
    layers+="{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"$d\",\"size\":$s}"
    diffids+="\"sha256:$diff\""
    first=0
  done
  printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' "$arch" "$diffids" >"$DEMO/images/config-$arch.json"
  local cd cs; read -r cd cs < <(blob "$DEMO/images/config-$arch.json" "$layout")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
    "$cd" "$cs" "$layers" >"$DEMO/images/manifest-$arch.json"
  blob "$DEMO/images/manifest-$arch.json" "$layout"
}

# layout_for TAG MANIFEST-DESCRIPTOR-JSON -> writes oci-layout + index.json naming TAG
index_json() {
  echo '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"
  printf '{"schemaVersion":2,"manifests":[%s]}' "$2" >"$1/index.json"
}

push() { skopeo copy --all --quiet --dest-tls-verify=false "oci:$1:$2" "docker://127.0.0.1:$UP/$3:$2"; }

UP=$(free_port)
start_registry "$DEMO/upstream" "$UP"
echo "== upstream registry on 127.0.0.1:$UP"

base=$(layer base 8)
app1=$(layer app-v1 2)
app2=$(layer app-v2 3)
tools=$(layer tools 4)

# lab/app:v1.0 and v1.1 share the base layer; lab/app:v1.1 is a two-platform index.
L=$DEMO/images/app-v1.0
read -r d s < <(image "$L" amd64 "$base" "$app1")
index_json "$L" "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$d\",\"size\":$s,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1.0\"}}"
push "$L" v1.0 lab/app

L=$DEMO/images/app-v1.1
read -r da sa < <(image "$L" amd64 "$base" "$app2")
read -r db sb < <(image "$L" arm64 "$base" "$app2")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"platform":{"architecture":"arm64","os":"linux"}}]}' \
  "$da" "$sa" "$db" "$sb" >"$DEMO/images/index.json"
read -r di si < <(blob "$DEMO/images/index.json" "$L")
index_json "$L" "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"$di\",\"size\":$si,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1.1\"}}"
push "$L" v1.1 lab/app

L=$DEMO/images/tools
read -r d s < <(image "$L" amd64 "$base" "$tools")
index_json "$L" "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$d\",\"size\":$s,\"annotations\":{\"org.opencontainers.image.ref.name\":\"1.0\"}}"
push "$L" 1.0 lab/tools
skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false "docker://127.0.0.1:$UP/lab/tools:1.0" "docker://127.0.0.1:$UP/lab/tools:1.0-rc1"

# A Go module proxy tree: example.com/greet v1.0.0 requires example.com/words v0.1.0.
python3 - "$DEMO/goproxy" <<'PY'
import json, os, sys, zipfile
root = sys.argv[1]
mods = {
    ("example.com/words", "v0.1.0"): ("module example.com/words\n", {"words.go": "package words\n\nconst Hello = \"hello from the other side of the air gap\"\n"}),
    ("example.com/greet", "v1.0.0"): ("module example.com/greet\n\nrequire example.com/words v0.1.0\n",
        {"greet.go": "package greet\n\nimport \"example.com/words\"\n\nfunc Hello() string { return words.Hello }\n"}),
}
for (path, version), (gomod, files) in mods.items():
    d = os.path.join(root, path, "@v")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "list"), "w").write(version + "\n")
    open(os.path.join(d, version + ".info"), "w").write(json.dumps({"Version": version, "Time": "2026-01-01T00:00:00Z"}) + "\n")
    open(os.path.join(d, version + ".mod"), "w").write(gomod)
    with zipfile.ZipFile(os.path.join(d, version + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in sorted({**files, "go.mod": gomod}.items()):
            z.writestr(zipfile.ZipInfo(f"{path}@{version}/{name}", (2026, 1, 1, 0, 0, 0)), text)
PY

cat >"$DEMO/ferry.yaml" <<EOF
version: 1
store: ./store
concurrency: 8
registries:
  - host: 127.0.0.1:$UP
    tls: plain-http
images:
  - name: app
    source: 127.0.0.1:$UP/lab/app
    tags: { include: ["v*"] }
    platforms: [linux/amd64, linux/arm64]
    target: mirror/app
  - name: tools
    source: 127.0.0.1:$UP/lab/tools
    tags: { exclude: ["*-rc*"] }
goModules:
  proxy: file://$DEMO/goproxy
  sumdb: "off"            # the demo's modules are not in sum.golang.org
  modules:
    - path: example.com/greet
      versions: latest
export:
  signingKey: ./keys/ferry.key
  out: ./outbox
EOF

echo "== ferry config check"
$FERRY config check "$DEMO/ferry.yaml"
echo "== ferry sync (cold)"
$FERRY sync -c "$DEMO/ferry.yaml"
echo "== ferry sync (nothing changed upstream)"
$FERRY sync -c "$DEMO/ferry.yaml"
echo "== move lab/app:v1.0 to the v1.1 content, then ferry sync (only the new blobs)"
skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false "docker://127.0.0.1:$UP/lab/app:v1.1" "docker://127.0.0.1:$UP/lab/app:v1.0"
$FERRY sync -c "$DEMO/ferry.yaml"
echo "== ferry status"
$FERRY status -c "$DEMO/ferry.yaml"
echo "== ferry fsck"
$FERRY fsck -c "$DEMO/ferry.yaml"

echo "== ferry keygen, ferry export (full), ferry verify"
mkdir -p "$DEMO/keys"
$FERRY keygen --out "$DEMO/keys/ferry"
$FERRY export -c "$DEMO/ferry.yaml"
$FERRY verify "$DEMO"/outbox/ferry-*-0001.tar --trust "$DEMO/keys/ferry.pub"

IN=$(free_port)
start_registry "$DEMO/intranet" "$IN"
echo "== inside: ferry import into the intranet registry on 127.0.0.1:$IN and a Go module tree"
$FERRY import "$DEMO"/outbox/ferry-*-0001.tar --trust "$DEMO/keys/ferry.pub" \
  --registry "127.0.0.1:$IN" --plain-http --gomod-dir "$DEMO/gomod" --ledger "$DEMO/ledger.db"
for ref in mirror/app:v1.0 mirror/app:v1.1 lab/tools:1.0; do
  up=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$UP/${ref/mirror\/app/lab/app}" | sha256sum | cut -d' ' -f1)
  in=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$IN/$ref" | sha256sum | cut -d' ' -f1)
  echo "  $ref: upstream sha256:$up, intranet sha256:$in"
done
if command -v go >/dev/null; then
  echo "== inside: go build with GOPROXY=file://$DEMO/gomod and nothing else"
  mkdir -p "$DEMO/app"
  printf 'module example.com/app\n\ngo 1.19\n\nrequire example.com/greet v1.0.0\n' >"$DEMO/app/go.mod"
  printf 'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/greet"\n)\n\nfunc main() { fmt.Println(greet.Hello()) }\n' >"$DEMO/app/main.go"
  (cd "$DEMO/app" && env -i PATH="$PATH" HOME="$DEMO/gohome" GOPATH="$DEMO/gohome/go" GOCACHE="$DEMO/gohome/cache" \
    GOPROXY="file://$DEMO/gomod" GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local go run .)
fi

echo "== a new tag upstream: sync, incremental export, import"
skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false "docker://127.0.0.1:$UP/lab/tools:1.0" "docker://127.0.0.1:$UP/lab/app:v2.0"
$FERRY sync -c "$DEMO/ferry.yaml"
$FERRY export -c "$DEMO/ferry.yaml"
$FERRY import "$DEMO"/outbox/ferry-*-0002.tar --trust "$DEMO/keys/ferry.pub" \
  --registry "127.0.0.1:$IN" --plain-http --gomod-dir "$DEMO/gomod" --ledger "$DEMO/ledger.db"
echo "== ferry ledger"
$FERRY ledger --ledger "$DEMO/ledger.db"
echo "== demo finished: store in $DEMO/store, bundles in $DEMO/outbox"
