// plot.h - a loss curve as a PNG image (moe-run --train --plot loss.png),
// written without any imaging library: RGB pixels, stored (uncompressed)
// deflate blocks, CRC-32 and Adler-32 as the PNG format requires.
#ifndef MOE_RUNTIME_PLOT_H
#define MOE_RUNTIME_PLOT_H

#include "moe/runtime/status.h"

#include <string>
#include <vector>

namespace moe::runtime {

/// Draws `losses` (one per step, from step 1) on a log-scale y axis, with the
/// first and last step and the largest and smallest loss labelled, into a
/// `width` x `height` PNG at `path`.
moe_status_t writeLossPlot(const std::string &path, const std::vector<double> &losses, int width = 640,
                           int height = 400);

} // namespace moe::runtime

#endif // MOE_RUNTIME_PLOT_H
