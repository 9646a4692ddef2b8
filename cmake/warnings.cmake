# SPDX-License-Identifier: Apache-2.0
# Warnings for our own targets; -Werror when PORTICO_WERROR is on (CI turns it on).
function(portico_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wimplicit-fallthrough)
  # GCC 12 reports false positives inside libstdc++ and yaml-cpp headers at -O2
  # (GCC bugs 105329, 106199): they are not in our code and cannot be fixed there.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-dangling-pointer -Wno-restrict)
  endif()
  # ASan instrumentation makes GCC 12 report maybe-uninitialized inside libstdc++
  # (std::function in <regex>); the Release build keeps the warning.
  if(PORTICO_SANITIZE AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
  endif()
  if(PORTICO_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
