package search

import (
	"strings"
	"testing"
)

func spanText(s string, sp Span) string { return string([]rune(s)[sp.Start:sp.End]) }

func TestSnippet(t *testing.T) {
	ix, _ := buildSample(t, "en")
	long := strings.Repeat("Filler words about nothing in particular. ", 20) +
		"Here the mitochondria of tumour cells swell. " + strings.Repeat("More filler text follows here. ", 20)
	snip, spans := ix.Snippet("Mitochondria swelling in cells", long, 120)
	if !strings.HasPrefix(snip, "…") || !strings.HasSuffix(snip, "…") {
		t.Fatalf("cut snippet should carry ellipses: %q", snip)
	}
	if n := len([]rune(snip)); n > 122 {
		t.Fatalf("snippet has %d characters, want at most 120 plus ellipses", n)
	}
	var got []string
	for _, sp := range spans {
		got = append(got, spanText(snip, sp))
	}
	if strings.Join(got, ",") != "mitochondria,cells,swell" {
		t.Fatalf("marked %q in %q", got, snip)
	}

	// Multi-byte text: spans count characters, not bytes.
	snip, spans = ix.Snippet("cellules", "Les cellules souches «naïves» — cellules", 200)
	if len(spans) != 2 || spanText(snip, spans[1]) != "cellules" {
		t.Fatalf("spans %v in %q", spans, snip)
	}

	// No match: the start of the text, cut at a word.
	snip, spans = ix.Snippet("zebra", long, 50)
	if len(spans) != 0 || !strings.HasPrefix(snip, "Filler words") || strings.HasSuffix(snip, "nothi…") {
		t.Fatalf("no-match snippet %q %v", snip, spans)
	}
	if s, _ := ix.Snippet("x", "short", 100); s != "short" {
		t.Fatalf("short text: %q", s)
	}
}

func TestSnippetCollapsesWhiteSpace(t *testing.T) {
	ix, _ := buildSample(t, "en")
	snip, spans := ix.Snippet("stem cells", "Adult   \n stem\tcells divide.\n\n", 100)
	if snip != "Adult stem cells divide." {
		t.Fatalf("snippet %q", snip)
	}
	if len(spans) != 2 || spanText(snip, spans[0]) != "stem" || spanText(snip, spans[1]) != "cells" {
		t.Fatalf("spans %v", spans)
	}
}

// The prefilter in matchTokens must find exactly what analyzing the whole
// text finds.
func TestMatchTokensAgreesWithFullAnalysis(t *testing.T) {
	for _, analyzer := range []string{"en", "standard"} {
		ix, _ := buildSample(t, analyzer)
		var docs []Doc
		readSample(func(d Doc) error {
			if len(docs) < 200 {
				docs = append(docs, d)
			}
			return nil
		})
		total := 0
		for _, q := range []string{"studies of happy mice", "Vitamin D deficiency", "cell's generalization", "the dying lies", "1.5 mg/kg doses"} {
			terms := map[string]bool{}
			for _, tok := range ix.analyzer.Analyze([]byte(q)) {
				terms[string(tok.Term)] = true
			}
			for _, d := range docs {
				text := []byte(d.Title + " " + d.Text)
				want := keep(ix.analyzer.Analyze(text), terms)
				got := ix.matchTokens(terms, text)
				total += len(want)
				if len(got) != len(want) {
					t.Fatalf("%s, %q, doc %s: %d matches, full analysis %d", analyzer, q, d.ID, len(got), len(want))
				}
				for i := range got {
					if got[i].Start != want[i].Start || string(got[i].Term) != string(want[i].Term) {
						t.Fatalf("%s, %q, doc %s: match %d differs", analyzer, q, d.ID, i)
					}
				}
			}
		}
		if total < 100 {
			t.Fatalf("%s: only %d matches compared", analyzer, total)
		}
	}
}
