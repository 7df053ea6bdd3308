#!/usr/bin/env bash
# A docker testnet of real AMOSKYS nodes, an snmpd device and an attacker on
# a user network. Builds its images with no registry: each is a root file
# system made of the host's binaries and the libraries they load, imported
# with `docker import` (docs/TESTNET.md).
#
#   testnet.sh build                 images amoskys-node, -device, -attacker
#   testnet.sh up N                  N nodes (node0 forms the cluster)
#   testnet.sh partition I...        cut nodes I... off the network
#   testnet.sh heal                  reconnect every node
#   testnet.sh kill I | restart I    stop / start node I
#   testnet.sh exec I CMD...         run a command in node I
#   testnet.sh down                  remove containers, network and state
#
# AMOSKYS_BIN selects the node binary (default: the debug build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
state="${AMOSKYS_DOCKER_STATE:-/tmp/amoskys-docker-testnet}"
project="amoskystn"
subnet="172.30.77"
compose() { docker-compose -p "$project" -f "$state/compose.yml" "$@"; }

bin() {
  if [ -n "${AMOSKYS_BIN:-}" ]; then echo "$AMOSKYS_BIN"; return; fi
  # shellcheck source=/dev/null
  (source "$root/.ci/env" && echo "$CARGO_TARGET_DIR/debug/amoskys")
}

# rootfs DIR FILE...: FILEs and every library they load, at their paths.
rootfs() {
  local dir="$1"; shift
  mkdir -p "$dir/tmp" "$dir/etc" "$dir/data"
  chmod 1777 "$dir/tmp"
  echo "root:x:0:0:root:/root:/bin/sh" > "$dir/etc/passwd"
  echo "root:x:0:" > "$dir/etc/group"
  for f in "$@"; do
    cp --parents -L "$f" "$dir"
    ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
      cp --parents -L "$lib" "$dir"
    done
  done
}

image() { # NAME DIR ENTRYPOINT-JSON
  tar -C "$2" -c . | docker import --change "ENTRYPOINT $3" - "$1" >/dev/null
  echo "built $1"
}

build() {
  local b; b="$(bin)"
  [ -x "$b" ] || { echo "no node binary at $b (cargo build -p amoskys-node, or set AMOSKYS_BIN)" >&2; exit 1; }
  local tmp; tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  rootfs "$tmp/node/rootfs" "$b"
  mkdir -p "$tmp/node/rootfs/usr/local/bin"
  mv "$tmp/node/rootfs$b" "$tmp/node/rootfs/usr/local/bin/amoskys"
  # FROM scratch pulls nothing; the classic builder needs no plugin.
  DOCKER_BUILDKIT=0 docker build -q -t amoskys-node:testnet -f "$here/Dockerfile" "$tmp/node" >/dev/null
  echo "built amoskys-node:testnet"
  rootfs "$tmp/device" /usr/sbin/snmpd
  image amoskys-device:testnet "$tmp/device" '["/usr/sbin/snmpd"]'
  local tools=(/usr/bin/nmap)
  for t in /usr/sbin/hping3 /usr/bin/hydra /usr/bin/sleep; do [ -x "$t" ] && tools+=("$t"); done
  rootfs "$tmp/attacker" "${tools[@]}"
  cp -r --parents /usr/share/nmap "$tmp/attacker"
  image amoskys-attacker:testnet "$tmp/attacker" '["/usr/bin/sleep"]'
}

