# The Debian package: `cpack --config build/CPackConfig.cmake` (tools/package.sh wraps
# it) packs what cmake/Install.cmake installs, with the prefix /usr.
#
#  * Depends: computed from the shared libraries by dpkg-shlibdeps, plus what the
#    programs run (iptables for the fence) and what the maintainer scripts use.
#  * /etc/skopos/*.conf are conffiles: dpkg keeps an operator's changes.
#  * The units are installed disabled. They are enabled (and started, where systemd
#    runs) only when the operator asks, through debconf (cmake/debian/templates):
#      echo 'skopos skopos/enable-units multiselect skopos-tracker, skopos-agent' \
#        | debconf-set-selections
#    before the install, or `dpkg-reconfigure -plow skopos` after it.
#  * A purge removes the config, the agent's state (/var/lib/skopos) and the tracker's
#    pinned BPF state; a plain remove keeps the config and the state.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME skopos)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "drain container hosts without dropping a request")
set(CPACK_PACKAGE_DESCRIPTION "Skopos takes Mesos and Marathon Docker hosts out of service, for a
reboot or for good, without failing a request, and brings them back.
skopos-tracker counts each container's established connections (eBPF,
conntrack, /proc) and streams them; skopos drains a host: etcd locks,
Mesos maintenance, Marathon steering, an iptables fence, a wait for the
connections to end, then stop, reboot and recovery.")
set(CPACK_PACKAGE_CONTACT "Skopos maintainers <skopos-maintainers@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)  # the prefix of the install CPack runs (with CPACK_SET_DESTDIR)
# Installs into a staging DESTDIR, so the absolute /etc/skopos lands in the package.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://skopos.invalid/")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "iptables, debconf (>= 0.5) | debconf-2.0, init-system-helpers (>= 1.52)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus, etcd-client")

# The control files: conffiles, the debconf question and the maintainer scripts.
set(skopos_debian_dir ${CMAKE_BINARY_DIR}/debian-control)
file(MAKE_DIRECTORY ${skopos_debian_dir})
file(WRITE ${skopos_debian_dir}/conffiles "${SKOPOS_CONFIG_DIR}/skopos.conf\n${SKOPOS_CONFIG_DIR}/tracker.conf\n")
foreach(script config templates postinst prerm postrm)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/debian/${script} ${skopos_debian_dir}/${script} @ONLY)
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${skopos_debian_dir}/conffiles ${skopos_debian_dir}/config ${skopos_debian_dir}/templates
    ${skopos_debian_dir}/postinst ${skopos_debian_dir}/prerm ${skopos_debian_dir}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# What Debian policy wants in every package's doc directory: the copyright and a
# changelog (changelog.gz: a package without a Debian revision is a native one).
install(FILES ${PROJECT_SOURCE_DIR}/cmake/debian/copyright DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/skopos)
set(skopos_changelog ${CMAKE_BINARY_DIR}/debian-doc/changelog.gz)
add_custom_command(OUTPUT ${skopos_changelog}
  COMMAND ${CMAKE_COMMAND} -DOUT=${skopos_changelog} -DVERSION=${PROJECT_VERSION}
          "-DMAINTAINER=${CPACK_PACKAGE_CONTACT}" -P ${PROJECT_SOURCE_DIR}/cmake/debian/Changelog.cmake
  DEPENDS ${PROJECT_SOURCE_DIR}/cmake/debian/Changelog.cmake
  VERBATIM)
add_custom_target(skopos_debian_changelog ALL DEPENDS ${skopos_changelog})
install(FILES ${skopos_changelog} DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/skopos)

include(CPack)
