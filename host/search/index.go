// Package search is the first stage: a BM25 index on disk (bleve, scorch)
// over one searchable field holding a document's title and text, with title
// and text stored so hits carry them to the reranker and the page.
package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/mapping"
	bsearch "github.com/blevesearch/bleve/v2/search"
	index "github.com/blevesearch/bleve_index_api"
	bbolterrors "go.etcd.io/bbolt/errors"

	"github.com/rerankloop/rerank/evalharness/dataset"
)

// Field names in the bleve documents.
const (
	fieldAll   = "all" // title + text, analyzed, not stored
	fieldTitle = "title"
	fieldText  = "text"
)

// metaKey holds Meta in the index's internal storage; its presence marks a
// folder as an index this package built.
var metaKey = []byte("rerank.meta")

// Analyzers that Build accepts.
var Analyzers = []string{en.AnalyzerName, standard.Name}

// Options configure Build.
type Options struct {
	// Analyzer of the searchable field: "en" (default) or "standard".
	Analyzer string
	// BatchSize is the number of documents per index batch (default 1000).
	BatchSize int
	// ExpectedDocs, when known, is passed to progress as the total; 0 means unknown (-1).
	ExpectedDocs int
}

// Meta describes a built index.
type Meta struct {
	Analyzer string    `json:"analyzer"`
	Docs     int       `json:"docs"`
	Built    time.Time `json:"built"`
}

// Hit is one search result.
type Hit struct {
	ID    string
	Title string
	Text  string
	Score float64
}

// Doc is a stored document.
type Doc = dataset.Doc

// ErrNotFound is returned by Get for an unknown id.
var ErrNotFound = errors.New("document not found")

// SetBM25 sets BM25's k1 and b. bleve keeps them in process-wide variables,
// so they apply to every index of the process; call it once at start, before
// any search runs.
func SetBM25(k1, b float64) error {
	if !(k1 > 0) || math.IsInf(k1, 0) {
		return fmt.Errorf("bm25 k1 must be positive, got %g", k1)
	}
	if !(b >= 0 && b <= 1) {
		return fmt.Errorf("bm25 b must be within [0, 1], got %g", b)
	}
	bsearch.BM25_k1, bsearch.BM25_b = k1, b
	return nil
}

func newMapping(analyzer string) (*mapping.IndexMappingImpl, error) {
	switch analyzer {
	case en.AnalyzerName, standard.Name:
	default:
		return nil, fmt.Errorf("unknown analyzer %q (want one of %s)", analyzer, strings.Join(Analyzers, ", "))
	}
	// Only the combined field is indexed: across fields bleve sums per-field
	// scores (not BM25F), which measured worse on SciFact than one field.
	all := mapping.NewTextFieldMapping()
	all.Analyzer = analyzer
	all.Store = false
	all.IncludeTermVectors = false
	all.IncludeInAll = false
	all.DocValues = false

	stored := func() *mapping.FieldMapping {
		f := mapping.NewTextFieldMapping()
		f.Index = false
		f.Store = true
		f.IncludeTermVectors = false
		f.IncludeInAll = false
		f.DocValues = false
		return f
	}
	dm := mapping.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt(fieldAll, all)
	dm.AddFieldMappingsAt(fieldTitle, stored())
	dm.AddFieldMappingsAt(fieldText, stored())

	im := bleve.NewIndexMapping()
	im.DefaultMapping = dm
	im.DefaultAnalyzer = analyzer
	im.ScoringModel = index.BM25Scoring
	im.StoreDynamic = false
	im.IndexDynamic = false
	im.DocValuesDynamic = false
	return im, nil
}

func bleveDoc(d Doc) map[string]any {
	return map[string]any{
		fieldAll:   d.Title + "\n" + d.Text,
		fieldTitle: d.Title,
		fieldText:  d.Text,
	}
}

// Build indexes every document read yields into a new index at dir,
// replacing an index already there. It builds in a folder beside dir and
// swaps it in only when complete, so an interrupted or failed build leaves
// the previous index (or none) in place, never a partial one. progress, when
// not nil, is called after every batch with the documents indexed so far.
func Build(ctx context.Context, dir string, read func(func(Doc) error) error, opts Options, progress func(done, total int)) (err error) {
	if opts.Analyzer == "" {
		opts.Analyzer = en.AnalyzerName
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	total := opts.ExpectedDocs
	if total <= 0 {
		total = -1
	}
	if progress == nil {
		progress = func(int, int) {}
	}
	im, err := newMapping(opts.Analyzer)
	if err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	if err := replaceable(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work) // the finished index has been moved out by then
	built := filepath.Join(work, "index")

	idx, err := bleve.New(built, im)
	if err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	defer func() {
		if idx != nil {
			idx.Close()
		}
	}()

	batch := idx.NewBatch()
	done := 0
	flush := func() error {
		if batch.Size() == 0 {
			return nil
		}
		if err := idx.Batch(batch); err != nil {
			return fmt.Errorf("index batch: %w", err)
		}
		batch.Reset()
		progress(done, total)
		return nil
	}
	err = read(func(d Doc) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.ID == "" {
			return errors.New("document with an empty id")
		}
		if err := batch.Index(d.ID, bleveDoc(d)); err != nil {
			return fmt.Errorf("document %q: %w", d.ID, err)
		}
		done++
		if batch.Size() >= opts.BatchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	n, err := idx.DocCount()
	if err != nil {
		return err
	}
	meta, _ := json.Marshal(Meta{Analyzer: opts.Analyzer, Docs: int(n), Built: time.Now().UTC()})
	if err := idx.SetInternal(metaKey, meta); err != nil {
		return err
	}
	err = idx.Close()
	idx = nil
	if err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return swapIn(built, dir, work)
}

// replaceable refuses to build over a folder that holds anything but a bleve
// index, so a mistyped --index cannot wipe unrelated files.
func replaceable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "index_meta.json")); err != nil {
		return fmt.Errorf("refusing to replace %s: it is not empty and holds no index (no index_meta.json)", dir)
	}
	return nil
}

