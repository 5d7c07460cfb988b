#pragma once
// Stand-in for the CUDA-only c10 header that csrc/common/cuda_utils.cuh includes.
