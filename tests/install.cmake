# install: cmake --install into a temporary prefix and the uninstall target; the
# Debian package made by cpack, installed with apt-get, used through mount -t and
# fstab lines (one over the private sshd of tests/e2e/sshd_fixture.py), and removed
# (tests/e2e/test_install.py; the package part needs root on Debian, skips without).
flechefs_py_test(install e2e/test_install.py LABELS install TIMEOUT 900 SERIAL)
