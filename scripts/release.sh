#!/usr/bin/env bash
# Builds the release binaries: static (CGO_ENABLED=0, no dynamic loader, no
# libc), -trimpath, for linux/amd64 and linux/arm64, into dist/ (or $DIST)
# as xdpc-linux-ARCH, with SHA256SUMS. 'xdpc version' in them names the
# module version and the commit they were built from.
#
# Usage, from anywhere in the checkout: bash scripts/release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${DIST:-dist}
archs=${XDPC_RELEASE_ARCHS:-amd64 arm64}

# The toolchain stamps the commit itself (-buildvcs) in an ordinary clone,
# but not in a git worktree, whose .git is a file: then these -X values,
# which version reads when the stamps are missing, say the same.
commit=$(git rev-parse HEAD)
when=$(TZ=UTC git show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)
modified=false
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then modified=true; fi
if tag=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null); then
  version=$tag
else
  # A Go pseudo-version, as the toolchain writes for an untagged commit.
  version=v0.0.0-$(TZ=UTC git show -s --format=%cd --date=format-local:%Y%m%d%H%M%S HEAD)-${commit:0:12}
fi
if [[ $modified == true ]]; then version+=+dirty; fi
x=main
ldflags="-s -w -X $x.releaseVersion=$version -X $x.releaseCommit=$commit -X $x.releaseTime=$when -X $x.releaseModified=$modified"

mkdir -p "$dist"
names=()
for arch in $archs; do
  out=xdpc-linux-$arch
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=auto -ldflags "$ldflags" -o "$dist/$out" ./cmd/xdpc
  names+=("$out")
done
(cd "$dist" && sha256sum "${names[@]}" > SHA256SUMS)
echo "built ${names[*]} ($version) in $dist, with SHA256SUMS"
