# Sanitizer and fuzzing instrumentation, applied to every target of the build.
#
# SKOPOS_SANITIZE: ASan + UBSan, aborting on the first report so a test cannot pass
# over one. SKOPOS_FUZZ additionally instruments everything for libFuzzer's coverage
# (fuzzer-no-link); the fuzz targets themselves link -fsanitize=fuzzer.
if(SKOPOS_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SKOPOS_FUZZ needs clang: configure with -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang")
  endif()
  set(SKOPOS_SANITIZE ON CACHE BOOL "" FORCE)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(SKOPOS_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
