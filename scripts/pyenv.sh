# shellcheck shell=sh
# pyenv.sh: sourced by ./run-tests. Makes the Python virtual environment in which the
# tests run the real fleche from PyPI (to generate caches at test time and to read
# back what flechefs writes). The versions are pinned so that every run, a clone's,
# a developer's and CI's, tests against the same fleche.
FLECHEFS_PYENV_PACKAGES="fleche==0.22.2 cloudpickle==3.1.3 dill==0.4.1 numpy==2.4.6 \
msgpack==1.2.4 attrs==26.1.0 sqlalchemy==2.1.9"

# flechefs_pyenv DIR: creates or updates the environment in DIR. When PyPI cannot be
# reached it says so and returns 1 (the tests that need it then skip, saying why,
# except under CI=true, where they fail).
flechefs_pyenv() {
	dir=$1
	stamp="$dir/.flechefs-packages"
	if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$FLECHEFS_PYENV_PACKAGES" ]; then
		return 0
	fi
	rm -rf "$dir"
	if ! /usr/bin/python3 -m venv "$dir"; then
		echo "flechefs: cannot create a Python virtual environment in '$dir'" >&2
		return 1
	fi
	# shellcheck disable=SC2086
	if ! "$dir/bin/pip" install -q --disable-pip-version-check $FLECHEFS_PYENV_PACKAGES; then
		echo "flechefs: cannot install the test's Python packages from PyPI:" \
			"$FLECHEFS_PYENV_PACKAGES" >&2
		rm -rf "$dir"
		return 1
	fi
	echo "$FLECHEFS_PYENV_PACKAGES" >"$stamp"
}
