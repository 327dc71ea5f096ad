//===- VerifyUtils.h - checks shared by the moe op verifiers ----*- C++ -*-===//
#ifndef MOE_DIALECT_MOE_IR_VERIFYUTILS_H
#define MOE_DIALECT_MOE_IR_VERIFYUTILS_H

#include "mlir/IR/Operation.h"
#include "moe/Support/MLIR.h"

namespace moe::detail {
/// Emits "expects <name> (<dim>) to be less than the rank (<rank>)" unless it is.
LogicalResult verifyDimInRank(Operation *op, StringRef name, int64_t dim, int64_t rank);
} // namespace moe::detail

#endif // MOE_DIALECT_MOE_IR_VERIFYUTILS_H
