#!/usr/bin/env bash
# Runs xdpc's kernel-facing tests on the kernels production hosts run:
# Debian 12's own 6.1 and 6.12, booted under qemu. The guest shares this
# host's root filesystem read-only over 9p (so it runs the very binaries and
# test data of this checkout) and writes its logs and results to a second,
# writable 9p share. See docs/kernels.md.
#
#   bash scripts/kernels.sh                 # every kernel, every part
#   bash scripts/kernels.sh 6.1             # one kernel series
#   XDPC_KERNEL_PARTS="runtime demo" bash scripts/kernels.sh 6.12
#
# Kernels come from Debian's packages (linux-image-*-amd64-unsigned), the
# newest of each series that apt knows, unpacked into a cache
# ($XDPC_KERNEL_CACHE, default /var/cache/xdpc/kernels) without being
# installed. KVM is used when it can boot a kernel; otherwise (nested
# virtualisation that cannot run an unmodified guest) software emulation.
#
# Inside the guest the script runs itself again with --guest.
set -euo pipefail

# The parts of the suite a guest runs, in order; each is a function below.
all_parts="cases-kernel cases-lab demo compiler runtime differential lab cli nat"

guest_main() {
  # Runs as PID 1 of the guest after the initramfs mounted the host's root.
  export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  export HOME=/tmp TMPDIR=/tmp GOTRACEBACK=all
  # The guest's own /tmp hides the host's; a checkout under the host's
  # /tmp is bound back at its path from a view of the host's /tmp kept in
  # /run.
  mount -t tmpfs tmpfs /run
  mkdir -p /run/netns /run/hosttmp
  mount --bind /tmp /run/hosttmp
  mount -t tmpfs -o mode=1777 tmpfs /tmp
  mkdir -p /tmp/out
  mount -t bpf bpffs /sys/fs/bpf
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 out /tmp/out
  ip link set lo up
  local out=/tmp/out repo
  repo=$(cat "$out/repo")
  if [[ $repo == /tmp/* ]]; then
    mkdir -p "$repo"
    mount --bind "/run/hosttmp/${repo#/tmp/}" "$repo"
  fi
  local parts
  parts=$(cat "$out/parts")
  # The host's Go toolchain and module cache, read-only, for tests that
  # ask `go list` about the import graph; nothing is downloaded.
  # shellcheck source=/dev/null
  source "$out/goenv"
  export PATH=$GOROOT/bin:$PATH GOCACHE=/tmp/gocache GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=readonly
  echo "guest: kernel $(uname -r), parts: $parts"
  : >"$out/results"
  for part in $parts; do
    local start=$SECONDS rc=0
    echo "guest: part $part"
    (cd "$repo" && bin=$out/bin timeout 900 bash "$repo/scripts/kernels.sh" --part "$part") \
      >"$out/$part.log" 2>&1 || rc=$?
    echo "$part $rc $((SECONDS - start))" >>"$out/results"
    echo "guest: part $part: exit $rc in $((SECONDS - start))s"
  done
  echo done >"$out/finished"
  sync
  echo o >/proc/sysrq-trigger
  sleep 10
}

# Each part runs from the repository root with $bin holding the binaries
# the host built.
part_cases-kernel() { "$bin/xdpc" test --backend kernel testdata/lab; }
part_cases-lab() { "$bin/xdpc" test --backend lab testdata/lab; }
part_demo() { "$bin/xdpc" demo; }
# TestImportsNoCompiler checks the import graph with go list: nothing of
# the kernel in it, 40 s under emulation; the host suite runs it.
part_runtime() { cd runtime && "$bin/runtime.test" -test.v -test.count=1 -test.timeout=12m -test.skip '^TestImportsNoCompiler$'; }
part_differential() { cd lab && "$bin/lab.test" -test.v -test.short -test.run '^TestDifferential$' -test.timeout=12m; }
# TestCases runs the golden cases on every backend, as the cases-kernel
# and cases-lab parts already do through the CLI; the differentials run at
# their short size, as the differential part does.
part_lab() { cd lab && "$bin/lab.test" -test.v -test.short -test.skip '^(TestDifferential|TestCases)$' -test.timeout=12m; }
part_compiler() { cd compiler && "$bin/compiler.test" -test.v -test.timeout=12m; }
# Real sockets through a NAT router (both checksum regimes, both forwarding
# paths); the nftables baseline tests stay on the host.
part_nat() { cd internal/routerlab && "$bin/routerlab.test" -test.v -test.run '^(TestNATSockets|TestNATSocketsReapply|TestXDPNAT|TestXDPNATPortChoice|TestPlainForwarding|TestXDPPassOnRouter)$' -test.timeout=12m; }
part_cli() { cd cmd/xdpc && "$bin/xdpc.test" -test.v -test.run '^(TestScripts|TestDemo.*|TestInterrupt.*|TestConfirm.*|TestDetachWhileConfirmPending|TestSignalDuringApply)$' -test.timeout=12m; }

case ${1:-} in
--guest)
  guest_main
  exit 0
  ;;
--part)
  "part_$2"
  exit
  ;;
esac

cd "$(dirname "$0")/.."
repo=$(pwd)
series=("${@:-6.1 6.12}")
read -r -a series <<<"${series[*]}"
parts=${XDPC_KERNEL_PARTS:-$all_parts}

# guest_groups SERIES prints the parts of each guest that boots the series,
# one guest per line. Under emulation every guest is one host thread, so
# the matrix's wall time is the CPU time of all guests over the host's
# cores, or the longest guest: 6.1 runs every part, in two guests of about
# the same length; 6.12 runs what can differ from 6.1 (the verifier, tcx,
# the datapath on its own and through the lab, NAT) and leaves the lab's
# and the CLI's other tests, which 6.1 runs, to it. XDPC_KERNEL_PARTS runs
# those parts in one guest per series.
guest_groups() {
  if [[ -n ${XDPC_KERNEL_PARTS:-} ]]; then
    echo "$parts"
    return
  fi
  case $1 in
  6.1)
    echo "cases-kernel demo compiler runtime differential"
    echo "cases-lab lab cli nat"
    ;;
  6.12) echo "cases-kernel cases-lab demo compiler runtime differential nat" ;;
  *) echo "$parts" ;;
  esac
}
cache=${XDPC_KERNEL_CACHE:-/var/cache/xdpc/kernels}
work=$(mktemp -d /tmp/xdpc-kernels.XXXXXX)
trap 'rm -rf "$work"' EXIT

log() { printf 'kernels: %s\n' "$*" >&2; }

# Tools: the tests' own (test-tools.sh), qemu, a static busybox for the
# initramfs, depmod and cpio to build it.
if ! command -v apt-get >/dev/null; then
  log "needs a Debian host (apt-get): the kernels and tools come from Debian's packages"
  exit 3
fi
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v depmod >/dev/null || need+=(kmod)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
# shellcheck source=scripts/test-tools.sh
source scripts/test-tools.sh
install_test_tools "${need[@]}"

# kernel_package SERIES prints the newest unsigned amd64 image package of a
# Debian kernel series that apt knows.
kernel_package() {
  local pattern
  case $1 in
  6.1) pattern='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
  6.12) pattern='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' ;;
  *) pattern="^linux-image-${1//./\\.}[.0-9+a-z-]*-amd64-unsigned\$" ;;
  esac
  local found
  found=$(apt-cache search --names-only "$pattern" | awk '{print $1}' | sort -V | tail -1)
  if [[ -z $found ]]; then
    apt-get update -qq
    found=$(apt-cache search --names-only "$pattern" | awk '{print $1}' | sort -V | tail -1)
  fi
  echo "$found"
}

# fetch_kernel PACKAGE unpacks the package into the cache and prints its
# directory: boot/vmlinuz-* and lib/modules/*, with modules.dep.
fetch_kernel() {
  local pkg=$1 dir="$cache/$1"
  if [[ ! -f $dir/.complete ]]; then
    log "fetching $pkg"
    rm -rf "$dir" && mkdir -p "$dir/deb"
    (cd "$dir/deb" && apt-get download -qq "$pkg" 2>/dev/null) || {
      apt-get update -qq && (cd "$dir/deb" && apt-get download -qq "$pkg")
    }
    dpkg-deb -x "$dir"/deb/*.deb "$dir"
    rm -rf "$dir/deb"
    depmod -b "$dir" "$(ls "$dir/lib/modules")"
    touch "$dir/.complete"
  fi
  echo "$dir"
}

# The modules the guest loads before it mounts the host's root: virtio and
# 9p, and what the tests need (veth; clsact and BPF classifiers for TC;
# sock_diag for TCP and UDP, which NAT's apply reads the host's sockets
# with). A Debian host loads these on demand; the guest cannot, since the
# root it mounts holds the host's modules, not its own.
guest_modules="virtio_pci 9pnet_virtio 9p veth sch_ingress cls_bpf inet_diag tcp_diag udp_diag"

# build_initramfs KERNELDIR OUT writes a gzip'd newc initramfs: busybox,
# the modules with their dependencies in load order (decompressed), and an
# init that loads them, mounts the host's root and runs this script.
build_initramfs() {
  local kdir=$1 out=$2 ver
  ver=$(ls "$kdir/lib/modules")
  local mdir="$kdir/lib/modules/$ver" ir="$work/initramfs-$ver"
  rm -rf "$ir" && mkdir -p "$ir"/{bin,proc,sys,dev,newroot,modules}
  cp /bin/busybox "$ir/bin/busybox"
  declare -A seen=()
  local order=()
  resolve() {
    local m=$1 line deps d
    [[ -n ${seen[$m]:-} ]] && return
    seen[$m]=1
    line=$(grep -E "(^|/)$m\.ko(\.xz|\.zst)?:" "$mdir/modules.dep") || {
      # Built into this kernel, or missing (then the guest says so).
      grep -qE "(^|/)$m\.ko$" "$mdir/modules.builtin" || log "kernel $ver has no module $m"
      return
    }
    deps=${line#*:}
    for d in $(tr ' ' '\n' <<<"$deps" | tac); do
      d=${d##*/}
      resolve "${d%%.ko*}"
    done
    order+=("${line%%:*}")
  }
  local m
  for m in $guest_modules; do resolve "$m"; done
  local p n=0
  for p in "${order[@]}"; do
    n=$((n + 1))
    local dst
    dst="$ir/modules/$(printf '%02d' $n)-$(basename "${p%%.ko*}").ko"
    case $p in
    *.xz) xz -dc "$mdir/$p" >"$dst" ;;
    *.zst) zstd -qdc "$mdir/$p" >"$dst" ;;
    *) cp "$mdir/$p" "$dst" ;;
    esac
  done
  cat >"$ir/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in /modules/*.ko; do insmod "\$m" || echo "initramfs: insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288 hostroot /newroot || {
  echo "initramfs: cannot mount the host's root"; echo o >/proc/sysrq-trigger; sleep 10; }
