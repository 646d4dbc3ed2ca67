package search

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
)

// Span marks a matched term in a snippet, in characters (Unicode code points)
// from the snippet's start, end exclusive.
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

const ellipsis = "…"

// snippetScan bounds the bytes of a document searched for query terms, so a
// huge document costs no more than a long abstract.
const snippetScan = 32 << 10

// Snippet cuts about chars characters of text around the densest run of
// query terms (matched after analysis, so "cells" finds "cell") and marks
// each match. With no match it is the start of text.
func (x *Index) Snippet(query, text string, chars int) (string, []Span) {
	if chars <= 0 || text == "" {
		return "", nil
	}
	terms := map[string]bool{}
	for _, t := range x.analyzer.Analyze([]byte(query)) {
		terms[string(t.Term)] = true
	}
	// Matches as rune offsets into text.
	type match struct {
		start, end int
		term       string
	}
	var matches []match
	if len(terms) > 0 {
		scan := text
		if len(scan) > snippetScan {
			cut := snippetScan
			for cut > 0 && !utf8.RuneStart(scan[cut]) {
				cut--
			}
			scan = scan[:cut]
		}
		byteToRune := runeOffsets(text)
		for _, t := range x.matchTokens(terms, []byte(scan)) {
			matches = append(matches, match{byteToRune(t.Start), byteToRune(t.End), string(t.Term)})
		}
	}
	runes := []rune(text)
	n := len(runes)

	// Pick the window start with the most distinct terms, then most matches;
	// the earliest wins ties. Windows open a little before their first match.
	lead := chars / 5
	start, best, bestCount := 0, 0, 0
	for i := range matches {
		s := max(0, matches[i].start-lead)
		seen := map[string]bool{}
		count := 0
		for j := i; j < len(matches) && matches[j].end <= s+chars; j++ {
			seen[matches[j].term] = true
			count++
		}
		if len(seen) > best || (len(seen) == best && count > bestCount) {
			start, best, bestCount = s, len(seen), count
		}
	}
	end := min(n, start+chars)
	if end == n {
		start = max(0, min(start, n-chars))
	}
	start, end = wordBounds(runes, start, end)

	// Runs of white space (abstracts carry newlines and indents) become one
	// space; pos maps each kept text rune to its place in the snippet.
	var b strings.Builder
	pos := make([]int, end-start+1)
	at := 0
	if !blank(runes[:start]) {
		b.WriteString(ellipsis)
		at++
	}
	for i := start; i < end; i++ {
		pos[i-start] = at
		if unicode.IsSpace(runes[i]) {
			if i > start && unicode.IsSpace(runes[i-1]) {
				continue
			}
			b.WriteByte(' ')
		} else {
			b.WriteRune(runes[i])
		}
		at++
	}
	pos[end-start] = at
	if !blank(runes[end:]) {
		b.WriteString(ellipsis)
	}
	var spans []Span
	for _, m := range matches {
		if m.start >= start && m.end <= end {
			spans = append(spans, Span{pos[m.start-start], pos[m.end-start]})
		}
	}
	return b.String(), spans
}

// matchTokens returns the tokens of text whose analyzed term is in terms.
// Only tokens that can stem to a query term go through the token filters:
// stemmers rewrite a word's ending only, so a word matching term t starts
// with t minus its last letter (y becomes i: "study", "studi"). That skips
// the stemmer for almost every word of a document.
func (x *Index) matchTokens(terms map[string]bool, text []byte) analysis.TokenStream {
	da, ok := x.analyzer.(*analysis.DefaultAnalyzer)
	if !ok || len(da.CharFilters) > 0 {
		return keep(x.analyzer.Analyze(text), terms)
	}
	prefixes := make([][]byte, 0, len(terms))
	for t := range terms {
		_, last := utf8.DecodeLastRuneInString(t)
		prefixes = append(prefixes, []byte(t[:len(t)-last]))
	}
	var cand analysis.TokenStream
	for _, tok := range da.Tokenizer.Tokenize(text) {
		lower := bytes.ToLower(tok.Term)
		for _, p := range prefixes {
			if bytes.HasPrefix(lower, p) {
				cand = append(cand, tok)
				break
			}
		}
	}
	for _, f := range da.TokenFilters {
		cand = f.Filter(cand)
	}
	return keep(cand, terms)
}

func keep(toks analysis.TokenStream, terms map[string]bool) analysis.TokenStream {
	out := toks[:0]
	for _, t := range toks {
		if terms[string(t.Term)] {
			out = append(out, t)
		}
	}
	return out
}

// wordBounds moves start forward and end backward to whitespace, so the
// snippet does not open or close mid-word (unless that would empty it).
func wordBounds(r []rune, start, end int) (int, int) {
	if start > 0 && !unicode.IsSpace(r[start-1]) {
		for s := start; s < end; s++ {
			if unicode.IsSpace(r[s]) {
				start = s + 1
				break
			}
		}
	}
	for start < end && unicode.IsSpace(r[start]) {
		start++
	}
	for end > start && unicode.IsSpace(r[end-1]) {
		end--
	}
	if end < len(r) && !unicode.IsSpace(r[end]) {
		for e := end - 1; e > start; e-- {
			if unicode.IsSpace(r[e]) {
				end = e
				break
			}
		}
	}
	return start, end
}

func blank(r []rune) bool {
	for _, c := range r {
		if !unicode.IsSpace(c) {
			return false
		}
	}
	return true
}

// runeOffsets returns a function mapping increasing byte offsets of s to rune
// offsets; token offsets arrive in order, so it walks s once.
func runeOffsets(s string) func(int) int {
	b, r := 0, 0
	return func(off int) int {
		if off < b { // out of order: count from the start
			b, r = 0, 0
		}
		for b < off && b < len(s) {
			_, size := utf8.DecodeRuneInString(s[b:])
			b += size
			r++
		}
		return r
	}
}
