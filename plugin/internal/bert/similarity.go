package bert

import (
	"math"

	"github.com/rerankloop/rerank/plugin/checkpoint"
)

// Similarity compares two embeddings as a bi-encoder's folder says: the dot
// product, or the cosine with each norm floored at 1e-12 as
// sentence-transformers' cos_sim (F.normalize) does.
func Similarity(fn string, q, d []float32) float32 {
	var dot, qq, dd float64
	for i := range q {
		dot += float64(q[i]) * float64(d[i])
		qq += float64(q[i]) * float64(q[i])
		dd += float64(d[i]) * float64(d[i])
	}
	if fn == checkpoint.SimilarityDot {
		return float32(dot)
	}
	return float32(dot / (max(math.Sqrt(qq), 1e-12) * max(math.Sqrt(dd), 1e-12)))
}