if [ "\$(cat /proc/cmdline | grep -o 'xdpc.probe')" = xdpc.probe ]; then
  echo "xdpc: guest booted"; echo o >/proc/sysrq-trigger; sleep 10
fi
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/bash $repo/scripts/kernels.sh --guest
EOF
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
}

# qemu_run ACCEL KERNEL INITRD OUTDIR TIMEOUT APPEND runs one guest.
qemu_run() {
  local accel=$1 kernel=$2 initrd=$3 outdir=$4 limit=$5 append=$6 cpu=max
  [[ $accel == kvm ]] && cpu=host
  # One host thread runs every vCPU: with a thread per vCPU, qemu can run a
  # stale translation of kernel text another vCPU just patched (an XDP
  # dispatcher update under traffic then oopses on its int3).
  [[ $accel == tcg ]] && accel=tcg,thread=${XDPC_KERNEL_TCG_THREAD:-single}
  timeout --foreground -k 5 "$limit" qemu-system-x86_64 \
    -accel "$accel" -cpu "$cpu" -smp 2 -m 3G \
    -nographic -no-reboot -nic none -nodefaults -serial stdio \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 oops=panic quiet $append" \
    -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=root,mount_tag=hostroot \
    -fsdev local,id=out,path="$outdir",security_model=none \
    -device virtio-9p-pci,fsdev=out,mount_tag=out
}

