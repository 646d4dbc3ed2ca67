package bert

import (
	"runtime"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Blocks of 1 MB or more freed without grad mode stay cached, up to 512 MB,
// and serve later requests a little smaller; under grad mode and below 1 MB
// nothing is kept.
func TestInferenceMemoryIsKept(t *testing.T) {
	runtime.LockOSThread() // grad mode is per thread
	defer runtime.UnlockOSThread()
	CacheInferenceMemory()
	ReleaseInferenceMemory()
	const mb = 1 << 20
	// free allocates a float32 tensor of n bytes and frees it, returning
	// where its data was.
	free := func(n int64) uintptr {
		x := ts.MustEmpty([]int64{n / 4}, gotch.Float, gotch.CPU)
		p := uintptr(x.MustDataPtr())
		x.MustDrop()
		return p
	}
	free(4 * mb)
	if got := ReleaseInferenceMemory(); got != 0 {
		t.Errorf("under grad mode %d bytes were kept", got)
	}
	ts.NoGrad(func() {
		free(mb / 2)
		if got := ReleaseInferenceMemory(); got != 0 {
			t.Errorf("a 512 KB block was kept (%d bytes)", got)
		}
		a := free(4*mb + 4096) // kept with room to 4.25 MB
		if got := ReleaseInferenceMemory(); got < 4*mb+4096 {
			t.Errorf("after a 4 MB block was freed, %d bytes were kept", got)
		}
		a = free(4*mb + 4096)
		if b := free(4 * mb); b != a {
			t.Errorf("a 4 MB request did not reuse the freed block of 4 MB + 4 KB (%#x, then %#x)", a, b)
		}
		for range 3 {
			x := ts.MustEmpty([]int64{200 * mb / 4}, gotch.Float, gotch.CPU)
			y := ts.MustEmpty([]int64{200 * mb / 4}, gotch.Float, gotch.CPU)
			z := ts.MustEmpty([]int64{200 * mb / 4}, gotch.Float, gotch.CPU)
			x.MustDrop()
			y.MustDrop()
			z.MustDrop()
		}
		if got := ReleaseInferenceMemory(); got > 512*mb {
			t.Errorf("%d MB were kept, more than 512 MB", got/mb)
		}
	})
}
