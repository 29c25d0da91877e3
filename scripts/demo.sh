#!/usr/bin/env bash
# Ferry's main job end to end on this machine, with nothing but loopback:
#   1. start an "upstream" registry (docker-registry) on 127.0.0.1,
#   2. build sample images (one multi-arch index, tags sharing a base layer) and push them with skopeo,
#   3. ferry sync them into a store, sync again (nothing changes), move a tag and sync (only new blobs),
#   4. ferry status and ferry fsck.
# Everything lives under .demo/ (removed at the start of each run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
FERRY="node $ROOT/dist/cli/main.js"

for cmd in docker-registry skopeo sha256sum gzip tar; do
  command -v "$cmd" >/dev/null || { echo "demo: $cmd is missing (apt-get install -y docker-registry skopeo)" >&2; exit 2; }
done

rm -rf "$DEMO"
mkdir -p "$DEMO"/{upstream,images}
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
EOF

echo "== ferry config check"
$FERRY config check "$DEMO/ferry.yaml"
echo "== ferry sync (cold)"
$FERRY sync -c "$DEMO/ferry.yaml" --json
echo "== ferry sync (nothing changed upstream)"
$FERRY sync -c "$DEMO/ferry.yaml" --json
echo "== move lab/app:v1.0 to the v1.1 content, then ferry sync (only the new blobs)"
skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false "docker://127.0.0.1:$UP/lab/app:v1.1" "docker://127.0.0.1:$UP/lab/app:v1.0"
$FERRY sync -c "$DEMO/ferry.yaml" --json
echo "== ferry status"
$FERRY status -c "$DEMO/ferry.yaml"
echo "== ferry fsck"
$FERRY fsck -c "$DEMO/ferry.yaml"
echo "== demo finished: store in $DEMO/store"
