# Cross-compiling for arm64 with Debian's cross compiler (g++-aarch64-linux-gnu) and the
# arm64 -dev packages of multiarch (tools/install-deps.sh --arm64). The test binaries
# run under qemu-user: CTest and gtest_discover_tests go through the emulator below.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Headers come from /usr/include (shared by every architecture), libraries and CMake
# package files from the arm64 multiarch directories, never from the build machine's.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)

# The arm64 loader and C library of the cross toolchain (libc6-arm64-cross) under -L;
# the multiarch libraries in /usr/lib/aarch64-linux-gnu are found through the real root.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/usr/aarch64-linux-gnu)

# libsimdjson-dev exists for one architecture at a time; tools/install-deps.sh unpacks
# the arm64 one here.
set(simdjson_DIR /opt/skopos-cross/aarch64/usr/lib/aarch64-linux-gnu/cmake/simdjson CACHE PATH "arm64 simdjson")
