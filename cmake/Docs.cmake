# Man pages and bash/zsh completions, made at build time by tools/gen-docs.py from the
# built programs' --help and --example-config (so from the option tables: they cannot
# disagree with --help). Installed by cmake/Install.cmake. Not in a cross build, whose
# programs do not run here.
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  message(WARNING "python3 not found: no man pages or shell completions (tools/install-deps.sh installs it)")
  return()
endif()
set(SKOPOS_DOCS_DIR ${CMAKE_BINARY_DIR}/docs)
set(skopos_man_pages skopos.8 skopos-tracker.8 tracker-cli.1 skopos.conf.5)
set(skopos_doc_outputs)
foreach(page ${skopos_man_pages})
  list(APPEND skopos_doc_outputs ${SKOPOS_DOCS_DIR}/man/${page} ${SKOPOS_DOCS_DIR}/man/${page}.gz)
endforeach()
foreach(program skopos skopos-tracker tracker-cli)
  list(APPEND skopos_doc_outputs ${SKOPOS_DOCS_DIR}/bash-completion/${program} ${SKOPOS_DOCS_DIR}/zsh/_${program})
endforeach()
add_custom_command(OUTPUT ${skopos_doc_outputs}
  COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tools/gen-docs.py $<TARGET_FILE_DIR:skopos> ${SKOPOS_DOCS_DIR}
          ${PROJECT_VERSION}
  DEPENDS skopos skopos-tracker tracker-cli ${PROJECT_SOURCE_DIR}/tools/gen-docs.py
  COMMENT "Man pages and shell completions from the programs' --help"
  VERBATIM)
add_custom_target(skopos_docs ALL DEPENDS ${skopos_doc_outputs})
