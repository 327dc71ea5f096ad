# Finds Debian's LLVM/MLIR 22 and sets up the LLVM/MLIR CMake helpers for the compiler half of moec.
if(NOT MLIR_DIR AND EXISTS /usr/lib/llvm-22/lib/cmake/mlir)
  set(MLIR_DIR /usr/lib/llvm-22/lib/cmake/mlir)
endif()
# No version here: MLIR's ConfigVersion only accepts "22.1[.x]", not "22".
find_package(MLIR REQUIRED CONFIG)
message(STATUS "Using MLIRConfig.cmake in: ${MLIR_DIR}")

set(LLVM_RUNTIME_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/bin)
set(LLVM_LIBRARY_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/lib)
set(MLIR_BINARY_DIR ${CMAKE_BINARY_DIR})
# Debian ships lit as bin/lit while LLVMConfig points at bin/llvm-lit, which does not exist.
set(LLVM_EXTERNAL_LIT "${LLVM_TOOLS_BINARY_DIR}/lit" CACHE STRING "lit driver")
set(LLVM_LIT_ARGS "-sv" CACHE STRING "lit args")

list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
separate_arguments(LLVM_DEFINITIONS_LIST NATIVE_COMMAND ${LLVM_DEFINITIONS})
add_definitions(${LLVM_DEFINITIONS_LIST})
include(TableGen)
include(AddLLVM)
include(AddMLIR)
include(HandleLLVMOptions)

# Link libMLIR.so: links in seconds on 2 cores, and pass plugins share the one MLIR in the process.
set(MLIR_LINK_MLIR_DYLIB ON)

include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
link_directories(${LLVM_BUILD_LIBRARY_DIR})

# The tablegen'd docs land here; `docs/` copies them into the source tree on request.
set(MOE_GENERATED_DOCS_DIR ${CMAKE_BINARY_DIR}/docs)

# Project headers, source and tablegen'd, namespaced under moe/ (also seen by mlir-tblgen).
include_directories(
  ${PROJECT_SOURCE_DIR}/dialect/include ${PROJECT_BINARY_DIR}/dialect/include
  ${PROJECT_SOURCE_DIR}/passes/include ${PROJECT_BINARY_DIR}/passes/include)
