# changelog.gz for the (native) package: one entry for this version. The date is
# SOURCE_DATE_EPOCH's when set (a reproducible build), else the time of the build.
# In: OUT, VERSION, MAINTAINER.
if(DEFINED ENV{SOURCE_DATE_EPOCH})
  set(epoch "$ENV{SOURCE_DATE_EPOCH}")
else()
  string(TIMESTAMP epoch "%s" UTC)
endif()
execute_process(COMMAND date -u -R -d "@${epoch}" OUTPUT_VARIABLE when OUTPUT_STRIP_TRAILING_WHITESPACE
                COMMAND_ERROR_IS_FATAL ANY)
get_filename_component(dir "${OUT}" DIRECTORY)
file(WRITE "${dir}/changelog" "skopos (${VERSION}) unstable; urgency=medium

  * Skopos ${VERSION}, built from its source tree with CPack. What changed is in the
    project's history; what it does is in /usr/share/doc/skopos/README.md.

 -- ${MAINTAINER}  ${when}
")
execute_process(COMMAND gzip -9nf "${dir}/changelog" COMMAND_ERROR_IS_FATAL ANY)
