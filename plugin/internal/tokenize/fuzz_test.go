package tokenize

import "testing"

// FuzzEncode: any (query, document) is encoded within the length asked,
// with ids of the vocabulary and the template's special tokens, or refused
// with an error; never a panic.
func FuzzEncode(f *testing.F) {
	e := load(f)
	f.Add("aspirin and heart attacks", "Aspirin reduces the risk of myocardial infarction.", 32)
	f.Add("", "text", 8)
	f.Add("[CLS] [SEP] [PAD]", "\x00\u200b\ufeffcafé 東京 🙂", 5)
	f.Add("a\xffb", "x", 16)
	f.Add("word ", "word word word word word word word word word word word word", 6)
	vocab := e.tk.GetVocabSize(true)
	f.Fuzz(func(t *testing.T, query, doc string, maxLen int) {
		maxLen = maxLen%600 + 1
		if maxLen < 0 {
			maxLen = -maxLen
		}
		check := func(what string, p Pair, err error, limit int) {
			if err != nil {
				return // refused (invalid UTF-8, a query of no tokens, a length too short): an error, not a panic
			}
			if len(p.IDs) > limit || len(p.IDs) != len(p.TypeIDs) || len(p.IDs) < 2 || p.IDs[0] != e.cls || p.IDs[len(p.IDs)-1] != e.sep {
				t.Fatalf("%s of (%q, %q) at %d: %v", what, query, doc, limit, p)
			}
			for _, id := range p.IDs {
				if id < 0 || id >= int64(vocab) {
					t.Fatalf("%s: id %d outside the vocabulary of %d", what, id, vocab)
				}
			}
		}
		p, err := e.EncodePair(query, doc, maxLen)
		check("pair", p, err, maxLen)
		p, err = e.EncodeText(doc, maxLen)
		check("text", p, err, maxLen)
		if ws, err := e.EncodePairWindows(query, doc, maxLen, maxLen/4); err == nil {
			for _, w := range ws {
				check("window", w, nil, maxLen)
			}
		}
	})
}
