// Package engine is the plugin's implementation of contract.Reranker: it owns
// the loaded models and the one OS thread that runs inference on them, and
// batches concurrent Rerank calls together (micro-batching).
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/rerankloop/rerank/plugin/checkpoint"
	"github.com/rerankloop/rerank/plugin/contract"
	"github.com/rerankloop/rerank/plugin/embcache"
	"github.com/rerankloop/rerank/plugin/internal/bert"
	"github.com/rerankloop/rerank/plugin/internal/tokenize"
)

// Options configure scoring.
type Options struct {
	// Device is "auto" (CUDA when available), "cpu" or "cuda".
	Device string
	// Threads is ATen's intra-op thread count (0: libtorch's default).
	Threads int
	// MaxLength truncates each (query, document) pair, in tokens (default 512).
	MaxLength int
	// BatchSize is the most pairs in one forward pass (default 32 on CPU,
	// 256 on CUDA).
	BatchSize int
	// BatchTokens is the most padded tokens (pairs x the longest) in one
	// forward pass. Pairs run longest first, so short pairs share larger
	// batches. 0 is the default: cpuBatchTokens on CPU, 65536 on CUDA (256
	// pairs of 256 tokens); negative: no limit.
	BatchTokens int
	// Precision is the arithmetic of forward passes: auto (bf16 autocast
	// and TF32 matrix products on CUDA, fp32 on CPU), fp32, bf16 or fp16
	// (see bert.Precision). Scores come back as float32 either way.
	Precision string
	// Window scores long documents as overlapping windows and keeps the best
	// window's score instead of truncating; Stride is the overlap in tokens.
	Window bool
	Stride int
	// MaxWait is how long the model thread waits for more requests to fill a
	// batch once one has arrived (default 2 ms).
	MaxWait time.Duration
	// MaxDocuments and MaxQueryBytes bound one request.
	MaxDocuments  int
	MaxQueryBytes int
	// MaxPendingTokens bounds the work queued for the model thread, in
	// tokens of the inputs still to run (default 262144: 512 pairs of 512
	// tokens, some 40 s of a MiniLM cross-encoder on 2 CPU cores): a request
	// above it alone is ErrTooLarge, one that would overflow it while others
	// wait ErrOverloaded.
	MaxPendingTokens int
	// Seed initialises a fresh head when a plain encoder is loaded.
	Seed uint64
	// CacheDir keeps bi-encoders' document embeddings across restarts, a
	// file per model (see embcache); empty: a temporary folder removed by Close.
	CacheDir string
	Log      *slog.Logger
}

