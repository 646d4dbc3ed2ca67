package bert

/*
#include <stddef.h>
void rerank_cache_inference_memory();
size_t rerank_release_inference_memory();
*/
import "C"

// CacheInferenceMemory makes the CPU memory that inference frees (blocks of
// 1 MB or more, without grad mode) stay with the process for the next
// forward pass instead of going back to the system and faulting in again
// (cpucache.cpp). Process-wide and once; later calls do nothing.
func CacheInferenceMemory() { C.rerank_cache_inference_memory() }

// ReleaseInferenceMemory frees what CacheInferenceMemory keeps and returns
// how many bytes that was.
func ReleaseInferenceMemory() int { return int(C.rerank_release_inference_memory()) }
