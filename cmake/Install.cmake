# What `cmake --install build [--prefix P]` places, and so what the Debian package holds
# (cmake/Package.cmake packs the same install with P = /usr):
#
#   P/sbin/skopos, P/sbin/skopos-tracker    the daemons and the admin CLI (root's tools)
#   P/bin/tracker-cli                       read-only views, for any user the socket allows
#   P/lib/systemd/system/                   the units (skopos-tracker, skopos-agent, and the
#                                           skopos-lock-metrics timer), paths rewritten for P
#   /etc/skopos/{skopos,tracker}.conf       commented examples; an existing file is kept
#   P/share/skopos/                         Prometheus alert rules and their tests, the
#                                           Grafana dashboard
#   P/share/doc/skopos/                     the READMEs and the stream protocol
#   P/share/man/man{1,5,8}/                 skopos(8), skopos-tracker(8), tracker-cli(1),
#                                           skopos.conf(5) (cmake/Docs.cmake)
#   P/share/bash-completion/completions/    bash completions; P/share/zsh/vendor-completions/ zsh
#
# The BPF object is embedded in skopos-tracker (its skeleton), so nothing else is
# needed at run time. Paths that depend on P are computed when the install runs, not
# when CMake configures, so `--prefix` gives units that name the programs where they are.
include(GNUInstallDirs)

set(SKOPOS_CONFIG_DIR "/etc/skopos" CACHE PATH "Where the install puts the example config files (absolute)")

# Linked as distributions link what they ship: relocations read-only, symbols bound at
# start (no lazy binding to subvert).
foreach(program skopos skopos-tracker tracker-cli)
  target_link_options(${program} PRIVATE -Wl,-z,relro,-z,now)
endforeach()
install(TARGETS skopos skopos-tracker RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(TARGETS tracker-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES tracker/PROTOCOL.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES tracker/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME tracker.md)
install(FILES driver/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME driver.md)
install(FILES driver/prometheus/skopos-alerts.yml driver/prometheus/skopos-alerts.test.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/skopos/prometheus)
install(FILES driver/grafana/skopos-dashboard.json DESTINATION ${CMAKE_INSTALL_DATADIR}/skopos/grafana)

# The units: the repository's name /usr/local and /etc/skopos; the installed ones name
# the prefix of this install and SKOPOS_CONFIG_DIR.
set(skopos_units ${PROJECT_SOURCE_DIR}/tracker/systemd/skopos-tracker.service
                 ${PROJECT_SOURCE_DIR}/driver/systemd/skopos-agent.service
                 ${PROJECT_SOURCE_DIR}/driver/systemd/skopos-lock-metrics.service
                 ${PROJECT_SOURCE_DIR}/driver/systemd/skopos-lock-metrics.timer)
install(CODE "
  set(sbindir \"${CMAKE_INSTALL_SBINDIR}\")
  if(NOT IS_ABSOLUTE \"\${sbindir}\")
    set(sbindir \"\${CMAKE_INSTALL_PREFIX}/\${sbindir}\")
  endif()
  foreach(unit ${skopos_units})
    get_filename_component(name \"\${unit}\" NAME)
    file(READ \"\${unit}\" text)
    string(REPLACE \"/usr/local/sbin/\" \"\${sbindir}/\" text \"\${text}\")
    string(REPLACE \"/usr/local/share/doc/skopos/\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DOCDIR}/\" text \"\${text}\")
    string(REPLACE \"/etc/skopos/\" \"${SKOPOS_CONFIG_DIR}/\" text \"\${text}\")
    file(WRITE \"${CMAKE_BINARY_DIR}/installed-units/\${name}\" \"\${text}\")
    file(INSTALL \"${CMAKE_BINARY_DIR}/installed-units/\${name}\"
         DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\" FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endforeach()
")

# The example configs, never over an operator's file (the package marks them conffiles:
# dpkg asks before replacing one the operator changed).
foreach(conf tracker/systemd/tracker.conf driver/systemd/skopos.conf)
  get_filename_component(name ${conf} NAME)
  install(CODE "
    if(EXISTS \"\$ENV{DESTDIR}${SKOPOS_CONFIG_DIR}/${name}\")
      message(STATUS \"Kept (exists): \$ENV{DESTDIR}${SKOPOS_CONFIG_DIR}/${name}\")
    else()
      file(INSTALL \"${PROJECT_SOURCE_DIR}/${conf}\" DESTINATION \"${SKOPOS_CONFIG_DIR}\"
           FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
    endif()
  ")
endforeach()

# Man pages and completions (cmake/Docs.cmake), where Debian's man-db, bash-completion
# and zsh look for them.
if(TARGET skopos_docs)
  foreach(page ${skopos_man_pages})
    string(REGEX REPLACE ".*\\.([0-9])$" "\\1" man_section ${page})
    install(FILES ${SKOPOS_DOCS_DIR}/man/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${man_section})
  endforeach()
  foreach(program skopos skopos-tracker tracker-cli)
    install(FILES ${SKOPOS_DOCS_DIR}/bash-completion/${program} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
    install(FILES ${SKOPOS_DOCS_DIR}/zsh/_${program} DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
  endforeach()
endif()
