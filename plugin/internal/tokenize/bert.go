package tokenize

import (
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// The steps before WordPiece, written after tokenizers' Rust sources
// (normalizers/bert.rs, pre_tokenizers/bert.rs, tokenizer/added_vocabulary.rs)
// because sugarme/tokenizer v0.3.0 departs from them: it ignores
// "strip_accents": null (Hugging Face then strips accents when lowercasing),
// strips marks without decomposing first (so "café" becomes [UNK], not "cafe"),
// treats only ASCII as whitespace, and mis-orders its added-token matches (so a
// literal "[SEP]" in a document is not the special token, as it is for HF).
// These steps only build strings; the vocabulary lookup stays with the library.

// fileConfig is the part of tokenizer.json that these steps need.
type fileConfig struct {
	AddedTokens []addedToken `json:"added_tokens"`
	Normalizer  *struct {
		Type               string `json:"type"`
		CleanText          bool   `json:"clean_text"`
		HandleChineseChars bool   `json:"handle_chinese_chars"`
		StripAccents       *bool  `json:"strip_accents"`
		Lowercase          bool   `json:"lowercase"`
	} `json:"normalizer"`
	PreTokenizer *struct {
		Type string `json:"type"`
	} `json:"pre_tokenizer"`
	Model struct {
		Type string `json:"type"`
	} `json:"model"`
}

type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	Lstrip     bool   `json:"lstrip"`
	Rstrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
}

// bertText holds the normalizer flags and the added tokens of one tokenizer.json.
type bertText struct {
	cleanText, chinese, stripAccents, lowercase bool
	added                                       []addedToken
	first                                       [256]bool // first bytes of added tokens: a cheap pre-check
}

func newBertText(cfg fileConfig) (*bertText, error) {
	if cfg.Model.Type != "WordPiece" {
		return nil, fmt.Errorf("model type %q is not WordPiece; only BERT-style tokenizers are supported", cfg.Model.Type)
	}
	if cfg.PreTokenizer == nil || cfg.PreTokenizer.Type != "BertPreTokenizer" {
		return nil, fmt.Errorf("pre_tokenizer is not BertPreTokenizer; only BERT-style tokenizers are supported")
	}
	b := &bertText{}
	if n := cfg.Normalizer; n != nil {
		if n.Type != "BertNormalizer" {
			return nil, fmt.Errorf("normalizer type %q is not BertNormalizer; only BERT-style tokenizers are supported", n.Type)
		}
		b.cleanText, b.chinese, b.lowercase = n.CleanText, n.HandleChineseChars, n.Lowercase
		// null means "follow lowercase" (tokenizers' BertNormalizer and transformers' BasicTokenizer).
		b.stripAccents = n.Lowercase
		if n.StripAccents != nil {
			b.stripAccents = *n.StripAccents
		}
	}
	for _, t := range cfg.AddedTokens {
		if t.SingleWord || t.Lstrip || t.Rstrip || t.Normalized || t.Content == "" {
			return nil, fmt.Errorf("added token %q uses options (single_word/lstrip/rstrip/normalized) that are not supported", t.Content)
		}
	}
	b.added = cfg.AddedTokens
	for _, t := range b.added {
		b.first[t.Content[0]] = true
	}
	return b, nil
}

// split cuts raw text at added tokens (leftmost, longest match first, as
// tokenizers' Aho-Corasick matcher does) and calls text for each piece between
// them and token for each added token, in order.
func (b *bertText) split(s string, text func(string), token func(id int)) {
	start := 0
	for i := 0; i < len(s); i++ {
		if !b.first[s[i]] {
			continue
		}
		best := -1
		for k, t := range b.added {
			if strings.HasPrefix(s[i:], t.Content) && (best < 0 || len(t.Content) > len(b.added[best].Content)) {
				best = k
			}
		}
		if best < 0 {
			continue
		}
		if start < i {
			text(s[start:i])
		}
		token(b.added[best].ID)
		i += len(b.added[best].Content) - 1
		start = i + 1
	}
	if start < len(s) {
		text(s[start:])
	}
}

// normalize applies BertNormalizer: drop control characters and map whitespace
// to ' ', pad CJK ideographs with spaces, strip accents (NFD, drop nonspacing
// marks), lowercase, in tokenizers' order.
func (b *bertText) normalize(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	for _, r := range s {
		switch {
		case b.cleanText && (r == 0 || r == unicode.ReplacementChar || isControl(r)):
		case b.cleanText && isWhitespace(r):
			sb.WriteByte(' ')
		case b.chinese && isChinese(r):
			sb.WriteByte(' ')
			sb.WriteRune(r)
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	s = sb.String()
	if b.stripAccents {
		s = strings.Map(func(r rune) rune {
			if unicode.Is(unicode.Mn, r) {
				return -1
			}
			return r
		}, norm.NFD.String(s))
	}
	if b.lowercase {
		s = lower(s)
	}
	return s
}

// lower is Rust's char::to_lowercase applied per character: Unicode's simple
// mapping except U+0130 (İ), whose full lowercase is two characters.
func lower(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range s {
		if r == '\u0130' {
			sb.WriteString("i\u0307")
			continue
		}
		sb.WriteRune(unicode.ToLower(r))
	}
	return sb.String()
}

// preTokenize applies BertPreTokenizer: split on whitespace (dropped) and isolate
// every punctuation character.
func preTokenize(s string, word func(string)) {
	start := -1
	for i, r := range s {
		ws, punct := unicode.IsSpace(r), isPunctuation(r)
		if (ws || punct) && start >= 0 {
			word(s[start:i])
			start = -1
		}
		switch {
		case punct:
			word(string(r))
		case !ws && start < 0:
			start = i
		}
	}
	if start >= 0 {
		word(s[start:])
	}
}

// isWhitespace is tokenizers' BERT whitespace: \t \n \r and the Unicode White_Space property.
func isWhitespace(r rune) bool { return unicode.IsSpace(r) }

// isControl is unicode_categories' is_other (Cc, Cf, Co) without \t \n \r, which count as whitespace.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co)
}

// isPunctuation is ASCII punctuation (which includes symbols such as $ + < = > ^ ` | ~)
// or a Unicode punctuation category (P*).
func isPunctuation(r rune) bool {
	if r < 0x80 {
		return r >= 0x21 && r <= 0x2f || r >= 0x3a && r <= 0x40 || r >= 0x5b && r <= 0x60 || r >= 0x7b && r <= 0x7e
	}
	return unicode.In(r, unicode.P)
}

// isChinese is the CJK ideograph ranges of tokenizers' normalizers/bert.rs.
func isChinese(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF ||
		r >= 0x3400 && r <= 0x4DBF ||
		r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F ||
		r >= 0x2B740 && r <= 0x2B81F ||
		r >= 0x2B920 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF ||
		r >= 0x2F800 && r <= 0x2FA1F
}
