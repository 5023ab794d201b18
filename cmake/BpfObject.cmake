# bpf_object(<name> <source.bpf.c>)
#
# Compiles a CO-RE BPF program with clang (-target bpf -mcpu=v3 -g -O2), strips its DWARF (the
# BTF that CO-RE needs stays), and generates a libbpf skeleton with `bpftool gen
# skeleton`. Header dependencies are tracked through clang's depfile, so editing the
# ABI header rebuilds the object and its skeleton.
#
# Result: an INTERFACE target `skopos_bpf_<name>` that C++ code links to get
# `#include "<name>.skel.h"` and libbpf.
#
# The program compiles against the checked-in bpf/vmlinux/<arch>/vmlinux.h, never the
# build host's kernel: tools/gen-vmlinux-h.sh is the only thing that rewrites it.
find_program(SKOPOS_CLANG NAMES clang clang-14 REQUIRED)
find_program(SKOPOS_LLVM_STRIP NAMES llvm-strip llvm-strip-14 REQUIRED)
find_program(SKOPOS_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf>=1.0)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(SKOPOS_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(SKOPOS_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "bpf_object: no BPF target arch for ${CMAKE_SYSTEM_PROCESSOR}")
endif()
set(SKOPOS_VMLINUX_DIR ${CMAKE_SOURCE_DIR}/bpf/vmlinux/${SKOPOS_BPF_ARCH})
if(NOT EXISTS ${SKOPOS_VMLINUX_DIR}/vmlinux.h)
  message(FATAL_ERROR "bpf_object: ${SKOPOS_VMLINUX_DIR}/vmlinux.h is missing; "
                      "generate it on a ${SKOPOS_BPF_ARCH} host with tools/gen-vmlinux-h.sh")
endif()

function(bpf_object name source)
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${source})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/skel)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  set(dep ${out_dir}/${name}.bpf.d)
  file(MAKE_DIRECTORY ${out_dir})

  add_custom_command(
    OUTPUT ${obj}
    # -mcpu=v3: atomic fetch-and-add and compare-and-exchange (kernel 5.12+; the
    # programs need 5.15 for the TCP iterator's per-socket lock).
    COMMAND ${SKOPOS_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${SKOPOS_BPF_ARCH}
            -Wall -Werror
            -I${SKOPOS_VMLINUX_DIR} -I${CMAKE_SOURCE_DIR}/bpf/include -I${CMAKE_SOURCE_DIR}/bpf
            -MD -MF ${dep} -MT ${obj}
            -c ${src} -o ${obj}.tmp
    # DWARF is only for debugging; the BTF sections CO-RE needs survive `strip -g`.
    COMMAND ${SKOPOS_LLVM_STRIP} -g ${obj}.tmp -o ${obj}
    COMMAND ${CMAKE_COMMAND} -E remove ${obj}.tmp
    DEPENDS ${src}
    DEPFILE ${dep}
    COMMENT "BPF ${name}: clang -target bpf"
    VERBATIM)

  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${SKOPOS_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF ${name}: bpftool gen skeleton"
    VERBATIM)

  add_custom_target(skopos_bpf_${name}_gen DEPENDS ${skel})
  add_library(skopos_bpf_${name} INTERFACE)
  add_dependencies(skopos_bpf_${name} skopos_bpf_${name}_gen)
  # SYSTEM: the generated skeleton is C written for C compilers; our C++ warning set
  # (old-style casts and the like) does not apply to it.
  target_include_directories(skopos_bpf_${name} SYSTEM INTERFACE ${out_dir})
  target_include_directories(skopos_bpf_${name} INTERFACE ${CMAKE_SOURCE_DIR}/bpf/include)
  target_link_libraries(skopos_bpf_${name} INTERFACE PkgConfig::LIBBPF)
endfunction()
