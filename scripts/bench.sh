#!/usr/bin/env bash
# Runs xdpc's benchmarks (see docs/performance.md): the program alone under
# BPF_PROG_TEST_RUN against the empty-program floor, against a clang-built
# C peer of the same rules (interleaved in one run), what connection
# tracking adds to a packet beside the same rules without it, apply's
# latency, and NAT through a router against nftables.
# Needs root. clang and libbpf-dev build the peer baseline only, nftables
# the NAT baseline; they are never a dependency of xdpc itself.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v clang >/dev/null || need+=(clang)
[[ -f /usr/include/bpf/bpf_helpers.h ]] || need+=(libbpf-dev)
command -v nft >/dev/null || need+=(nftables)
if ((${#need[@]})); then
  echo "installing benchmark tools: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

go test -run '^$' -bench 'BenchmarkTestRun|BenchmarkPeer|BenchmarkSkipping|BenchmarkConntrack' -benchtime "${BENCHTIME:-200x}" ./runtime
go test -run '^$' -bench 'BenchmarkApply' -benchtime 10x ./runtime
go test -run '^$' -bench 'BenchmarkMasquerade' -benchtime 3x ./internal/routerlab