# pick_accel KERNEL INITRD prints kvm when a KVM guest boots to the
# initramfs's probe within a short time, tcg otherwise.
pick_accel() {
  if [[ -n ${XDPC_KERNEL_ACCEL:-} ]]; then
    echo "$XDPC_KERNEL_ACCEL"
    return
  fi
  if [[ -r /dev/kvm && -w /dev/kvm ]] &&
    qemu_run kvm "$1" "$2" "$work" 30 xdpc.probe 2>&1 | grep -q 'xdpc: guest booted'; then
    echo kvm
  else
    echo tcg
  fi
}

# Build everything the guests run once, on the host.
log "building xdpc and test binaries"
mkdir -p "$work/bin"
go build -o "$work/bin/xdpc" ./cmd/xdpc
go test -c -o "$work/bin/compiler.test" ./compiler
go test -c -o "$work/bin/runtime.test" ./runtime
go test -c -o "$work/bin/lab.test" ./lab
go test -c -o "$work/bin/xdpc.test" ./cmd/xdpc
go test -c -o "$work/bin/routerlab.test" ./internal/routerlab

accel=
failed=0
table=()
# Prepare every kernel, then boot all guests at once: under emulation each
# guest runs on one host thread, so the guests share the host's cores.
guests=()
for s in "${series[@]}"; do
  pkg=$(kernel_package "$s")
  if [[ -z $pkg ]]; then
    log "no Debian kernel package for series $s"
    table+=("$s|-|FAIL (no package)|")
    failed=1
    continue
  fi
  kdir=$(fetch_kernel "$pkg")
  ver=$(ls "$kdir/lib/modules")
  build_initramfs "$kdir" "$work/initrd-$ver.gz"
  [[ -n $accel ]] || accel=$(pick_accel "$kdir/boot/vmlinuz-$ver" "$work/initrd-$ver.gz")
  n=0
  while read -r group; do
    n=$((n + 1))
    out="$work/out-$ver-$n"
    mkdir -p "$out"
    cp -rl "$work/bin" "$out/bin"
    echo "$repo" >"$out/repo"
    printf 'export GOROOT=%q GOMODCACHE=%q\n' "$(go env GOROOT)" "$(go env GOMODCACHE)" >"$out/goenv"
    echo "$group" >"$out/parts"
    echo "$kdir/boot/vmlinuz-$ver" >"$out/kernel"
    echo "$ver" >"$out/ver"
    guests+=("$out")
  done < <(guest_groups "$s")