up() {
  local n="$1" b; b="$(bin)"
  mkdir -p "$state"
  local keys=()
  for i in $(seq 0 $((n - 1))); do
    mkdir -p "$state/node$i"
    if [ ! -f "$state/node$i/public_key" ]; then
      "$b" keygen --force --out "$state/node$i/node.key" | awk '/^public key/ {print $3}' > "$state/node$i/public_key"
    fi
    keys+=("\"$(cat "$state/node$i/public_key")\"")
  done
  local admitted; admitted="$(IFS=,; echo "${keys[*]}")"
  {
    echo "networks:"
    echo "  mesh:"
    echo "    ipam:"
    echo "      config:"
    echo "        - subnet: $subnet.0/24"
    echo "services:"
    echo "  device:"
    echo "    image: amoskys-device:testnet"
    echo "    command: [\"-f\", \"-Lo\", \"-C\", \"-c\", \"/conf/snmpd.conf\", \"udp:161\"]"
    echo "    environment: [\"SNMP_PERSISTENT_DIR=/tmp\"]"
    echo "    volumes: [\"$state/device:/conf:ro\"]"
    echo "    networks: {mesh: {ipv4_address: $subnet.3}}"
    echo "  attacker:"
    echo "    image: amoskys-attacker:testnet"
    echo "    command: [\"infinity\"]"
    echo "    cap_add: [NET_RAW, NET_ADMIN]"
    echo "    networks: {mesh: {ipv4_address: $subnet.2}}"
    for i in $(seq 0 $((n - 1))); do
      echo "  node$i:"
      echo "    image: amoskys-node:testnet"
      echo "    command: [\"run\", \"--config\", \"/data/amoskys.toml\", \"--log-format\", \"json\"]"
      echo "    cap_add: [NET_RAW, NET_ADMIN]"
      echo "    volumes: [\"$state/node$i:/data\"]"
      echo "    networks: {mesh: {ipv4_address: $subnet.$((10 + i))}}"
    done
  } > "$state/compose.yml"
  mkdir -p "$state/device"
  echo "rocommunity amoskys-ro $subnet.0/24" > "$state/device/snmpd.conf"
  for i in $(seq 0 $((n - 1))); do
    {
      printf '[node]\nname = "node%s"\ndata_dir = "/data"\n\n[api]\nlisten = "127.0.0.1:7300"\n\n' "$i"
      printf '[mesh]\nlisten = ["%s.%s:7301"]\nadmitted = [%s]\nmdns = false\n' "$subnet" $((10 + i)) "$admitted"
      [ "$i" -gt 0 ] && printf 'bootstrap = ["%s.10:7301"]\n' "$subnet"
      printf '\n[sensors.flows]\ninterfaces = ["eth0"]\n\n[sensors.ebpf]\nenabled = false\n\n[sensors.procfs]\nenabled = false\n'
      printf '\n[sensors.snmp]\ninterval_ms = 5000\n\n[[sensors.snmp.devices]]\nname = "switch"\naddress = "%s.3:161"\nversion = "v2c"\ncommunity = "amoskys-ro"\n' "$subnet"
    } > "$state/node$i/amoskys.toml"
  done
  echo "$n" > "$state/nodes"
  compose up -d >/dev/null
  echo "up: $n nodes on $subnet.0/24 (node0 at $subnet.10); state in $state"
}

net() { echo "${project}_mesh"; }

case "${1:-}" in
  build) build ;;
  up) [ -n "${2:-}" ] || { echo "usage: $0 up N" >&2; exit 2; }; up "$2" ;;
  partition) shift; for i in "$@"; do docker network disconnect "$(net)" "${project}_node${i}_1"; done ;;
  heal)
    n="$(cat "$state/nodes")"
    for i in $(seq 0 $((n - 1))); do
      docker network connect --ip "$subnet.$((10 + i))" "$(net)" "${project}_node${i}_1" 2>/dev/null || true
    done ;;
  kill) docker kill "${project}_node${2}_1" >/dev/null ;;
  restart) docker start "${project}_node${2}_1" >/dev/null ;;
  exec) i="$2"; shift 2; docker exec "${project}_node${i}_1" "$@" ;;
  attack) shift; docker exec "${project}_attacker_1" "$@" ;;
  down) [ -f "$state/compose.yml" ] && compose down -v --remove-orphans >/dev/null 2>&1 || true; rm -rf "$state" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
