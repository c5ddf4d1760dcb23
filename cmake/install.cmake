# install.cmake: what `cmake --install` puts where, how to take it away again, and
# the Debian package cpack makes of the same files.
#
#   bin/flechefs, bin/flechefs-server     (their own CMakeLists.txt)
#   share/man/man1/flechefs.1, flechefs-server.1
#   sbin/mount.fuse.flechefs -> ../bin/flechefs
#       the helper mount(8) runs for `mount -t fuse.flechefs SRC MNT` and for
#       fstab lines of that type (as sshfs installs mount.fuse.sshfs): it is
#       flechefs itself, called as `mount.fuse.flechefs SRC MNT -o OPTIONS`.
#
# `cmake --build build --target uninstall` removes every file the last install
# wrote (build/install_manifest.txt), as `xargs rm < install_manifest.txt` would.
# cpack's own install into its staging directory rewrites that manifest.
install(FILES ${PROJECT_SOURCE_DIR}/man/flechefs.1 ${PROJECT_SOURCE_DIR}/man/flechefs-server.1
	DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

if(TARGET flechefs)
	# a relative link, made in the build tree and installed as a link, so that the
	# installed tree can move (DESTDIR, the package's staging directory)
	file(RELATIVE_PATH FLECHEFS_FROM_SBIN ${CMAKE_INSTALL_FULL_SBINDIR}
		${CMAKE_INSTALL_FULL_BINDIR}/flechefs)
	file(CREATE_LINK ${FLECHEFS_FROM_SBIN} ${PROJECT_BINARY_DIR}/mount.fuse.flechefs SYMBOLIC)
	install(FILES ${PROJECT_BINARY_DIR}/mount.fuse.flechefs DESTINATION ${CMAKE_INSTALL_SBINDIR})
endif()

add_custom_target(uninstall
	COMMAND ${CMAKE_COMMAND} -P ${PROJECT_SOURCE_DIR}/cmake/uninstall.cmake
	WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
	COMMENT "removing the files of build/install_manifest.txt")

# cpack: a Debian package of the same install, prefix /usr. Depends come from
# dpkg-shlibdeps (the libraries the programs link) plus fuse3 (fusermount3, and
# mount.fuse3 for mount -t); ssh (OpenSSH) is only needed for -o ssh_command.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME flechefs)
set(CPACK_PACKAGE_VENDOR "flechefs")
set(CPACK_PACKAGE_CONTACT "flechefs maintainers <flechefs@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "mount a fleche cache as a filesystem")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "flechefs mounts a cache of the Python library fleche, locally or over SSH, as a
tree of calls, values and digests; flechefs-server reads the cache and answers
the daemon's requests without executing any pickle.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "openssh-client")
set(CPACK_STRIP_FILES ON)
include(CPack)
