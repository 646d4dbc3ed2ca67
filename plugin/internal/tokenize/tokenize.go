// Package tokenize turns (query, document) pairs into BERT cross-encoder inputs,
// token for token what the Hugging Face fast tokenizer produces for
// tok(query, doc, truncation=True, max_length=L): [CLS] q [SEP] d [SEP] with
// token types 0 for [CLS] q [SEP] and 1 for d [SEP], truncated "longest_first".
// The fixtures in plugin/testdata/parity pin this on SciFact and edge cases.
//
// github.com/sugarme/tokenizer (pure Go) loads the tokenizer.json and runs the
// WordPiece vocabulary lookup. Special-token splitting, normalization and
// pre-tokenization are done here (bert.go says where the library departs from
// Hugging Face), and so are the pair template and the truncation: the library's
// truncation is not Hugging Face's, and the tokenizer.json of some models
// carries fixed truncation/padding that transformers ignores at call time
// (all-MiniLM-L6-v2's pads every input to 128).
//
// An Encoder is safe for concurrent use without a lock: encoding only reads
// immutable state (the flags and added tokens here, the library's vocabulary
// map); the tests encode from 8 goroutines under the race detector.
package tokenize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// Special tokens of the BERT pair template.
const (
	clsToken = "[CLS]"
	sepToken = "[SEP]"
	padToken = "[PAD]"
	// specials is the number of special tokens in a pair: [CLS] q [SEP] d [SEP].
	specials = 3
	// MinMaxLen leaves room for the specials and one token of each text.
	MinMaxLen = specials + 2
)

// Errors callers may test for with errors.Is.
var (
	ErrEmptyQuery  = errors.New("tokenize: query has no tokens")
	ErrInvalidUTF8 = errors.New("tokenize: text is not valid UTF-8")
)

// Pair is one model input: token ids and their token type (segment) ids, same length.
type Pair struct {
	IDs, TypeIDs []int64
}

// Encoder encodes (query, document) pairs for one tokenizer.json.
type Encoder struct {
	tk            *tokenizer.Tokenizer
	model         tokenizer.Model // WordPiece
	text          *bertText
	path          string
	cls, sep, pad int64
	maxPositions  int
}

// Load reads a Hugging Face tokenizer.json of a BERT-style model (BertNormalizer,
// BertPreTokenizer, WordPiece, pair template [CLS] A [SEP] B [SEP]). When a
// tokenizer_config.json sits next to it, its model_max_length is reported by
// MaxPositions.
func Load(tokenizerJSON string) (*Encoder, error) {
	data, err := os.ReadFile(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("tokenize: read tokenizer: %w", err)
	}
	e, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %s is not a usable tokenizer.json: %w", tokenizerJSON, err)
	}
	e.path = tokenizerJSON
	if e.maxPositions, err = readModelMaxLength(filepath.Join(filepath.Dir(tokenizerJSON), "tokenizer_config.json")); err != nil {
		return nil, err
	}
	return e, nil
}

func parse(data []byte) (*Encoder, error) {
	var cfg fileConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, err
	}
	text, err := newBertText(cfg)
	if err != nil {
		return nil, err
	}
	tk, err := fromReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	// We truncate and assemble pairs ourselves; the file's own settings must not interfere.
	tk.WithTruncation(nil)
	tk.WithPadding(nil)

	e := &Encoder{tk: tk, model: tk.GetModel(), text: text}
	for _, s := range []struct {
		tok string
		dst *int64
	}{{clsToken, &e.cls}, {sepToken, &e.sep}, {padToken, &e.pad}} {
		id, ok := tk.TokenToId(s.tok)
		if !ok {
			return nil, fmt.Errorf("no %s token; only BERT-style tokenizers are supported", s.tok)
		}
		*s.dst = int64(id)
	}
	if err := e.checkTemplate(); err != nil {
		return nil, err
	}
	return e, nil
}

// fromReader wraps the library loader, which type-asserts JSON fields without
// checking and so panics on a malformed file.
func fromReader(r io.Reader) (tk *tokenizer.Tokenizer, err error) {
	defer func() {
		if p := recover(); p != nil {
			tk, err = nil, fmt.Errorf("malformed tokenizer definition: %v", p)
		}
	}()
	tk, err = pretrained.FromReader(r)
	if err == nil && tk.GetModel() == nil {
		err = errors.New("no model")
	}
	return tk, err
}

