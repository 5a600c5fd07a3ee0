// Four MD5 block compressions side by side in SSE2 registers (x86-64 baseline), with a portable
// fallback. Why C: Swift's SIMD types lower MD5's rotations to four scalar rotates per step on SSE2,
// which is slower than plain scalar code; these intrinsics keep every step in one register.
#include "md5x4.h"
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>

#define ROTL(v, s) _mm_or_si128(_mm_slli_epi32((v), (s)), _mm_srli_epi32((v), 32 - (s)))
#define STEP(a, b, xw, t, s, f) do { \
    __m128i sum = _mm_add_epi32(_mm_add_epi32((a), (xw)), _mm_add_epi32(_mm_set1_epi32((int)(t)), (f))); \
    (a) = _mm_add_epi32(ROTL(sum, s), (b)); } while (0)

static inline __m128i load_word(const unsigned char *blocks, size_t stride, int i) {
    uint32_t w[4];
    for (int lane = 0; lane < 4; lane++) memcpy(&w[lane], blocks + lane * stride + 4 * i, 4);  /* little-endian x86 */
    return _mm_set_epi32((int)w[3], (int)w[2], (int)w[1], (int)w[0]);
}

void bakeoff_md5x4_compress(uint32_t states[16], const unsigned char *blocks, size_t stride) {
    __m128i x[16];
    for (int i = 0; i < 16; i++) x[i] = load_word(blocks, stride, i);
    const __m128i ones = _mm_set1_epi32(-1);
    __m128i a = _mm_set_epi32((int)states[12], (int)states[8], (int)states[4], (int)states[0]);
    __m128i b = _mm_set_epi32((int)states[13], (int)states[9], (int)states[5], (int)states[1]);
    __m128i c = _mm_set_epi32((int)states[14], (int)states[10], (int)states[6], (int)states[2]);
    __m128i d = _mm_set_epi32((int)states[15], (int)states[11], (int)states[7], (int)states[3]);
    const __m128i a0 = a, b0 = b, c0 = c, d0 = d;
    STEP(a, b, x[0], 0xd76aa478u, 7, _mm_xor_si128(d, _mm_and_si128(b, _mm_xor_si128(c, d))));
    STEP(d, a, x[1], 0xe8c7b756u, 12, _mm_xor_si128(c, _mm_and_si128(a, _mm_xor_si128(b, c))));
    STEP(c, d, x[2], 0x242070dbu, 17, _mm_xor_si128(b, _mm_and_si128(d, _mm_xor_si128(a, b))));
    STEP(b, c, x[3], 0xc1bdceeeu, 22, _mm_xor_si128(a, _mm_and_si128(c, _mm_xor_si128(d, a))));
    STEP(a, b, x[4], 0xf57c0fafu, 7, _mm_xor_si128(d, _mm_and_si128(b, _mm_xor_si128(c, d))));
    STEP(d, a, x[5], 0x4787c62au, 12, _mm_xor_si128(c, _mm_and_si128(a, _mm_xor_si128(b, c))));
    STEP(c, d, x[6], 0xa8304613u, 17, _mm_xor_si128(b, _mm_and_si128(d, _mm_xor_si128(a, b))));
    STEP(b, c, x[7], 0xfd469501u, 22, _mm_xor_si128(a, _mm_and_si128(c, _mm_xor_si128(d, a))));
    STEP(a, b, x[8], 0x698098d8u, 7, _mm_xor_si128(d, _mm_and_si128(b, _mm_xor_si128(c, d))));
    STEP(d, a, x[9], 0x8b44f7afu, 12, _mm_xor_si128(c, _mm_and_si128(a, _mm_xor_si128(b, c))));
    STEP(c, d, x[10], 0xffff5bb1u, 17, _mm_xor_si128(b, _mm_and_si128(d, _mm_xor_si128(a, b))));
    STEP(b, c, x[11], 0x895cd7beu, 22, _mm_xor_si128(a, _mm_and_si128(c, _mm_xor_si128(d, a))));
    STEP(a, b, x[12], 0x6b901122u, 7, _mm_xor_si128(d, _mm_and_si128(b, _mm_xor_si128(c, d))));
    STEP(d, a, x[13], 0xfd987193u, 12, _mm_xor_si128(c, _mm_and_si128(a, _mm_xor_si128(b, c))));
    STEP(c, d, x[14], 0xa679438eu, 17, _mm_xor_si128(b, _mm_and_si128(d, _mm_xor_si128(a, b))));
    STEP(b, c, x[15], 0x49b40821u, 22, _mm_xor_si128(a, _mm_and_si128(c, _mm_xor_si128(d, a))));
    STEP(a, b, x[1], 0xf61e2562u, 5, _mm_add_epi32(_mm_andnot_si128(d, c), _mm_and_si128(b, d)));
    STEP(d, a, x[6], 0xc040b340u, 9, _mm_add_epi32(_mm_andnot_si128(c, b), _mm_and_si128(a, c)));
    STEP(c, d, x[11], 0x265e5a51u, 14, _mm_add_epi32(_mm_andnot_si128(b, a), _mm_and_si128(d, b)));
    STEP(b, c, x[0], 0xe9b6c7aau, 20, _mm_add_epi32(_mm_andnot_si128(a, d), _mm_and_si128(c, a)));
    STEP(a, b, x[5], 0xd62f105du, 5, _mm_add_epi32(_mm_andnot_si128(d, c), _mm_and_si128(b, d)));
    STEP(d, a, x[10], 0x02441453u, 9, _mm_add_epi32(_mm_andnot_si128(c, b), _mm_and_si128(a, c)));
    STEP(c, d, x[15], 0xd8a1e681u, 14, _mm_add_epi32(_mm_andnot_si128(b, a), _mm_and_si128(d, b)));
    STEP(b, c, x[4], 0xe7d3fbc8u, 20, _mm_add_epi32(_mm_andnot_si128(a, d), _mm_and_si128(c, a)));
    STEP(a, b, x[9], 0x21e1cde6u, 5, _mm_add_epi32(_mm_andnot_si128(d, c), _mm_and_si128(b, d)));
    STEP(d, a, x[14], 0xc33707d6u, 9, _mm_add_epi32(_mm_andnot_si128(c, b), _mm_and_si128(a, c)));
    STEP(c, d, x[3], 0xf4d50d87u, 14, _mm_add_epi32(_mm_andnot_si128(b, a), _mm_and_si128(d, b)));
    STEP(b, c, x[8], 0x455a14edu, 20, _mm_add_epi32(_mm_andnot_si128(a, d), _mm_and_si128(c, a)));
    STEP(a, b, x[13], 0xa9e3e905u, 5, _mm_add_epi32(_mm_andnot_si128(d, c), _mm_and_si128(b, d)));
    STEP(d, a, x[2], 0xfcefa3f8u, 9, _mm_add_epi32(_mm_andnot_si128(c, b), _mm_and_si128(a, c)));
    STEP(c, d, x[7], 0x676f02d9u, 14, _mm_add_epi32(_mm_andnot_si128(b, a), _mm_and_si128(d, b)));
    STEP(b, c, x[12], 0x8d2a4c8au, 20, _mm_add_epi32(_mm_andnot_si128(a, d), _mm_and_si128(c, a)));
    STEP(a, b, x[5], 0xfffa3942u, 4, _mm_xor_si128(_mm_xor_si128(b, c), d));
    STEP(d, a, x[8], 0x8771f681u, 11, _mm_xor_si128(_mm_xor_si128(a, b), c));
    STEP(c, d, x[11], 0x6d9d6122u, 16, _mm_xor_si128(_mm_xor_si128(d, a), b));
    STEP(b, c, x[14], 0xfde5380cu, 23, _mm_xor_si128(_mm_xor_si128(c, d), a));
    STEP(a, b, x[1], 0xa4beea44u, 4, _mm_xor_si128(_mm_xor_si128(b, c), d));
    STEP(d, a, x[4], 0x4bdecfa9u, 11, _mm_xor_si128(_mm_xor_si128(a, b), c));
    STEP(c, d, x[7], 0xf6bb4b60u, 16, _mm_xor_si128(_mm_xor_si128(d, a), b));
    STEP(b, c, x[10], 0xbebfbc70u, 23, _mm_xor_si128(_mm_xor_si128(c, d), a));
    STEP(a, b, x[13], 0x289b7ec6u, 4, _mm_xor_si128(_mm_xor_si128(b, c), d));
    STEP(d, a, x[0], 0xeaa127fau, 11, _mm_xor_si128(_mm_xor_si128(a, b), c));
    STEP(c, d, x[3], 0xd4ef3085u, 16, _mm_xor_si128(_mm_xor_si128(d, a), b));
    STEP(b, c, x[6], 0x04881d05u, 23, _mm_xor_si128(_mm_xor_si128(c, d), a));
    STEP(a, b, x[9], 0xd9d4d039u, 4, _mm_xor_si128(_mm_xor_si128(b, c), d));
    STEP(d, a, x[12], 0xe6db99e5u, 11, _mm_xor_si128(_mm_xor_si128(a, b), c));
    STEP(c, d, x[15], 0x1fa27cf8u, 16, _mm_xor_si128(_mm_xor_si128(d, a), b));
    STEP(b, c, x[2], 0xc4ac5665u, 23, _mm_xor_si128(_mm_xor_si128(c, d), a));
    STEP(a, b, x[0], 0xf4292244u, 6, _mm_xor_si128(c, _mm_or_si128(b, _mm_xor_si128(d, ones))));
    STEP(d, a, x[7], 0x432aff97u, 10, _mm_xor_si128(b, _mm_or_si128(a, _mm_xor_si128(c, ones))));
    STEP(c, d, x[14], 0xab9423a7u, 15, _mm_xor_si128(a, _mm_or_si128(d, _mm_xor_si128(b, ones))));
    STEP(b, c, x[5], 0xfc93a039u, 21, _mm_xor_si128(d, _mm_or_si128(c, _mm_xor_si128(a, ones))));
    STEP(a, b, x[12], 0x655b59c3u, 6, _mm_xor_si128(c, _mm_or_si128(b, _mm_xor_si128(d, ones))));
    STEP(d, a, x[3], 0x8f0ccc92u, 10, _mm_xor_si128(b, _mm_or_si128(a, _mm_xor_si128(c, ones))));
    STEP(c, d, x[10], 0xffeff47du, 15, _mm_xor_si128(a, _mm_or_si128(d, _mm_xor_si128(b, ones))));
    STEP(b, c, x[1], 0x85845dd1u, 21, _mm_xor_si128(d, _mm_or_si128(c, _mm_xor_si128(a, ones))));
    STEP(a, b, x[8], 0x6fa87e4fu, 6, _mm_xor_si128(c, _mm_or_si128(b, _mm_xor_si128(d, ones))));
    STEP(d, a, x[15], 0xfe2ce6e0u, 10, _mm_xor_si128(b, _mm_or_si128(a, _mm_xor_si128(c, ones))));
    STEP(c, d, x[6], 0xa3014314u, 15, _mm_xor_si128(a, _mm_or_si128(d, _mm_xor_si128(b, ones))));
    STEP(b, c, x[13], 0x4e0811a1u, 21, _mm_xor_si128(d, _mm_or_si128(c, _mm_xor_si128(a, ones))));
    STEP(a, b, x[4], 0xf7537e82u, 6, _mm_xor_si128(c, _mm_or_si128(b, _mm_xor_si128(d, ones))));
    STEP(d, a, x[11], 0xbd3af235u, 10, _mm_xor_si128(b, _mm_or_si128(a, _mm_xor_si128(c, ones))));
    STEP(c, d, x[2], 0x2ad7d2bbu, 15, _mm_xor_si128(a, _mm_or_si128(d, _mm_xor_si128(b, ones))));
    STEP(b, c, x[9], 0xeb86d391u, 21, _mm_xor_si128(d, _mm_or_si128(c, _mm_xor_si128(a, ones))));
    a = _mm_add_epi32(a, a0); b = _mm_add_epi32(b, b0); c = _mm_add_epi32(c, c0); d = _mm_add_epi32(d, d0);
    uint32_t out[4][4];
    _mm_storeu_si128((__m128i *)out[0], a);
    _mm_storeu_si128((__m128i *)out[1], b);
    _mm_storeu_si128((__m128i *)out[2], c);
    _mm_storeu_si128((__m128i *)out[3], d);
    for (int lane = 0; lane < 4; lane++) {
        states[4 * lane + 0] = out[0][lane];
        states[4 * lane + 1] = out[1][lane];
        states[4 * lane + 2] = out[2][lane];
        states[4 * lane + 3] = out[3][lane];
    }
}

int bakeoff_md5x4_available(void) { return 1; }
#else
void bakeoff_md5x4_compress(uint32_t states[16], const unsigned char *blocks, size_t stride) {
    (void)states; (void)blocks; (void)stride;
}
int bakeoff_md5x4_available(void) { return 0; }
#endif
