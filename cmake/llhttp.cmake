# SPDX-License-Identifier: Apache-2.0
# llhttp comes from Debian's node-llhttp, which ships its C sources; we compile them into a static
# library instead of copying third-party code into the repository.
set(LLHTTP_DIR "/usr/share/llhttp" CACHE PATH "llhttp C sources (Debian node-llhttp)")
find_path(LLHTTP_INCLUDE_DIR llhttp.h PATHS /usr/share/include/llhttp ${LLHTTP_DIR}/include ${LLHTTP_DIR} NO_DEFAULT_PATH)
file(GLOB LLHTTP_SOURCES ${LLHTTP_DIR}/src/*.c ${LLHTTP_DIR}/*.c)
if(NOT LLHTTP_INCLUDE_DIR OR NOT LLHTTP_SOURCES)
  message(FATAL_ERROR "llhttp sources not found under ${LLHTTP_DIR}: install node-llhttp (scripts/install-deps.sh)")
endif()
add_library(llhttp_static STATIC ${LLHTTP_SOURCES})
target_include_directories(llhttp_static SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
set_target_properties(llhttp_static PROPERTIES C_STANDARD 99 POSITION_INDEPENDENT_CODE ON)
target_compile_options(llhttp_static PRIVATE -w)
# Strict mode: header names must be tokens, CR must precede LF, no obs-fold, etc. (request
# smuggling defences); the lenient runtime flags stay off too.
target_compile_definitions(llhttp_static PUBLIC LLHTTP_STRICT_MODE=1)
