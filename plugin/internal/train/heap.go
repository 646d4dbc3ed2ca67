package train

/*
#include <malloc.h>
*/
import "C"

import "github.com/rerankloop/rerank/plugin/internal/bert"

// trimEvery is how many training steps pass between two trims of the C heap.
const trimEvery = 8

// releaseHeap hands the C heap's free pages back to the system. A step frees
// gigabytes of activations whose sizes follow its batch's longest text;
// glibc raises its mmap threshold as they are freed, so later tensors come
// from the heap, whose free pages it keeps and cannot reuse for every size:
// without trimming, a bi-encoder fine-tune (16 MiniLM units a step) grew by
// about 250 MB a step, to 8 GB after 17 steps and 16.7 GB after 47. A trim
// costs the next step its page faults (trimming after every step lost 9% of
// the throughput; a fixed mmap threshold of 4 MB, 17%), so it runs every
// trimEvery steps and after each validation. Validation's blocks, which
// bert keeps for the next inference, go first.
func releaseHeap() {
	bert.ReleaseInferenceMemory()
	C.malloc_trim(0)
}
