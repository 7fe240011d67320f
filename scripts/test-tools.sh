#!/usr/bin/env bash
# Installs, from Debian's packages, the tools xdpc's tests use when they are
# missing: iproute2 (ip link ... xdp obj), python3 (the contract check),
# nftables (the NAT tests' baseline) and llvm-objdump. Sourced by test.sh and kernels.sh; run as root.

# llvm-objdump must be LLVM 18 or later to decode store-immediate
# instructions: llvm-19 on Debian 12, llvm-18 where that is what there is.
have_objdump() { compgen -c | grep -qxE 'llvm-objdump-(18|19|20|21)'; }

# install_test_tools [PACKAGE...] installs the test tools and the packages
# named, each only when missing.
install_test_tools() {
  local need=("$@")
  command -v ip >/dev/null || need+=(iproute2)
  command -v python3 >/dev/null || need+=(python3)
  command -v nft >/dev/null || need+=(nftables)
  if ((${#need[@]})) || ! have_objdump; then
    echo "installing test tools: ${need[*]} llvm"
    apt-get update -qq
    if ((${#need[@]})); then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    have_objdump || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm-19 >/dev/null ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm-18 >/dev/null
  fi
}
