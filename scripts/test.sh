#!/usr/bin/env bash
# Runs every xdpc test: unit, golden, CLI scripts, kernel (BPF_PROG_TEST_RUN),
# the differential corpus and the CLI contract. Needs root (CAP_BPF, netns).
# Installs the Debian test-time tools it needs when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# llvm-objdump must be LLVM 18 or later to decode store-immediate
# instructions: llvm-19 on Debian 12, llvm-18 where that is what there is.
have_objdump() { compgen -c | grep -qxE 'llvm-objdump-(18|19|20|21)'; }
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})) || ! have_objdump; then
  echo "installing test tools: ${need[*]} llvm"
  apt-get update -qq
  if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  have_objdump || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm-19 >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm-18 >/dev/null
fi

go vet ./...
go test -count=1 -timeout 20m ./...
# A short real fuzzing run on every change, beyond the seed corpora above:
# mutated frames through kernel and reference, arbitrary bytes to the decoder.
go test -run '^$' -fuzz '^FuzzDifferential$' -fuzztime 20s ./lab
go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 15s ./policy
if [[ -x ../shared/checks/contract.sh ]] || [[ -f ../shared/checks/contract.sh ]]; then
  bash ../shared/checks/contract.sh
fi
