# SPDX-License-Identifier: Apache-2.0
# PORTICO_FUZZ=ON: the libFuzzer build (clang only; scripts/fuzz.sh drives it in build-fuzz/).
#
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DPORTICO_FUZZ=ON
#
# Everything compiled after this file (llhttp, the library, the targets) gets coverage
# instrumentation and ASan + UBSan, so that libFuzzer sees the edges inside Portico and not only
# in the target's own code. portico_fuzz_target() then links one target with libFuzzer's main.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "PORTICO_FUZZ needs clang (libFuzzer): CC=clang CXX=clang++ cmake -DPORTICO_FUZZ=ON")
endif()

# Debian's clang recommends, but does not require, the package with libFuzzer's runtime.
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_LINK_OPTIONS -fsanitize=fuzzer)
check_cxx_source_compiles(
  "#include <cstddef>\nextern \"C\" int LLVMFuzzerTestOneInput(const unsigned char*, std::size_t) { return 0; }"
  PORTICO_HAVE_LIBFUZZER)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(NOT PORTICO_HAVE_LIBFUZZER)
  message(FATAL_ERROR "clang++ -fsanitize=fuzzer does not link: install libclang-rt-dev (scripts/install-deps.sh test)")
endif()

add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                    -fno-sanitize-recover=undefined)
add_link_options(-fsanitize=address,undefined)

# portico_fuzz_target(NAME SOURCES...): a libFuzzer executable over the library.
function(portico_fuzz_target name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE portico_lib)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  portico_warnings(${name})
endfunction()