done

pids=()
for out in "${guests[@]}"; do
  ver=$(cat "$out/ver")
  log "booting $ver ($accel); parts: $(cat "$out/parts")"
  (
    start=$SECONDS
    qemu_run "$accel" "$(cat "$out/kernel")" "$work/initrd-$ver.gz" "$out" "${XDPC_KERNEL_TIMEOUT:-3000}" "" >"$out/console.log" 2>&1 || true
    echo $((SECONDS - start)) >"$out/wall"
  ) &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

for out in "${guests[@]}"; do
  ver=$(cat "$out/ver")
  wall=$(cat "$out/wall" 2>/dev/null || echo "?")
  logs=${XDPC_KERNEL_LOGS:-}
  if [[ -n $logs ]]; then
    dest="$logs/$ver/$(basename "$out")"
    mkdir -p "$dest" && cp "$out"/*.log "$out/results" "$dest/" 2>/dev/null || true
  fi
  if [[ ! -f $out/finished ]]; then
    log "kernel $ver did not finish (wall ${wall}s); console:"
    tail -n 40 "$out/console.log" >&2
    failed=1
  fi
  for part in $(cat "$out/parts"); do
    line=$(grep "^$part " "$out/results" 2>/dev/null || true)
    if [[ -z $line ]]; then
      table+=("$ver|$part|NOT RUN|")
      failed=1
      continue
    fi
    read -r _ rc secs <<<"$line"
    if [[ $rc == 0 ]]; then
      table+=("$ver|$part|ok|${secs}s")
    else
      table+=("$ver|$part|FAIL (exit $rc)|${secs}s")
      failed=1
      log "kernel $ver, part $part failed; the end of its log:"
      grep -E -- '--- FAIL|FAIL|panic|rejects|error' "$out/$part.log" | head -n 40 >&2 || true
      tail -n 30 "$out/$part.log" >&2
    fi
  done
  table+=("$ver|(boot to poweroff, $accel)|wall|${wall}s")
done

printf '\n%-24s %-14s %-16s %s\n' KERNEL PART RESULT TIME
for row in "${table[@]}"; do
  IFS='|' read -r k p r t <<<"$row"
  printf '%-24s %-14s %-16s %s\n' "$k" "$p" "$r" "$t"
done
exit $failed
