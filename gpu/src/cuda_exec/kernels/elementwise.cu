// Element-wise and layout kernels of the CUDA executor (clockwork-gpu `cuda_exec`).
// `elementwise.ptx` beside this file is what NVRTC makes of it (compute_75); the test
// `cuda_exec::kernels::tests::source_still_compiles` recompiles it wherever libnvrtc is
// present. Regenerate the PTX whenever this file changes (see kernels.rs).
//
// Every kernel walks its `n` output elements with a grid-stride loop, so any grid size
// is correct. fp16 values are read and written as raw 16-bit words and converted with
// `cvt` instructions (no cuda_fp16.h, so NVRTC needs no include path); arithmetic is fp32.

typedef unsigned long long u64;
typedef unsigned short h16;

__device__ __forceinline__ float ld(const float* p, u64 i) { return p[i]; }
__device__ __forceinline__ void st(float* p, u64 i, float v) { p[i] = v; }
__device__ __forceinline__ float ld(const h16* p, u64 i) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
    return f;
}
__device__ __forceinline__ void st(h16* p, u64 i, float v) {
    h16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    p[i] = h;
}

#define GRID_STRIDE(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)gridDim.x * blockDim.x)

template <typename T> __device__ void relu(const T* a, T* out, u64 n) {
    GRID_STRIDE(i, n) { st(out, i, fmaxf(ld(a, i), 0.0f)); }
}
template <typename T> __device__ void add(const T* a, const T* b, T* out, u64 n) {
    GRID_STRIDE(i, n) { st(out, i, ld(a, i) + ld(b, i)); }
}
template <typename T> __device__ void add_relu(const T* a, const T* b, T* out, u64 n) {
    GRID_STRIDE(i, n) { st(out, i, fmaxf(ld(a, i) + ld(b, i), 0.0f)); }
}
template <typename T> __device__ void scale(const T* a, T* out, u64 n, float factor) {
    GRID_STRIDE(i, n) { st(out, i, ld(a, i) * factor); }
}
// Channels last: element i has channel i % channels.
template <typename T> __device__ void bias(const T* a, const T* b, T* out, u64 n, u64 channels) {
    GRID_STRIDE(i, n) { st(out, i, ld(a, i) + ld(b, i % channels)); }
}
// NCHW -> NHWC; n = batch * c * hw.
template <typename T> __device__ void nchw_to_nhwc(const T* in, T* out, u64 n, u64 c, u64 hw) {
    GRID_STRIDE(i, n) {
        u64 ch = i % c, rest = i / c, pix = rest % hw, b = rest / hw;
        st(out, i, ld(in, (b * c + ch) * hw + pix));
    }
}
// NHWC -> NCHW order (a flatten as the model sees it); n = batch * c * hw.
template <typename T> __device__ void nhwc_to_nchw(const T* in, T* out, u64 n, u64 c, u64 hw) {
    GRID_STRIDE(i, n) {
        u64 pix = i % hw, rest = i / hw, ch = rest % c, b = rest / c;
        st(out, i, ld(in, (b * hw + pix) * c + ch));
    }
}
// Every sh-th row and sw-th column of an NHWC image [.., h, w, c] into [.., p, q, c].
template <typename T>
__device__ void downsample(const T* in, T* out, u64 n, u64 c, u64 h, u64 w, u64 p, u64 q,
                           u64 sh, u64 sw) {
    GRID_STRIDE(i, n) {
        u64 ch = i % c, r = i / c, x = r % q;
        r /= q;
        u64 y = r % p, b = r / p;
        st(out, i, ld(in, ((b * h + y * sh) * w + x * sw) * c + ch));
    }
}

#define INSTANTIATE(S, T)                                                                    \
    extern "C" __global__ void cw_relu_##S(const T* a, T* out, u64 n) { relu(a, out, n); }    \
    extern "C" __global__ void cw_add_##S(const T* a, const T* b, T* out, u64 n) {            \
        add(a, b, out, n);                                                                   \
    }                                                                                        \
    extern "C" __global__ void cw_add_relu_##S(const T* a, const T* b, T* out, u64 n) {       \
        add_relu(a, b, out, n);                                                              \
    }                                                                                        \
    extern "C" __global__ void cw_scale_##S(const T* a, T* out, u64 n, float factor) {        \
        scale(a, out, n, factor);                                                            \
    }                                                                                        \
    extern "C" __global__ void cw_bias_##S(const T* a, const T* b, T* out, u64 n, u64 c) {    \
        bias(a, b, out, n, c);                                                               \
    }                                                                                        \
    extern "C" __global__ void cw_nchw_to_nhwc_##S(const T* in, T* out, u64 n, u64 c,         \
                                                   u64 hw) {                                 \
        nchw_to_nhwc(in, out, n, c, hw);                                                     \
    }                                                                                        \
    extern "C" __global__ void cw_nhwc_to_nchw_##S(const T* in, T* out, u64 n, u64 c,         \
                                                   u64 hw) {                                 \
        nhwc_to_nchw(in, out, n, c, hw);                                                     \
    }                                                                                        \
    extern "C" __global__ void cw_downsample_##S(const T* in, T* out, u64 n, u64 c, u64 h,    \
                                                 u64 w, u64 p, u64 q, u64 sh, u64 sw) {      \
        downsample(in, out, n, c, h, w, p, q, sh, sw);                                       \
    }

INSTANTIATE(f32, float)
INSTANTIATE(f16, h16)
