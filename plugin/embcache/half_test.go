package embcache

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFloatToHalfKnown(t *testing.T) {
	f := math.Float32frombits
	cases := []struct {
		in   float32
		want uint16
		why  string
	}{
		{0, 0x0000, "+0"},
		{float32(math.Copysign(0, -1)), 0x8000, "-0"},
		{1, 0x3c00, "one"},
		{-2, 0xc000, "minus two"},
		{0.1, 0x2e66, "0.1 rounds down"},
		{1.0 / 3, 0x3555, "1/3"},
		{65504, 0x7bff, "max finite"},
		{65519, 0x7bff, "below the 65520 midpoint"},
		{65520, 0x7bff, "midpoint to Inf: clamped, not Inf"},
		{1e6, 0x7bff, "overflow clamps"},
		{-1e30, 0xfbff, "negative overflow clamps"},
		{math.MaxFloat32, 0x7bff, "float32 max clamps"},
		{float32(math.Inf(1)), 0x7c00, "+Inf stays"},
		{float32(math.Inf(-1)), 0xfc00, "-Inf stays"},
		{0x1p-14, 0x0400, "smallest normal"},
		{0x1p-14 - 0x1p-24, 0x03ff, "largest subnormal"},
		{0x1p-24, 0x0001, "smallest subnormal"},
		{-0x1p-24, 0x8001, "negative subnormal"},
		{0x1p-25, 0x0000, "half the smallest subnormal: tie to even (0)"},
		{f(0x3300_0001), 0x0001, "just above 2^-25 rounds up"},
		{0x1p-26, 0x0000, "underflow"},
		{3 * 0x1p-25, 0x0002, "1.5 units: tie to even (2)"},
		{5 * 0x1p-25, 0x0002, "2.5 units: tie to even (2)"},
		{0x1p-14 - 0x1p-25, 0x0400, "subnormal rounding carries into the smallest normal"},
		{1 + 0x1p-11, 0x3c00, "normal tie to even (down)"},
		{1 + 3*0x1p-11, 0x3c02, "normal tie to even (up)"},
		{f(0x3f80_1001), 0x3c01, "just above a tie rounds up"},
		{2047.25, 0x67ff, "rounds down below 2048"},
		{2047.5, 0x6800, "tie to even carries into the exponent"},
	}
	for _, c := range cases {
		if got := floatToHalf(c.in); got != c.want {
			t.Errorf("floatToHalf(%g) [%s] = %#04x, want %#04x", c.in, c.why, got, c.want)
		}
	}
	for _, nan := range []float32{float32(math.NaN()), f(0x7f80_0001), f(0xffc0_0000)} {
		h := floatToHalf(nan)
		if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
			t.Errorf("floatToHalf(NaN %#08x) = %#04x, not a NaN", math.Float32bits(nan), h)
		}
		if (h>>15 == 1) != (math.Float32bits(nan)>>31 == 1) {
			t.Errorf("floatToHalf(NaN %#08x) = %#04x: sign lost", math.Float32bits(nan), h)
		}
	}
}

func TestHalfToFloatKnown(t *testing.T) {
	cases := []struct {
		in   uint16
		want uint32 // float32 bits, so -0 and the sign of NaN are checked
	}{
		{0x0000, 0x0000_0000},
		{0x8000, 0x8000_0000},
		{0x0001, math.Float32bits(0x1p-24)},
		{0x8001, math.Float32bits(-0x1p-24)},
		{0x03ff, math.Float32bits(1023 * 0x1p-24)},
		{0x0400, math.Float32bits(0x1p-14)},
		{0x3c00, math.Float32bits(1)},
		{0xc000, math.Float32bits(-2)},
		{0x3555, math.Float32bits(0.33325195)},
		{0x7bff, math.Float32bits(65504)},
		{0xfbff, math.Float32bits(-65504)},
		{0x7c00, 0x7f80_0000},
		{0xfc00, 0xff80_0000},
		{0x7e00, 0x7fc0_0000},
		{0xfe01, 0xffc0_2000},
	}
	for _, c := range cases {
		if got := math.Float32bits(halfToFloat(c.in)); got != c.want {
			t.Errorf("halfToFloat(%#04x) = %#08x (%g), want %#08x", c.in, got, math.Float32frombits(got), c.want)
		}
	}
}

// Every half decodes to the value its fields define and encodes back to
// itself; every midpoint between neighbours rounds to the even one and its
// float32 neighbours to the nearer one.
func TestHalfExhaustive(t *testing.T) {
	ref := func(h uint16) float64 {
		e, m := int(h>>10&0x1f), float64(h&0x3ff)
		v := math.Ldexp(m, -24) // subnormal
		if e > 0 {
			v = math.Ldexp(1024+m, e-25)
		}
		if h&0x8000 != 0 {
			v = -v
		}
		return v
	}
	for i := range 1 << 16 {
		h := uint16(i)
		f := halfToFloat(h)
		if h&0x7c00 == 0x7c00 { // Inf and NaN
			if h&0x3ff == 0 && !math.IsInf(float64(f), 0) || h&0x3ff != 0 && !math.IsNaN(float64(f)) {
				t.Fatalf("halfToFloat(%#04x) = %g", h, f)
			}
			if got := floatToHalf(f); got != h && h&0x3ff == 0 {
				t.Fatalf("Inf %#04x round trip gave %#04x", h, got)
			}
			continue
		}
		if float64(f) != ref(h) || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("halfToFloat(%#04x) = %g, want %g", h, f, ref(h))
		}
		if got := floatToHalf(f); got != h {
			t.Fatalf("floatToHalf(halfToFloat(%#04x)) = %#04x", h, got)
		}
	}
	for _, sign := range []uint16{0, 0x8000} {
		for h := uint16(0); h < 0x7bff; h++ {
			a, b := halfToFloat(sign|h), halfToFloat(sign|(h+1))
			mid := float32((float64(a) + float64(b)) / 2) // 12 significant bits: exact
			even := sign | h
			if h&1 == 1 {
				even = sign | (h + 1)
			}
			if got := floatToHalf(mid); got != even {
				t.Fatalf("midpoint %g of %#04x,%#04x -> %#04x, want even %#04x", mid, sign|h, sign|(h+1), got, even)
			}
			toA := math.Nextafter32(mid, a)
			toB := math.Nextafter32(mid, b)
			if got := floatToHalf(toA); got != sign|h {
				t.Fatalf("%g (just toward %#04x) -> %#04x", toA, sign|h, got)
			}
			if got := floatToHalf(toB); got != sign|(h+1) {
				t.Fatalf("%g (just toward %#04x) -> %#04x", toB, sign|(h+1), got)
			}
		}
	}
}

func TestHalfRelativeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		x := float32(math.Ldexp(1+rng.Float64(), rng.IntN(30)-14)) // [2^-14, 2^16)
		if x > 65504 {
			continue
		}
		if rng.IntN(2) == 0 {
			x = -x
		}
		y := halfToFloat(floatToHalf(x))
		if rel := math.Abs(float64(y-x)) / math.Abs(float64(x)); rel > 0x1p-11 {
			t.Fatalf("%g -> %g: relative error %g > 2^-11", x, y, rel)
		}
	}
}