func (o *Options) defaults() {
	if o.Device == "" {
		o.Device = "auto"
	}
	if o.MaxLength <= 0 {
		o.MaxLength = 512
	}
	if o.Stride <= 0 {
		o.Stride = 64
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Millisecond
	}
	if o.MaxDocuments <= 0 {
		o.MaxDocuments = 1000
	}
	if o.MaxQueryBytes <= 0 {
		o.MaxQueryBytes = 64 << 10
	}
	if o.MaxPendingTokens <= 0 {
		o.MaxPendingTokens = 1 << 18
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// loaded is one model with its tokenizer and, for a bi-encoder, the cache
// of its document embeddings.
type loaded struct {
	model *bert.Model
	tok   *tokenize.Encoder
	info  contract.ModelInfo
	cache *embcache.Cache
}

func (l *loaded) biEncoder() bool { return l.model.Cfg.Kind == checkpoint.BiEncoder }

// free releases the weights and the model's hold on its cache; on the
// model thread only.
func (e *Engine) free(l *loaded) {
	l.model.Free()
	if l.cache == nil {
		return
	}
	e.cacheMu.Lock()
	defer e.cacheMu.Unlock()
	ref := e.caches[l.cache.Path()]
	if ref.refs--; ref.refs > 0 {
		return
	}
	delete(e.caches, l.cache.Path())
	if err := l.cache.Close(); err != nil {
		e.opts.Log.Warn("closing the embedding cache", "err", err)
	}
}

// cacheRef is an open embedding cache and how many loaded models use it:
// two versions with the same weights (a rollback, an A/A experiment) share
// one file, which bbolt lets only one handle open.
type cacheRef struct {
	c    *embcache.Cache
	refs int
}

// pair is one encoded input: a (query, document or window) pair for a
// cross-encoder, one text for a bi-encoder.
type pair struct {
	enc tokenize.Pair
	req *request
	doc int // index of the document (cross-encoder) or text (bi-encoder) in req
}

type request struct {
	ctx   context.Context
	model string // as requested: "" is whichever model serves
	// want is the model whose tokenizer encoded the pairs; the model thread
	// refuses the request with errModelChanged if another one serves by then.
	want   *loaded
	pairs  []pair
	scores []float32   // cross-encoder: per document, max over its windows
	vecs   [][]float32 // bi-encoder: per text, its embedding
	done   chan error
	// version is the model that scored it, set on the model thread.
	version string
}

// errModelChanged: a swap happened between encoding and scoring; Rerank
// encodes again for the model that serves now.
var errModelChanged = errors.New("the model changed while the request was queued")

// Engine implements contract.Reranker.
type Engine struct {
	opts      Options
	device    gotch.Device
	precision bert.Precision

	mu      sync.RWMutex
	models  map[string]*loaded
	serving string

	queue chan *request
	calls chan func() // work that must run on the model thread (load, free)
	stop  chan struct{}
	wg    sync.WaitGroup
	// tmpCache is the temporary CacheDir when none was given.
	tmpCache string
	cacheMu  sync.Mutex
	caches   map[string]*cacheRef // by file
	// progress is when the model thread last finished a forward pass or a
	// task (unix nanoseconds): Health tells a busy thread from a stuck one.
	progress atomic.Int64
	// pending is the tokens of the requests submitted and not answered.
	pending atomic.Int64
}

// progressWindow: a model thread that finished nothing for this long while
// busy is stuck (one forward pass of 32 pairs of 512 tokens takes 1-2 s on
// 2 CPU cores).
const progressWindow = 10 * time.Second

// New starts the model thread. Close stops it.
func New(opts Options) (*Engine, error) {
	opts.defaults()
	e := &Engine{opts: opts, models: map[string]*loaded{},
		queue: make(chan *request, 1024), calls: make(chan func()), stop: make(chan struct{}), caches: map[string]*cacheRef{}}
	switch opts.Device {
	case "auto":
		e.device = gotch.CudaIfAvailable()
	case "cpu":
		e.device = gotch.CPU
	case "cuda":
		if !gotch.CUDA.IsAvailable() {
			return nil, fmt.Errorf("device cuda requested but libtorch reports no CUDA device")
		}
		e.device = gotch.CudaIfAvailable()
	default:
		return nil, fmt.Errorf("unknown device %q (want auto, cpu or cuda)", opts.Device)
	}
	var err error
	if e.precision, err = bert.ParsePrecision(opts.Precision, e.device); err != nil {
		return nil, err
	}
	batchSize, batchTokens := 32, cpuBatchTokens
	if e.device != gotch.CPU {
		batchSize, batchTokens = 256, 1<<16
		// TF32 follows the precision: an explicit fp32 keeps exact float32 products.
		if err := bert.SetTF32(e.precision != bert.FP32); err != nil {
			return nil, err
		}
	}
	if e.opts.BatchSize <= 0 {
		e.opts.BatchSize = batchSize
	}
	if e.opts.BatchTokens == 0 {
		e.opts.BatchTokens = batchTokens
	}
	if opts.CacheDir == "" {
		dir, err := os.MkdirTemp("", "rerank-embeddings-")
		if err != nil {
			return nil, err
		}
		e.opts.CacheDir, e.tmpCache = dir, dir
	}
	started := make(chan struct{})
	e.wg.Add(1)
	go e.run(started)
	<-started
	return e, nil
}

// Device names where the models run.
func (e *Engine) Device() string {
	if e.device == gotch.CPU {
		return "cpu"
	}
	return fmt.Sprintf("cuda:%d", e.device.Value)
}

// Close stops the model thread and frees every model.
func (e *Engine) Close() {
	e.onThread(func() {
		e.mu.Lock()
		for _, l := range e.models {
			e.free(l)
		}
		e.models = map[string]*loaded{}
		e.mu.Unlock()
	})
	close(e.stop)
	e.wg.Wait()
	if e.tmpCache != "" {
		os.RemoveAll(e.tmpCache)
	}
}

// onThread runs fn on the model thread and waits for it.
func (e *Engine) onThread(fn func()) {
	done := make(chan struct{})
	e.calls <- func() { fn(); close(done) }
	<-done
}

func (e *Engine) run(started chan struct{}) {
	defer e.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	bert.SetThreads(e.opts.Threads)
	if e.device == gotch.CPU {
		bert.CacheInferenceMemory()
	}
	ts.MustGradSetEnabled(false) // grad mode is per thread: this one only infers
	close(started)
	for {
		e.progress.Store(time.Now().UnixNano())
		select {
		case <-e.stop:
			return
		case fn := <-e.calls:
			fn()
		case r := <-e.queue:
			e.process(e.collect(r))
		}
	}
}

// collect gathers the requests that arrive while the first one waits, until
// a batch is full or MaxWait has passed: under load, calls share forwards.
func (e *Engine) collect(first *request) []*request {
	reqs := []*request{first}
	n := len(first.pairs)
	timer := time.NewTimer(e.opts.MaxWait)
	defer timer.Stop()
	for n < e.opts.BatchSize {
		select {
		case r := <-e.queue:
			reqs = append(reqs, r)
			n += len(r.pairs)
		case <-timer.C:
			return reqs
		}
	}
	return reqs
}

// process scores the pairs of reqs model by model, longest first, in
// batches padded to their own longest pair. Each request is answered exactly
// once: its done channel has one slot and nobody reads a second answer, so a
// second send would block the model thread for good.
func (e *Engine) process(reqs []*request) {
	byModel := map[string][]*request{}
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		byModel[r.model] = append(byModel[r.model], r)
	}
	for name, rs := range byModel {
		// Resolved here, not when queued, so a swap between the two never
		// fails a request: it is scored by whichever model serves now.
		l, err := e.lookup(name)
		if err == nil {
			rs = e.current(l, rs)
			err = e.score(l, rs)
		}
		for _, r := range rs {
			if l != nil {
				r.version = l.info.Version
			}
			if cerr := r.ctx.Err(); cerr != nil {
				r.done <- cerr
			} else {
				r.done <- err
			}
		}
	}
}

// current answers the requests encoded for another model than l with
// errModelChanged and returns the others.
func (e *Engine) current(l *loaded, rs []*request) []*request {
	var keep []*request
	for _, r := range rs {
		if r.want != l {
			r.done <- errModelChanged
			continue
		}
		keep = append(keep, r)
	}
	return keep
}

// score runs the pairs of rs in batches. Cancellation is checked before
// every forward pass: the pairs of a request nobody waits for any more are
// dropped, so an abandoned window does not hold the model thread.
func (e *Engine) score(l *loaded, rs []*request) error {
	var pairs []pair
	for _, r := range rs {
		pairs = append(pairs, r.pairs...)
	}
	sort.SliceStable(pairs, func(i, j int) bool { return len(pairs[i].enc.IDs) > len(pairs[j].enc.IDs) })
	var chunk []pair
	for next := 0; next < len(pairs); {
		chunk = chunk[:0]
		for ; next < len(pairs) && e.fits(chunk, pairs[next]); next++ {
			if pairs[next].req.ctx.Err() == nil {
				chunk = append(chunk, pairs[next])
			}
		}
		if len(chunk) == 0 {
			break
		}
		encs := make([]tokenize.Pair, len(chunk))
		for i, p := range chunk {
			encs[i] = p.enc
		}
		e.progress.Store(time.Now().UnixNano())
		b := bert.NewBatch(encs, l.tok.PadID())
		if l.biEncoder() {
			if err := embed(l, b, chunk); err != nil {
				return err
			}
			continue
		}
		logits, err := l.model.Forward(b, false)
		if err != nil {
			return err
		}
		vals := make([]float32, b.Size)
		err = logits.CopyData(vals, uint(b.Size))
		logits.Drop()
		if err != nil {
			return err
		}
		for i, p := range chunk {
			if s := &p.req.scores[p.doc]; vals[i] > *s {
				*s = vals[i]
			}
		}
	}
	return nil
}

// cpuBatchTokens is the CPU's default token budget of a forward pass: past
// it, the CPU time per pair grows with the batch (its intermediate tensors
// outgrow the caches, and padding grows), measured on 2 cores with MiniLM.
const cpuBatchTokens = 4096

// fits says whether p joins chunk, whose pairs are sorted longest first.
func (e *Engine) fits(chunk []pair, p pair) bool {
	if len(chunk) == 0 {
		return true
	}
	if len(chunk) >= e.opts.BatchSize {
		return false
	}
	return e.opts.BatchTokens < 0 || (len(chunk)+1)*len(chunk[0].enc.IDs) <= e.opts.BatchTokens
}

// embed stores the embedding of each text of chunk in its request.
func embed(l *loaded, b bert.Batch, chunk []pair) error {
	t, err := l.model.Embed(b, l.model.Cfg.Sentence, false)
	if err != nil {
		return err
	}
	defer t.Drop()
	dim := l.model.Cfg.Sentence.Dim
	vals := make([]float32, b.Size*dim)
	if err := t.CopyData(vals, uint(len(vals))); err != nil {
		return err
	}
	for i, p := range chunk {
		p.req.vecs[p.doc] = vals[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return nil
}

// encodePerWorker is the fewest inputs worth a goroutine of their own.
const encodePerWorker = 8

// encodeAll runs encode for inputs 0..n-1 on up to GOMAXPROCS goroutines and
// returns the results in order, or the error of the first failing input: a
// GPU scores pairs faster than one core tokenizes them.
func encodeAll(n int, encode func(i int) ([]tokenize.Pair, error)) ([][]tokenize.Pair, error) {
	out, errs := make([][]tokenize.Pair, n), make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), n/encodePerWorker)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				out[i], errs[i] = encode(i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Rerank tokenizes on the caller's goroutine (with helpers for long lists),
// queues the inputs for the model thread and waits for their scores or the
// context's end. A swap between the two makes it encode again for the new
// model (at most twice).
func (e *Engine) Rerank(ctx context.Context, req contract.RerankRequest) (contract.RerankResponse, error) {
	for attempt := 0; ; attempt++ {
		l, err := e.lookup(req.Model)
		if err != nil {
			return contract.RerankResponse{}, err
		}
		if err := e.validate(req); err != nil {
			return contract.RerankResponse{}, err
		}
		var resp contract.RerankResponse
		if l.biEncoder() {
			resp, err = e.rerankBi(ctx, l, req)
		} else {
			resp, err = e.rerankCross(ctx, l, req)
		}
		if errors.Is(err, errModelChanged) && attempt < 2 {
			continue
		}
		return resp, err
	}
}

func (e *Engine) rerankCross(ctx context.Context, l *loaded, req contract.RerankRequest) (contract.RerankResponse, error) {
	r := &request{ctx: ctx, model: req.Model, want: l, scores: make([]float32, len(req.Documents)), done: make(chan error, 1)}
	encs, err := encodeAll(len(req.Documents), func(i int) ([]tokenize.Pair, error) {
		d := req.Documents[i]
		var encs []tokenize.Pair
		var err error
		if e.opts.Window {
			encs, err = l.tok.EncodePairWindows(req.Query, d.Text, e.opts.MaxLength, e.opts.Stride)
		} else {
			var p tokenize.Pair
			p, err = l.tok.EncodePair(req.Query, d.Text, e.opts.MaxLength)
			encs = []tokenize.Pair{p}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: document %d (%q): %v", contract.ErrInvalidRequest, i, d.ID, err)
		}
		return encs, nil
	})
	if err != nil {
		return contract.RerankResponse{}, err
	}
	for i, ps := range encs {
		r.scores[i] = float32(-3.4e38)
		for _, p := range ps {
			r.pairs = append(r.pairs, pair{enc: p, req: r, doc: i})
		}
	}
	if len(r.pairs) == 0 {
		return contract.RerankResponse{ModelVersion: l.info.Version, Scores: []float32{}, Ranking: []contract.Ranked{}}, nil
	}
	if err := e.submit(ctx, r); err != nil {
		return contract.RerankResponse{}, err
	}
	return respond(req, r.scores, r.version), nil
}

// rerankBi embeds the query and the documents whose embeddings are not
// cached yet, stores the new ones, and scores each document by the model's
// similarity (cosine or dot product) to the query.
func (e *Engine) rerankBi(ctx context.Context, l *loaded, req contract.RerankRequest) (contract.RerankResponse, error) {
	keys := make([]embcache.Key, len(req.Documents))
	for i, d := range req.Documents {
		keys[i] = embcache.KeyOf(d.Text)
	}
	vecs, _, err := l.cache.Get(keys)
	if errors.Is(err, embcache.ErrClosed) {
		return contract.RerankResponse{}, errModelChanged // retired by a swap
	}
	if err != nil {
		return contract.RerankResponse{}, fmt.Errorf("embedding cache of %s: %w", l.info.Version, err)
	}
	// The texts to embed: the query, then each document text not cached,
	// once; missing maps a text's key to its position among them.
	texts, docOf := []string{req.Query}, []int{-1}
	missing := map[embcache.Key]int{}
	var newKeys []embcache.Key
	for i, d := range req.Documents {
		if vecs[i] != nil {
			continue
		}
		if _, ok := missing[keys[i]]; ok {
			continue
		}
		missing[keys[i]] = len(texts)
		newKeys = append(newKeys, keys[i])
		texts, docOf = append(texts, d.Text), append(docOf, i)
	}
	sentence := l.model.Cfg.Sentence
	encs, err := encodeAll(len(texts), func(i int) ([]tokenize.Pair, error) {
		p, err := l.tok.EncodeText(texts[i], sentence.MaxSeqLength)
		switch j := docOf[i]; {
		case err != nil && j < 0:
			return nil, fmt.Errorf("%w: query: %v", contract.ErrInvalidRequest, err)
		case err != nil:
			return nil, fmt.Errorf("%w: document %d (%q): %v", contract.ErrInvalidRequest, j, req.Documents[j].ID, err)
		}
		return []tokenize.Pair{p}, nil
	})
	if err != nil {
		return contract.RerankResponse{}, err
	}
	r := &request{ctx: ctx, model: req.Model, want: l, done: make(chan error, 1)}
	for i, ps := range encs {
		r.pairs = append(r.pairs, pair{enc: ps[0], req: r, doc: i})
	}
	r.vecs = make([][]float32, len(r.pairs))
	if err := e.submit(ctx, r); err != nil {
		return contract.RerankResponse{}, err
	}
	if len(newKeys) > 0 {
		fresh := make([][]float32, len(newKeys))
		for i, k := range newKeys {
			fresh[i] = r.vecs[missing[k]]
		}
		// The scores stand without the cache: a failed write costs time later, not this answer.
		if err := l.cache.Put(newKeys, fresh); err != nil && !errors.Is(err, embcache.ErrClosed) {
			e.opts.Log.Warn("storing document embeddings", "version", l.info.Version, "err", err)
		}
	}
	q := r.vecs[0]
	scores := make([]float32, len(req.Documents))
	for i := range req.Documents {
		d := vecs[i]
		if d == nil { // scored as the cache will give it back: the same score cold or warm
			d = embcache.Round(r.vecs[missing[keys[i]]])
		}
		scores[i] = bert.Similarity(sentence.Similarity, q, d)
	}
	return respond(req, scores, r.version), nil
}

// submit queues r for the model thread, within the pending-token budget,
// and waits for its answer.
func (e *Engine) submit(ctx context.Context, r *request) error {
	cost := 0
	for _, p := range r.pairs {
		cost += len(p.enc.IDs)
	}
	budget := int64(e.opts.MaxPendingTokens)
	if int64(cost) > budget {
		return fmt.Errorf("%w: %d tokens to score, over the model's budget of %d; send fewer or shorter documents", contract.ErrTooLarge, cost, budget)
	}
	if now := e.pending.Add(int64(cost)); now > budget {
		e.pending.Add(-int64(cost))
		return fmt.Errorf("%w: %d tokens queued, %d more would pass the budget of %d", contract.ErrOverloaded, now-int64(cost), cost, budget)
	}
	// A caller that gave up releases its share: the model thread drops its pairs.
	defer e.pending.Add(-int64(cost))
	select {
	case e.queue <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) validate(req contract.RerankRequest) error {
	switch {
	case strings.TrimSpace(req.Query) == "":
		return fmt.Errorf("%w: empty query", contract.ErrInvalidRequest)
	case len(req.Query) > e.opts.MaxQueryBytes:
		return fmt.Errorf("%w: query of %d bytes exceeds %d", contract.ErrInvalidRequest, len(req.Query), e.opts.MaxQueryBytes)
	case !utf8.ValidString(req.Query):
		return fmt.Errorf("%w: query is not valid UTF-8", contract.ErrInvalidRequest)
	case len(req.Documents) > e.opts.MaxDocuments:
		return fmt.Errorf("%w: %d documents exceed the limit of %d", contract.ErrInvalidRequest, len(req.Documents), e.opts.MaxDocuments)
	case req.TopN < 0:
		return fmt.Errorf("%w: top_n %d is negative", contract.ErrInvalidRequest, req.TopN)
	}
	for i, d := range req.Documents {
		if !utf8.ValidString(d.Text) {
			return fmt.Errorf("%w: document %d (%q) is not valid UTF-8", contract.ErrInvalidRequest, i, d.ID)
		}
	}
	return nil
}

// respond applies the sigmoid if asked and builds the ranking.
func respond(req contract.RerankRequest, scores []float32, version string) contract.RerankResponse {
	if req.Sigmoid {
		for i, s := range scores {
			scores[i] = sigmoid(s)
		}
	}
	ranking := make([]contract.Ranked, len(scores))
	for i, s := range scores {
		ranking[i] = contract.Ranked{Index: i, ID: req.Documents[i].ID, Score: s}
	}
	sort.SliceStable(ranking, func(i, j int) bool { return ranking[i].Score > ranking[j].Score })
	if req.TopN > 0 && req.TopN < len(ranking) {
		ranking = ranking[:req.TopN]
	}
	return contract.RerankResponse{Scores: scores, Ranking: ranking, ModelVersion: version}
}

func (e *Engine) lookup(version string) (*loaded, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if version == "" {
		version = e.serving
		if version == "" {
			return nil, fmt.Errorf("%w: no model is serving yet; call Load first", contract.ErrNoModel)
		}
	}
	l, ok := e.models[version]
	if !ok {
		return nil, fmt.Errorf("%w: %q", contract.ErrNoModel, version)
	}
	return l, nil
}

// Load reads a checkpoint and warms it on a thread of its own, so the
// serving model keeps answering meanwhile, then (if asked, or if nothing
// serves yet) makes it the serving model in one atomic switch. A model it
// replaces is freed on the model thread, after the batch in flight.
func (e *Engine) Load(ctx context.Context, req contract.LoadRequest) (contract.ModelInfo, error) {
	tok, err := tokenize.Load(filepath.Join(req.Path, checkpoint.TokenizerFile))
	if err != nil {
		return contract.ModelInfo{}, err
	}
	hash, err := checkpoint.Hash(req.Path)
	if err != nil {
		return contract.ModelInfo{}, fmt.Errorf("checkpoint %s: %w", req.Path, err)
	}
	if req.CheckpointHash != "" && req.CheckpointHash != hash {
		return contract.ModelInfo{}, fmt.Errorf("%w: %s holds weights %.12s, not the expected %.12s: the checkpoint changed since it was registered",
			contract.ErrInvalidRequest, filepath.Join(req.Path, checkpoint.WeightsFile), hash, req.CheckpointHash)
	}
	version := req.Version
	if version == "" {
		version = hash[:12]
	}
	var (
		m      *bert.Model
		report bert.LoadReport
		done   = make(chan struct{})
	)
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		ts.MustGradSetEnabled(false)
		m, report, err = bert.Load(req.Path, e.device, e.opts.Seed)
		if err != nil {
			return
		}
		m.Precision = e.precision
		if err = warm(m, tok); err != nil {
			m.Free()
		}
	}()
	<-done
	if err != nil {
		return contract.ModelInfo{}, err
	}
	var cache *embcache.Cache
	if m.Cfg.Kind == checkpoint.BiEncoder {
		if cache, err = e.openCache(req.Path, hash, m.Cfg); err != nil {
			e.onThread(m.Free)
			return contract.ModelInfo{}, err
		}
	}
	if len(report.Initialised) > 0 {
		e.opts.Log.Warn("checkpoint is a plain encoder: initialised a fresh classification head from the seed; scores are meaningless until it is fine-tuned",
			"path", req.Path, "tensors", report.Initialised, "seed", e.opts.Seed)
	}
	l := &loaded{model: m, tok: tok, cache: cache, info: contract.ModelInfo{
		Version: version, ModelID: fmt.Sprintf("bert L%d H%d", m.Cfg.NumLayers, m.Cfg.HiddenSize),
		Path: req.Path, CheckpointHash: hash, Device: e.Device(), Kind: m.Cfg.Kind.String(),
		MaxLength: min(e.opts.MaxLength, m.Cfg.MaxPositions)}}
	if cache != nil {
		l.info.MaxLength = m.Cfg.Sentence.MaxSeqLength
		l.info.EmbeddingCache = cache.Path()
	}
	// A caller that gave up (a host past its deadline) must not find the
	// plugin switched behind its back.
	if err := ctx.Err(); err != nil {
		e.onThread(func() { e.free(l) })
		return contract.ModelInfo{}, err
	}
	e.mu.Lock()
	var retired []*loaded
	if old, ok := e.models[version]; ok {
		retired = append(retired, old)
	}
	e.models[version] = l
	if req.Serve || e.serving == "" {
		if old, ok := e.models[e.serving]; ok && e.serving != version {
			retired = append(retired, old)
			delete(e.models, e.serving)
		}
		e.serving = version
	}
	info := l.info
	info.Serving = e.serving == version
	e.mu.Unlock()
	if len(retired) > 0 {
		e.onThread(func() {
			for _, old := range retired {
				e.free(old)
			}
		})
	}
	return info, nil
}

// Unload frees a model that is not serving; the serving one is only ever
// replaced (by a serving Load), so searches always have a model.
func (e *Engine) Unload(_ context.Context, version string) error {
	e.mu.Lock()
	l, ok := e.models[version]
	switch {
	case !ok:
		e.mu.Unlock()
		return fmt.Errorf("%w: %q", contract.ErrNoModel, version)
	case version == e.serving:
		e.mu.Unlock()
		return fmt.Errorf("%w: %q is serving; serve another model first", contract.ErrInvalidRequest, version)
	}
	delete(e.models, version)
	e.mu.Unlock()
	e.onThread(func() { e.free(l) })
	return nil
}

// openCache opens the embedding cache of a bi-encoder. Its name covers
// everything an embedding depends on besides the text: the weights, the
// tokenizer and the pooling settings, so no entry is ever reused for
// another model.
func (e *Engine) openCache(dir, weightsHash string, cfg checkpoint.Config) (*embcache.Cache, error) {
	tok, err := os.ReadFile(filepath.Join(dir, checkpoint.TokenizerFile))
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%+v\n", weightsHash, cfg.Sentence)
	h.Write(tok)
	if err := os.MkdirAll(e.opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("embedding cache: %w", err)
	}
	id := hex.EncodeToString(h.Sum(nil))[:32]
	e.cacheMu.Lock()
	defer e.cacheMu.Unlock()
	for _, ref := range e.caches {
		if filepath.Base(ref.c.Path()) == id+embcache.Ext {
			ref.refs++
			return ref.c, nil
		}
	}
	c, err := embcache.Open(e.opts.CacheDir, id, cfg.Sentence.Dim)
	if errors.Is(err, embcache.ErrCorrupt) || errors.Is(err, embcache.ErrMismatch) {
		// Embeddings can always be computed again: keep the damaged file for
		// inspection, start an empty one, and go on ranking.
		path := filepath.Join(e.opts.CacheDir, id+embcache.Ext)
		aside := fmt.Sprintf("%s.bad-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("embedding cache of %s: %w (and moving it aside failed: %v)", dir, err, rerr)
		}
		e.opts.Log.Error("embedding cache unusable: moved aside, embeddings are computed again", "err", err, "moved_to", aside)
		c, err = embcache.Open(e.opts.CacheDir, id, cfg.Sentence.Dim)
	}
	if err != nil {
		return nil, fmt.Errorf("embedding cache of %s: %w", dir, err)
	}
	e.caches[c.Path()] = &cacheRef{c: c, refs: 1}
	return c, nil
}

// warm runs one small forward so the first real request pays no set-up cost.
func warm(m *bert.Model, tok *tokenize.Encoder) error {
	if m.Cfg.Kind == checkpoint.BiEncoder {
		p, err := tok.EncodeText("warm up the model", 16)
		if err != nil {
			return err
		}
		emb, err := m.Embed(bert.NewBatch([]tokenize.Pair{p}, tok.PadID()), m.Cfg.Sentence, false)
		if err != nil {
			return err
		}
		emb.Drop()
		return nil
	}
	p, err := tok.EncodePair("warm up", "the model", 16)
	if err != nil {
		return err
	}
	logits, err := m.Forward(bert.NewBatch([]tokenize.Pair{p}, tok.PadID()), false)
	if err != nil {
		return err
	}
	logits.Drop()
	return nil
}

// Info lists the loaded models, the serving one first.
func (e *Engine) Info(context.Context) ([]contract.ModelInfo, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var infos []contract.ModelInfo
	for v, l := range e.models {
		info := l.info
		info.Serving = v == e.serving
		infos = append(infos, info)
	}
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].Serving != infos[j].Serving {
			return infos[i].Serving
		}
		return infos[i].Version < infos[j].Version
	})
	return infos, nil
}

// Health answers once the model thread takes a call, or while it is busy
// but finishing forward passes: a long window is not a hung plugin, a
// thread that finished nothing for progressWindow is.
func (e *Engine) Health(ctx context.Context) error {
	done := make(chan struct{})
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case e.calls <- func() { close(done) }:
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-poll.C:
			if time.Since(time.Unix(0, e.progress.Load())) < progressWindow {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func sigmoid(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}
