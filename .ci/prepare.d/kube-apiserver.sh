#!/usr/bin/env bash
# Builds a real kube-apiserver once from Debian bookworm's `kubernetes` source package
# (upstream v1.20.2 with its vendor/ tree) into $TORTIE_CACHE/kube-apiserver/ for the
# datastore conformance tests (testlab::kube_apiserver). Idempotent and quiet when the
# binary is already cached; about 6+ minutes of CPU on 2 cores when it is not.
# Facts behind each step: /work/shared/LAB-NOTES.md ("A real Kubernetes API server").
set -euo pipefail

TORTIE_CACHE="${TORTIE_CACHE:-/var/cache/tortie}"
out_dir="$TORTIE_CACHE/kube-apiserver"
out="$out_dir/kube-apiserver"
[ -x "$out" ] && exit 0

build="$TORTIE_CACHE/kube-apiserver-build"
mkdir -p "$build" "$out_dir"
log="$build/build.log"
exec 9>"$build/lock"
flock 9
[ -x "$out" ] && exit 0 # built by a concurrent run while we waited for the lock

say() { echo "kube-apiserver: $*"; }
fail() {
  echo "kube-apiserver: FAILED: $*; last lines of $log:" >&2
  tail -n 40 "$log" >&2 || true
  exit 1
}
: >"$log"

# 1. deb-src for bookworm, so that `apt-get source` finds the package.
if ! apt-cache showsrc kubernetes >/dev/null 2>&1; then
  say "adding a bookworm deb-src entry"
  cat >/etc/apt/sources.list.d/tortie-bookworm-src.sources <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get update -qq >>"$log" 2>&1 || fail "apt-get update"
fi
for tool in rsync make patch dpkg-source /usr/lib/go-1.19/bin/go; do
  command -v "$tool" >/dev/null || fail "missing $tool (run .ci/packages.sh)"
done

# 2. The source tree, placed where GOPATH mode expects it.
export GOPATH="$build/gopath"
src="$GOPATH/src/k8s.io/kubernetes"
if [ ! -f "$src/cmd/kube-apiserver/apiserver.go" ]; then
  say "fetching the kubernetes source package"
  rm -rf "$build/apt" "$src"
  mkdir -p "$build/apt" "$(dirname "$src")"
  (cd "$build/apt" && apt-get source -qq kubernetes) >>"$log" 2>&1 || fail "apt-get source kubernetes"
  tree="$(find "$build/apt" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
  [ -n "$tree" ] || fail "no kubernetes-* directory after apt-get source"
  mv "$tree" "$src"
fi

# 3. reflect2 v1.0.2's Go >= 1.18 map-iteration fix in the vendored v1.0.1 copy.
r2="$src/vendor/github.com/modern-go/reflect2"
if ! grep -q 'm unsafe.Pointer, it \*hiter)' "$r2/unsafe_link.go"; then
  say "applying the reflect2 v1.0.2 map iteration fix"
  (cd "$src" && patch -p1 --forward --quiet) >>"$log" 2>&1 <<'PATCH_EOF' || fail "reflect2 patch"
--- a/vendor/github.com/modern-go/reflect2/unsafe_link.go
+++ b/vendor/github.com/modern-go/reflect2/unsafe_link.go
@@ -19,18 +19,12 @@
 
 //go:linkname mapassign reflect.mapassign
 //go:noescape
-func mapassign(rtype unsafe.Pointer, m unsafe.Pointer, key, val unsafe.Pointer)
+func mapassign(rtype unsafe.Pointer, m unsafe.Pointer, key unsafe.Pointer, val unsafe.Pointer)
 
 //go:linkname mapaccess reflect.mapaccess
 //go:noescape
 func mapaccess(rtype unsafe.Pointer, m unsafe.Pointer, key unsafe.Pointer) (val unsafe.Pointer)
 
-// m escapes into the return value, but the caller of mapiterinit
-// doesn't let the return value escape.
-//go:noescape
-//go:linkname mapiterinit reflect.mapiterinit
-func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter
-
 //go:noescape
 //go:linkname mapiternext reflect.mapiternext
 func mapiternext(it *hiter)
@@ -42,9 +36,21 @@
 // If you modify hiter, also change cmd/internal/gc/reflect.go to indicate
 // the layout of this structure.
 type hiter struct {
-	key   unsafe.Pointer // Must be in first position.  Write nil to indicate iteration end (see cmd/internal/gc/range.go).
-	value unsafe.Pointer // Must be in second position (see cmd/internal/gc/range.go).
-	// rest fields are ignored
+	key         unsafe.Pointer
+	value       unsafe.Pointer
+	t           unsafe.Pointer
+	h           unsafe.Pointer
+	buckets     unsafe.Pointer
+	bptr        unsafe.Pointer
+	overflow    *[]unsafe.Pointer
+	oldoverflow *[]unsafe.Pointer
+	startBucket uintptr
+	offset      uint8
+	wrapped     bool
+	B           uint8
+	i           uint8
+	bucket      uintptr
+	checkBucket uintptr
 }
 
 // add returns p+x.
@@ -68,3 +74,8 @@
 func arrayAt(p unsafe.Pointer, i int, eltSize uintptr, whySafe string) unsafe.Pointer {
 	return add(p, uintptr(i)*eltSize, "i < len")
 }
+
+// Go >= 1.18: reflect.mapiterinit fills a caller-provided iterator (reflect2 v1.0.2).
+//go:noescape
+//go:linkname mapiterinit reflect.mapiterinit
+func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)
--- a/vendor/github.com/modern-go/reflect2/unsafe_map.go
+++ b/vendor/github.com/modern-go/reflect2/unsafe_map.go
@@ -107,14 +107,6 @@
 	return type2.UnsafeIterate(objEFace.data)
 }
 
-func (type2 *UnsafeMapType) UnsafeIterate(obj unsafe.Pointer) MapIterator {
-	return &UnsafeMapIterator{
-		hiter:      mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj)),
-		pKeyRType:  type2.pKeyRType,
-		pElemRType: type2.pElemRType,
-	}
-}
-
 type UnsafeMapIterator struct {
 	*hiter
 	pKeyRType  unsafe.Pointer
@@ -136,3 +128,13 @@
 	mapiternext(iter.hiter)
 	return key, elem
 }
+
+func (type2 *UnsafeMapType) UnsafeIterate(obj unsafe.Pointer) MapIterator {
+	var it hiter
+	mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj), &it)
+	return &UnsafeMapIterator{
+		hiter:      &it,
+		pKeyRType:  type2.pKeyRType,
+		pElemRType: type2.pElemRType,
+	}
+}
PATCH_EOF
fi

# 4. Generated openapi definitions, then the binary (GOPATH mode, static).
export PATH="/usr/lib/go-1.19/bin:$PATH"
export GO111MODULE=off CGO_ENABLED=0 GOFLAGS="" GOCACHE="$build/gocache"
cd "$src"
if [ ! -s pkg/generated/openapi/zz_generated.openapi.go ]; then
  say "generating openapi (make gen_openapi)"
  make gen_openapi >>"$log" 2>&1 || fail "make gen_openapi"
fi
say "building (go build ./cmd/kube-apiserver; several minutes)"
go build -o "$build/kube-apiserver.new" ./cmd/kube-apiserver >>"$log" 2>&1 || fail "go build"
"$build/kube-apiserver.new" --version >>"$log" 2>&1 || fail "built binary does not run"
mv "$build/kube-apiserver.new" "$out"
say "installed $out ($("$out" --version))"
