// The e^x approximation shared by the vector softmax kernels (attn_avx2.cpp, attn_avx512.cpp): x clamped at
// kMinArg (so e^x stays a normal float), n = floor(x log2(e) + 1/2), r = x - n ln(2) in two steps (kLn2Hi exact in
// 9 bits), e^r by the degree-7 polynomial 1 + r + r^2 (kP0 + r (kP1 + ... r kP5)) (Cephes expf), times 2^n.
#pragma once

namespace afd::cpu::exp_poly {

constexpr float kMinArg = -87.0f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kP5 = 1.9875691500e-4f;
constexpr float kP4 = 1.3981999507e-3f;
constexpr float kP3 = 8.3334519073e-3f;
constexpr float kP2 = 4.1665795894e-2f;
constexpr float kP1 = 1.6666665459e-1f;
constexpr float kP0 = 5.0000001201e-1f;

}  // namespace afd::cpu::exp_poly
