# uninstall.cmake: removes the files listed in install_manifest.txt (in the working
# directory, the build tree), under $DESTDIR when it is set. Run by the uninstall
# target; directories are left, as `xargs rm < install_manifest.txt` leaves them.
if(NOT EXISTS install_manifest.txt)
	message(FATAL_ERROR "no install_manifest.txt here: nothing was installed from this build")
endif()
file(STRINGS install_manifest.txt files)
foreach(f ${files})
	set(path "$ENV{DESTDIR}${f}")
	if(IS_SYMLINK "${path}" OR EXISTS "${path}")
		message(STATUS "removing ${path}")
		file(REMOVE "${path}")
	endif()
endforeach()