// swapIn moves the finished index at built to dir. An existing dir is
// exchanged atomically where the system can (Linux renameat2), else moved
// aside first; the old index ends up in work, which the caller removes.
func swapIn(built, dir, work string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return os.Rename(built, dir)
	}
	if err := exchange(built, dir); err == nil {
		return nil
	}
	if err := os.Remove(dir); err == nil { // an empty folder
		return os.Rename(built, dir)
	}
	if err := os.Rename(dir, filepath.Join(work, "old")); err != nil {
		return err
	}
	return os.Rename(built, dir)
}

// lockWait is how long Open waits for another process to release the index.
const lockWait = 2 * time.Second

// Index is an open index. Its methods are safe for concurrent use.
type Index struct {
	idx      bleve.Index
	meta     Meta
	analyzer analysis.Analyzer
}

// Open opens an index that Build made.
func Open(dir string) (*Index, error) {
	if _, err := os.Stat(filepath.Join(dir, "index_meta.json")); err != nil {
		return nil, fmt.Errorf("open index %s: no index there (build one with `rerank index`)", dir)
	}
	// Without a timeout a second process opening the index waits forever
	// on its lock.
	idx, err := bleve.OpenUsing(dir, map[string]any{"bolt_timeout": lockWait.String()})
	if errors.Is(err, bbolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open index %s: in use by another process (a running `rerank serve`?)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	raw, err := idx.GetInternal(metaKey)
	if err == nil && raw == nil {
		err = errors.New("not built by `rerank index` (no metadata)")
	}
	var meta Meta
	if err == nil {
		err = json.Unmarshal(raw, &meta)
	}
	if err != nil {
		idx.Close()
		return nil, fmt.Errorf("open index %s: %w", dir, err)
	}
	an := idx.Mapping().AnalyzerNamed(meta.Analyzer)
	if an == nil {
		idx.Close()
		return nil, fmt.Errorf("open index %s: unknown analyzer %q", dir, meta.Analyzer)
	}
	return &Index{idx: idx, meta: meta, analyzer: an}, nil
}

// Meta describes how the index was built.
func (x *Index) Meta() Meta { return x.meta }

// Close closes the index.
func (x *Index) Close() error { return x.idx.Close() }

// Count is the number of documents.
func (x *Index) Count() (int, error) {
	n, err := x.idx.DocCount()
	return int(n), err
}

// Search returns BM25's hits from..from+k-1 for query (best first; equal
// scores in index order, so pages are stable while the index is unchanged;
// sorting ties by id instead cost 40% more time) and the number of matching
// documents. The query is analyzed like the documents; no query syntax is
// interpreted, so any text is safe to pass.
func (x *Index) Search(ctx context.Context, query string, k, from int) ([]Hit, int, error) {
	if k < 0 || from < 0 {
		return nil, 0, fmt.Errorf("search: k and from must not be negative (k=%d, from=%d)", k, from)
	}
	q := bleve.NewMatchQuery(query)
	q.SetField(fieldAll)
	req := bleve.NewSearchRequestOptions(q, k, from, false)
	req.Fields = []string{fieldTitle, fieldText}
	res, err := x.idx.SearchInContext(ctx, req)
	if err != nil {
		return nil, 0, fmt.Errorf("search: %w", err)
	}
	hits := make([]Hit, len(res.Hits))
	for i, h := range res.Hits {
		hits[i] = Hit{ID: h.ID, Score: h.Score, Title: str(h.Fields[fieldTitle]), Text: str(h.Fields[fieldText])}
	}
	return hits, int(res.Total), nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// Get returns the stored document id, or ErrNotFound.
func (x *Index) Get(id string) (Doc, error) {
	d, err := x.idx.Document(id)
	if err != nil {
		return Doc{}, err
	}
	if d == nil {
		return Doc{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	doc := Doc{ID: id}
	d.VisitFields(func(f index.Field) {
		switch f.Name() {
		case fieldTitle:
			doc.Title = string(f.Value())
		case fieldText:
			doc.Text = string(f.Value())
		}
	})
	return doc, nil
}

// Put adds docs, replacing documents with the same ids, in one batch: all
// are visible to searches from the same moment on.
func (x *Index) Put(docs ...Doc) error {
	b := x.idx.NewBatch()
	for _, d := range docs {
		if d.ID == "" {
			return errors.New("document id must not be empty")
		}
		if err := b.Index(d.ID, bleveDoc(d)); err != nil {
			return fmt.Errorf("document %q: %w", d.ID, err)
		}
	}
	return x.idx.Batch(b)
}

// Delete removes document id; it reports ErrNotFound if there was none.
func (x *Index) Delete(id string) error {
	if _, err := x.Get(id); err != nil {
		return err
	}
	return x.idx.Delete(id)
}
