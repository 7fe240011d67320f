#!/usr/bin/env bash
# Runs every xdpc test: unit, golden, CLI scripts, kernel (BPF_PROG_TEST_RUN),
# the differential corpus and the CLI contract on this host's kernel, then
# the kernel-facing parts on Debian 12's kernels under qemu. Needs root
# (CAP_BPF, netns).
# Installs the Debian test-time tools it needs when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/test-tools.sh
source scripts/test-tools.sh
install_test_tools

go vet ./...
go test -count=1 -timeout 20m ./...
# A short real fuzzing run on every change, beyond the seed corpora above:
# mutated frames through kernel and reference, arbitrary bytes to the decoder.
go test -run '^$' -fuzz '^FuzzDifferential$' -fuzztime 20s ./lab
go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 15s ./policy
if [[ -x ../shared/checks/contract.sh ]] || [[ -f ../shared/checks/contract.sh ]]; then
  bash ../shared/checks/contract.sh
fi
# The kernel-facing parts again on Debian 12's 6.1 and 6.12 under qemu
# (docs/kernels.md). XDPC_KERNELS names the series; "none" leaves them to a
# separate job, as the GitHub workflow's kernels matrix does.
kernels=${XDPC_KERNELS:-6.1 6.12}
if [[ $kernels != none ]]; then
  # shellcheck disable=SC2086 # a list of series
  bash scripts/kernels.sh $kernels
fi
