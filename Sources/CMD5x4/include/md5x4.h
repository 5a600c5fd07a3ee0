#ifndef BAKEOFF_MD5X4_H
#define BAKEOFF_MD5X4_H
#include <stddef.h>
#include <stdint.h>

/// Compresses four 64-byte blocks (lane i at blocks + i * stride) into four MD5 states, laid out as
/// a0 b0 c0 d0 a1 b1 c1 d1 ... Only when bakeoff_md5x4_available() returns 1.
void bakeoff_md5x4_compress(uint32_t states[16], const unsigned char *blocks, size_t stride);
int bakeoff_md5x4_available(void);
#endif
