package bert

import "github.com/rerankloop/rerank/plugin/internal/tokenize"

// NewBatch pads encoded pairs with pad to the longest of them.
func NewBatch(pairs []tokenize.Pair, pad int64) Batch {
	b := Batch{Size: len(pairs), Lengths: make([]int, len(pairs))}
	for _, p := range pairs {
		b.Len = max(b.Len, len(p.IDs))
	}
	b.IDs = make([]int64, b.Size*b.Len)
	b.TypeIDs = make([]int64, b.Size*b.Len)
	for i, p := range pairs {
		row := b.IDs[i*b.Len : (i+1)*b.Len]
		copy(row, p.IDs)
		for j := len(p.IDs); j < b.Len; j++ {
			row[j] = pad
		}
		copy(b.TypeIDs[i*b.Len:], p.TypeIDs)
		b.Lengths[i] = len(p.IDs)
	}
	return b
}