// checkTemplate proves that the file's post-processor builds the pair exactly as
// EncodePair does, so a non-BERT template (RoBERTa's <s> A </s></s> B </s>, say)
// is refused at load time instead of silently producing different inputs.
func (e *Encoder) checkTemplate() error {
	const a, b = "query text", "document text"
	want, err := e.EncodePair(a, b, 64)
	if err != nil {
		return err
	}
	got, err := protect(func() (*tokenizer.Encoding, error) { return e.tk.EncodePair(a, b, true) })
	if err != nil {
		return err
	}
	if !slices.Equal(toInt64(got.Ids), want.IDs) || !slices.Equal(toInt64(got.TypeIds), want.TypeIDs) {
		return fmt.Errorf("pair template is not [CLS] A [SEP] B [SEP] with token types 0/1 (file gives ids %v types %v)", got.Ids, got.TypeIds)
	}
	return nil
}

// readModelMaxLength returns model_max_length from tokenizer_config.json, 0 when
// the file is absent or says "no limit" (transformers writes a huge sentinel).
func readModelMaxLength(path string) (int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tokenize: %w", err)
	}
	var cfg struct {
		ModelMaxLength *float64 `json:"model_max_length"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return 0, fmt.Errorf("tokenize: %s: %w", path, err)
	}
	if cfg.ModelMaxLength == nil || *cfg.ModelMaxLength <= 0 || *cfg.ModelMaxLength > math.MaxInt32 {
		return 0, nil
	}
	return int(*cfg.ModelMaxLength), nil
}

// PadID is the id of [PAD], for batching pairs of different lengths.
func (e *Encoder) PadID() int64 { return e.pad }

// MaxPositions is model_max_length from the tokenizer_config.json next to the
// tokenizer.json, or 0 when unknown. Like transformers, EncodePair does not
// enforce it: the hard bound is the model's max_position_embeddings, which the
// caller knows from config.json.
func (e *Encoder) MaxPositions() int { return e.maxPositions }

// Path is the tokenizer.json this encoder was loaded from.
func (e *Encoder) Path() string { return e.path }

// EncodePair encodes [CLS] query [SEP] doc [SEP], at most maxLen tokens,
// truncating like Hugging Face's longest_first. An empty doc is allowed and gives
// [CLS] query [SEP] [SEP], as the Rust tokenizer and transformers' batch call do.
func (e *Encoder) EncodePair(query, doc string, maxLen int) (Pair, error) {
	q, d, err := e.tokens(query, doc, maxLen, true)
	if err != nil {
		return Pair{}, err
	}
	nq, nd := longestFirst(len(q), len(d), maxLen-specials)
	return e.assemble(q[:nq], d[:nd]), nil
}

// EncodeText encodes one text as sentence-transformers feeds a bi-encoder:
// [CLS] text [SEP], token types 0, cut to maxLen tokens with [SEP] kept
// last. An empty text gives [CLS] [SEP], as it does there.
func (e *Encoder) EncodeText(text string, maxLen int) (Pair, error) {
	if maxLen < 3 {
		return Pair{}, fmt.Errorf("tokenize: maxLen %d is below 3 ([CLS], [SEP] and one token)", maxLen)
	}
	ids, err := e.ids(text, "text", maxLen-2)
	if err != nil {
		return Pair{}, err
	}
	p := Pair{IDs: make([]int64, 0, len(ids)+2), TypeIDs: make([]int64, len(ids)+2)}
	p.IDs = append(append(append(p.IDs, e.cls), ids...), e.sep)
	return p, nil
}

// EncodePairWindows covers a long document with several pairs instead of cutting
// it off: the document's tokens are split into windows of maxLen-3-len(query)
// tokens, consecutive windows sharing stride tokens, each paired with the query.
// Windows are those of Hugging Face's truncation="only_second" with
// return_overflowing_tokens=True (the last one may be shorter). A query longer
// than half the budget is cut to (maxLen-3)/2 tokens, where Hugging Face would
// fail. When the pair fits, the single window equals EncodePair's result.
func (e *Encoder) EncodePairWindows(query, doc string, maxLen, stride int) ([]Pair, error) {
	q, d, err := e.tokens(query, doc, maxLen, false)
	if err != nil {
		return nil, err
	}
	budget := maxLen - specials
	if len(q)+len(d) <= budget {
		return []Pair{e.assemble(q, d)}, nil
	}
	q = q[:min(len(q), budget/2)]
	width := budget - len(q)
	if stride < 0 || stride >= width {
		return nil, fmt.Errorf("tokenize: stride %d must be in [0, %d): each window holds %d document tokens", stride, width, width)
	}
	var out []Pair
	for start := 0; ; start += width - stride {
		end := min(start+width, len(d))
		out = append(out, e.assemble(q, d[start:end]))
		if end == len(d) {
			return out, nil
		}
	}
}

// longestFirst returns how many query and document tokens to keep within budget,
// following tokenizers' TruncationStrategy::LongestFirst (truncate_encodings in
// tokenizers/src/utils/truncation.rs): the shorter text keeps min(len, budget/2)
// at least, and when both must shrink the odd token goes to the second text unless
// the first is strictly longer. (The slow Python tokenizer removes one token at a
// time and breaks ties the other way; the fixtures pin the fast behaviour.)
func longestFirst(nq, nd, budget int) (int, int) {
	if nq+nd <= budget {
		return nq, nd
	}
	n1, n2 := nq, nd
	swap := n1 > n2
	if swap {
		n1, n2 = n2, n1
	}
	if n1 > budget {
		n2 = n1
	} else {
		n2 = max(n1, budget-n1)
	}
	if n1+n2 > budget {
		n1 = budget / 2
		n2 = n1 + budget%2
	}
	if swap {
		n1, n2 = n2, n1
	}
	return min(n1, nq), min(n2, nd)
}

// tokens validates the inputs and returns the word-piece ids of query and doc.
//
// With truncate set, the document is tokenized only as far as EncodePair can
// keep: longestFirst gives the same answer for any document length above
// max(budget, len(q)), so max(budget, len(q))+1 tokens decide it.
func (e *Encoder) tokens(query, doc string, maxLen int, truncate bool) (q, d []int64, err error) {
	if maxLen < MinMaxLen {
		return nil, nil, fmt.Errorf("tokenize: maxLen %d is below %d (3 special tokens and one token of each text)", maxLen, MinMaxLen)
	}
	if q, err = e.ids(query, "query", 0); err != nil {
		return nil, nil, err
	}
	if len(q) == 0 {
		return nil, nil, ErrEmptyQuery
	}
	limit := 0
	if truncate {
		limit = max(maxLen-specials, len(q)) + 1
	}
	if d, err = e.ids(doc, "document", limit); err != nil {
		return nil, nil, err
	}
	return q, d, nil
}

// chunkBytes is how much text is normalized at a time, so that a long document
// is not normalized and split far beyond the tokens that will be kept.
const chunkBytes = 2048

// ids tokenizes one text without special tokens: added tokens, then per piece
// BERT normalization and pre-tokenization, then the library's WordPiece. It
// stops after limit ids (limit <= 0: the whole text).
//
// Invalid UTF-8 is an error rather than silently replaced: protobuf strings
// already cannot carry it, so it only arrives through a bug upstream, and
// Hugging Face (Python str) never sees such bytes, so there is no reference
// behaviour to match. Callers that want replacement can use strings.ToValidUTF8.
func (e *Encoder) ids(text, what string, limit int) (ids []int64, err error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w (%s)", ErrInvalidUTF8, what)
	}
	defer func() {
		if p := recover(); p != nil {
			ids, err = nil, fmt.Errorf("tokenize: %s: tokenizer failed: %v", what, p)
		}
	}()
	full := func() bool { return err != nil || limit > 0 && len(ids) >= limit }
	word := func(w string) {
		if full() {
			return
		}
		toks, terr := e.model.Tokenize(w)
		if terr != nil {
			err = fmt.Errorf("tokenize: %s: %w", what, terr)
			return
		}
		for _, t := range toks {
			ids = append(ids, int64(t.Id))
		}
	}
	e.text.split(text, func(piece string) {
		for piece != "" && !full() {
			// Cutting before a whitespace character changes nothing: whitespace ends a
			// word and no normalization step looks across it.
			chunk := piece
			if len(piece) > chunkBytes {
				if cut := strings.IndexFunc(piece[chunkBytes:], unicode.IsSpace); cut >= 0 {
					chunk = piece[:chunkBytes+cut]
				}
			}
			piece = piece[len(chunk):]
			preTokenize(e.text.normalize(chunk), word)
		}
	}, func(id int) {
		if !full() {
			ids = append(ids, int64(id))
		}
	})
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}

// protect turns a panic inside the tokenizer library into an error.
func protect(f func() (*tokenizer.Encoding, error)) (enc *tokenizer.Encoding, err error) {
	defer func() {
		if p := recover(); p != nil {
			enc, err = nil, fmt.Errorf("tokenizer failed: %v", p)
		}
	}()
	return f()
}

func (e *Encoder) assemble(q, d []int64) Pair {
	n := len(q) + len(d) + specials
	p := Pair{IDs: make([]int64, 0, n), TypeIDs: make([]int64, n)}
	p.IDs = append(p.IDs, e.cls)
	p.IDs = append(p.IDs, q...)
	p.IDs = append(p.IDs, e.sep)
	p.IDs = append(p.IDs, d...)
	p.IDs = append(p.IDs, e.sep)
	for i := len(q) + 2; i < n; i++ {
		p.TypeIDs[i] = 1
	}
	return p
}

func toInt64(ids []int) []int64 {
	out := make([]int64, len(ids))
	for i, v := range ids {
		out[i] = int64(v)
	}
	return out
}
