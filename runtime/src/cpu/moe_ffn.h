// moe_ffn.h - the parts of the fused dispatch -> expert FFN -> combine that
// the single-device kernel (moe_ffn.cc) and the expert-parallel one
// (moe_ffn_ep.cc) share, so both compute every row and sum with the same
// code (defined once, in moe_ffn.cc): the bits cannot differ between one
// device and a mesh.
#ifndef MOE_RUNTIME_CPU_MOE_FFN_H
#define MOE_RUNTIME_CPU_MOE_FFN_H

#include "moe/runtime/comm.h"
#include "moe/runtime/cpu_kernels.h"

#include "../comm/expert_counts.h"

#include <cstdint>
#include <vector>

namespace moe::runtime::cpu {

/// The expert FFNs of one call: stacked weights, kind and dtypes.
struct Experts {
  int64_t d, f;
  int32_t kind, xDtype, wDtype;
  int64_t w0, w1, w2;
};

/// Every expert e's FFN on rows src[e][i] of x ([*, d], xDtype), into rows
/// dst[e][i] of y ([*, d] f32, rounded to xDtype). Every output element is one
/// sequential sum whatever the rows around it, so a row's result does not
/// depend on which rank or batch computes it.
void runExperts(const Experts &ex, const void *x, const std::vector<std::vector<int64_t>> &src,
                const std::vector<std::vector<int64_t>> &dst, float *y);

/// out[t] = sum over slots j in order of weights[t, j] * y[t * k + j] (kept
/// assignments only), in f32: no atomics, the same order on every mesh.
void combineSlots(const std::vector<float> &y, const std::vector<char> &kept, int64_t weights, int32_t weightsDtype,
                  int64_t out, int32_t outDtype, int64_t tokens, int64_t d, int64_t k);

/// Which assignments each expert takes: the kept ones grouped by expert in
/// (token, slot) order, at most capacityLimit per expert.
struct ExpertPlan {
  std::vector<std::vector<int64_t>> rowsOf;  ///< per expert: assignment ids (token * k + slot)
  std::vector<std::vector<int64_t>> tokenOf; ///< per expert: their tokens
  std::vector<char> kept;                    ///< per assignment
};
ExpertPlan planExperts(const int32_t *indices, int64_t tokens, int64_t k, int64_t experts, double capacity);

/// This rank's kept assignments on a mesh: the world's counts gathered
/// (expert_counts.h), then per expert the assignments (token * k + slot) it
/// keeps, in order, and a mask per assignment. Both expert-parallel kernels,
/// forward and backward, start with it, so they keep the same rows.
struct KeptRows {
  std::vector<std::vector<int64_t>> of; ///< per expert
  std::vector<char> mask;               ///< per assignment
};
moe_status_t keepRowsOnMesh(Communicator &comm, const Mesh &mesh, const int32_t *indices, int64_t tokens, int64_t k,
                            int64_t experts, double capacity, ExpertCounts &counts, KeptRows &kept);

/// What arrives at a rank for its experts firstExpert + localExperts[i]
/// (ascending): from each group rank s in order, each expert's kept(group[s],
/// e) rows. rowsOf[localExperts[i]] gets their arrival indices (rowsOf sized
/// by the caller), recvBytes[s] the bytes from s; returns the rows. The
/// senders order their rows the same way (by destination, then expert).
int64_t planArrivals(const ExpertCounts &counts, const std::vector<int64_t> &group, int64_t firstExpert,
                     const std::vector<int64_t> &localExperts, int64_t rowBytes,
                     std::vector<std::vector<int64_t>> &rowsOf, std::vector<int64_t> &recvBytes);

/// An expert FFN's activation (kind: a moe_ffn_t) and its derivative.
float activate(int32_t kind, float g);
float activateGrad(int32_t kind, float g);
float sigmoid(float x);

/// The most assignments an expert keeps: ceil(capacity * assignments / experts), or all.
int64_t capacityLimit(double capacity, int64_t assignments, int64_t experts);

} // namespace moe::runtime::cpu

#endif // MOE_RUNTIME_CPU_MOE_FFN_H
