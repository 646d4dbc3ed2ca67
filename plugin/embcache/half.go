package embcache

import "math"

// IEEE 754 binary16 ("half") conversion. Vectors are stored as half to halve
// the file; the reranker computes in float32.
//
// floatToHalf rounds to nearest, ties to even, with one deliberate departure
// from IEEE: a finite float32 whose magnitude would round past the largest
// finite half (that is, |f| >= 65520) is clamped to ±65504 instead of
// becoming ±Inf, so one out-of-range component cannot turn a stored
// embedding's dot products into ±Inf or NaN. ±Inf stays ±Inf, NaN stays NaN
// (quiet, sign and top payload bits kept). Put rejects non-finite vectors
// anyway; the codec handles every input so it is total.
func floatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	b &^= 0x8000_0000
	switch {
	case b > 0x7f80_0000: // NaN
		return sign | 0x7e00 | uint16(b>>13)&0x3ff
	case b == 0x7f80_0000: // Inf
		return sign | 0x7c00
	case b >= 0x477f_f000: // >= 65520: would round to Inf; clamp to max finite
		return sign | 0x7bff
	case b >= 0x3880_0000: // >= 2^-14: normal half
		b -= (127 - 15) << 23 // rebias the exponent
		// Round the 13 dropped bits to nearest even; a carry out of the
		// mantissa correctly bumps the exponent.
		b += 0xfff + (b>>13)&1
		return sign | uint16(b>>13)
	case b < 0x3300_0000: // < 2^-25: rounds to zero (2^-25 itself is handled below)
		return sign
	default: // subnormal half: a multiple of 2^-24
		e := b >> 23                 // 102..112
		m := b&0x7f_ffff | 0x80_0000 // value = m * 2^(e-150)
		shift := 126 - e             // value / 2^-24 = m >> shift, shift in 14..24
		r := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || rem == mid && r&1 == 1 {
			r++ // may carry into 0x400, the smallest normal: still correct
		}
		return sign | uint16(r)
	}
}

// halfToFloat widens a half exactly (every half is a float32).
func halfToFloat(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	em := uint32(h & 0x7fff)
	switch {
	case em >= 0x7c00: // Inf, NaN (payload kept)
		return math.Float32frombits(sign | 0x7f80_0000 | (em&0x3ff)<<13)
	case em >= 0x0400: // normal
		return math.Float32frombits(sign | (em<<13 + (127-15)<<23))
	default: // zero or subnormal: em * 2^-24, exact in float32
		return math.Float32frombits(sign | math.Float32bits(float32(em)*0x1p-24))
	}
}

// Round returns v as the cache stores it (each value rounded to float16), so
// a freshly computed embedding scores exactly as its cached copy will.
func Round(v []float32) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = halfToFloat(floatToHalf(x))
	}
	return out
}
