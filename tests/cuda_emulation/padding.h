// Helpers shared by the emulation drivers: an independent reference for the centre padding.
#pragma once
#include <cstdint>
#include <vector>

// Padded sample q of row xr (length L), mode 0 constant, 1 reflect, 2 replicate, 3 circular,
// written without pad_source (the kernels' map) so that the two are checked against each other.
inline double padded(const std::vector<double>& xr, int64_t q, int64_t pad, int mode) {
  const int64_t L = xr.size();
  int64_t s = q - pad;
  if (s >= 0 && s < L) return xr[s];
  if (mode == 0) return 0.0;
  if (mode == 1) {
    while (s < 0 || s >= L) s = s < 0 ? -s : 2 * (L - 1) - s;
    return xr[s];
  }
  if (mode == 2) return xr[s < 0 ? 0 : L - 1];
  return xr[((s % L) + L) % L];
}
