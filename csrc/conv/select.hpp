// What the conv2d algorithm files share with the heuristic (select.cpp), private to csrc/conv:
// the block-size constants that fix each algorithm's blocking and the order of its sums (from
// the shapes alone, never the thread count), and is_pointwise(). The constants only the
// heuristic reads (kMaxBlockBytes, kDirectMaxChannels, kDirectLimitChannels) are in select.cpp.
#pragma once
#include <cstdint>

#include "convforge/conv2d.hpp"

namespace convforge::conv_impl {

constexpr int64_t kBlockElems = int64_t(1) << 18;    // target im2col/dcols block per thread
constexpr int64_t kMinCols = 64;                     // fewest columns in an im2col block
constexpr int64_t kFwdBlockElems = int64_t(1) << 20; // target forward im2col block per thread
constexpr int64_t kFwdMinCols = 256;                 // fewest columns of a forward block
constexpr int64_t kDwCols = 256;                     // target dw columns per weight task
constexpr int64_t kDwChunks = 8;                     // batch chunks of im2col_gemm_batch
constexpr int64_t kDwBlockElems = int64_t(1) << 16;  // direct_small dw: batch block
constexpr int64_t kDwGemmElems = int64_t(1) << 18;   // im2col_gemm_batch: operands per GEMM
constexpr int64_t kDwMinCols = 256;                  // im2col_gemm_batch: fewest GEMM columns
constexpr int64_t kDwMinDepth = 1024;                // im2col_gemm_batch: fewest summed columns
                                                     // (images x positions) per batch chunk
constexpr int64_t kKvecDwPositions = 2048;        // direct_kvec dw: positions per call
constexpr int64_t kKvecDwBlockElems = int64_t(1) << 20;  // direct_kvec dw: images per block
constexpr int64_t kDwMaxPartElems = int64_t(1) << 23; // im2col_gemm_batch: most partial elements

// 1x1, stride 1, no padding: x is the GEMM operand itself (gemm_pointwise).
bool is_pointwise(const ConvDims& d);

}  // namespace convforge::conv_impl
