# SPDX-License-Identifier: Apache-2.0
# PORTICO_SANITIZE=ON builds everything (llhttp included) with ASan and UBSan; the test suite runs
# under it in CI (build-asan/). assert() is kept there (-UNDEBUG, whatever the build type): the
# sanitizer suite is where the invariants they state get checked; Release builds drop them.
if(PORTICO_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -UNDEBUG)
  add_link_options(-fsanitize=address,undefined)
endif()
