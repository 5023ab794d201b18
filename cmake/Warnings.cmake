# skopos_warnings(<target>): the project's warning set, as errors when SKOPOS_WERROR is on.
function(skopos_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
    -Wimplicit-fallthrough -Wformat=2)
  if(SKOPOS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
