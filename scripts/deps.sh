# shellcheck shell=sh
# deps.sh: sourced by ./demo and ./run-tests. Checks that the Debian packages the
# build and the tests need are installed; as root installs the missing ones with
# apt-get, otherwise prints the exact apt-get line and stops. On a system without
# dpkg it only says which packages it would have wanted, and goes on.
FLECHEFS_PACKAGES="build-essential cmake pkg-config clang libclang-rt-14-dev \
libfuse3-dev fuse3 libssh2-1-dev libmsgpack-dev libsqlite3-dev zlib1g-dev libssl-dev \
python3 python3-venv python3-msgpack python3-numpy jq openssh-client openssh-server sshfs procps psmisc \
openssl util-linux libpam-modules iproute2 mandoc"

flechefs_deps() {
	if ! command -v dpkg-query >/dev/null 2>&1; then
		echo "flechefs: not a Debian system (no dpkg-query); make sure the equivalents" \
			"of these Debian packages are installed: $FLECHEFS_PACKAGES" >&2
		return 0
	fi
	missing=""
	for p in $FLECHEFS_PACKAGES; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "flechefs: missing Debian packages; install them with:" >&2
		echo "  sudo apt-get install -y$missing" >&2
		exit 1
	fi
	echo "flechefs: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get update -qq; then
		echo "flechefs: 'apt-get update' failed; check the network and" \
			"/etc/apt/sources.list" >&2
		exit 1
	fi
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq $missing >/dev/null; then
		echo "flechefs: could not install:$missing" >&2
		exit 1
	fi
}

# flechefs_go: the toml_suite test builds the official TOML test suite's runner with
# Go (a Go module it installs into the build tree). Go is looked for on PATH and in
# /usr/local/go/bin; when missing, as root it installs Debian's golang-go (1.19 in
# Debian 12: the pinned runner and its modules declare go 1.19 or older), otherwise it
# prints the apt-get line and the test skips (under CI=true it fails).
flechefs_go() {
	if command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
		return 0
	fi
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "flechefs: no Go toolchain for the toml_suite test; install one with:" >&2
		echo "  sudo apt-get install -y golang-go   (or from https://go.dev/dl/)" >&2
		[ "${CI:-}" = true ] && exit 1
		return 0
	fi
	echo "flechefs: installing golang-go" >&2
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null; then
		echo "flechefs: could not install golang-go" >&2
		exit 1
	fi
}
