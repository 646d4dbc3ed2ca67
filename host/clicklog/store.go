// Package clicklog is the durable query and click log, the source of the
// training data: every search impression (the list shown, with scores, model
// version and experiment arm) and every click on it, kept in a bbolt database.
// LogSearch and LogClick return only once their commit is fsync'd, so an
// acknowledged event survives kill -9 or a crash; SubmitSearch lets a server
// answer before that fsync without losing click ordering. Export writes the
// log as JSONL for fine-tuning (impression.Read reads it back); Scan hands
// the same impressions to a caller in this process.
//
// Writes from concurrent callers are group-committed: one goroutine owns the
// write transactions and folds every request that arrived while the previous
// commit was syncing into the next one, so N concurrent writers cost about one
// fsync, not N, and a lone writer waits for no timer.
package clicklog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the data folder.
const FileName = "events.db"

// Buckets. A search's clicks sit under its id so that a click's checks and the
// export read one contiguous range.
var (
	bktSearches = []byte("searches") // search id -> Impression JSON
	bktByTime   = []byte("by_time")  // 8-byte big-endian UnixNano + search id -> empty
	bktClicks   = []byte("clicks")   // search id + 0x00 + 8-byte sequence -> Click JSON
)

// Errors to branch on with errors.Is; the returned errors wrap them with the
// details.
var (
	// ErrInvalid: the event breaks a limit or rule (message says which).
	ErrInvalid = errors.New("invalid event")
	// ErrUnknownSearch: a click names a search id that was never logged (or
	// was deleted by retention).
	ErrUnknownSearch = errors.New("unknown search id")
	// ErrNotShown: a click names a document the search did not show.
	ErrNotShown = errors.New("document not shown in that search")
	// ErrDuplicateSearch: the search id is already logged; nothing was written.
	ErrDuplicateSearch = errors.New("search id already logged")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("click log is closed")
)

// Limits on one event. They bound the work a single request can cause; the
// HTTP layer enforces its own (smaller) limits first.
const (
	maxIDLen           = 128  // search and event ids
	maxQueryBytes      = 8192 // query text
	maxFieldBytes      = 256  // user, session, model version, arm, team
	maxDocIDBytes      = 512
	maxResults         = 1000 // results per impression
	maxClicksPerSearch = 1000
	// DefaultClickDedupWindow is used when Options.ClickDedupWindow is 0.
	DefaultClickDedupWindow = 2 * time.Second
	maxGroup                = 1024 // requests folded into one commit
	lockTimeout             = 2 * time.Second
)

// Shown is one result as displayed. Position is the 1-based rank on the
// page (positions need not start at 1: page 2 shows 11..20).
type Shown struct {
	DocID     string  `json:"doc_id"`
	Position  int     `json:"position"`
	BM25      float64 `json:"bm25"`
	Rerank    float64 `json:"rerank,omitempty"`
	HasRerank bool    `json:"has_rerank,omitempty"`
	// Cascade is the cascade model's score (rerank.cascade), for the hits it
	// reordered; Rerank stays the first model's.
	Cascade    float64 `json:"cascade,omitempty"`
	HasCascade bool    `json:"has_cascade,omitempty"`
	// Team is the interleaving team that contributed the document, if any.
	Team string `json:"team,omitempty"`
}

// Impression is one search and the list it showed. A zero Time means now.
type Impression struct {
	SearchID     string    `json:"search_id"`
	Time         time.Time `json:"time"`
	Query        string    `json:"query"`
	UserID       string    `json:"user_id,omitempty"`
	SessionID    string    `json:"session_id,omitempty"`
	ModelVersion string    `json:"model_version,omitempty"`
	Arm          string    `json:"arm,omitempty"`
	Reranked     bool      `json:"reranked"`
	Results      []Shown   `json:"results"`
}

// Click is one click on a shown result. Position 0 means "as shown"; any
// other value must match the shown position. A zero Time means now.
//
// De-duplication: a click whose EventID equals that of a stored click of the
// same search is a repeat (a client retry) and is dropped. A click without an
// EventID is dropped when a stored click of the same search on the same
// document lies within the dedup window (a double click, or the beacon and
// the redirect link both reporting one click). Dropped repeats return nil.
type Click struct {
	SearchID string    `json:"search_id"`
	DocID    string    `json:"doc_id"`
	Position int       `json:"position"`
	DwellMS  int64     `json:"dwell_ms"`
	Time     time.Time `json:"time"`
	EventID  string    `json:"event_id,omitempty"`
}

// Options configure a Store. The zero value keeps everything forever,
// stores ids as given and uses the default dedup window.
type Options struct {
	// HashUserIDs stores user and session ids as "h:" + hex HMAC-SHA256(HashKey, id):
	// still groupable, not readable. HashKey is then required.
	HashUserIDs bool
	HashKey     string
	// Retention deletes searches older than this (and their clicks) on Open
	// and then periodically; 0 keeps everything.
	Retention time.Duration
	// ClickDedupWindow: see Click. 0 means DefaultClickDedupWindow; negative
	// turns the time-based rule off (event ids still de-duplicate).
	ClickDedupWindow time.Duration
	// OnWrite is called once per search or click with its outcome and its
	// latency from the call to the synced commit; OnCommit after every group
	// commit. Both may run on the single committing goroutine: keep them
	// cheap and non-blocking (a histogram Observe). Either may be nil.
	OnWrite  func(WriteStat)
	OnCommit func(CommitStat)
	// Logger receives retention runs and their failures; nil discards.
	Logger *slog.Logger

	commit commitMode // benchmarks compare the strategies; production uses commitGroup
}

// WriteStat describes one LogSearch or LogClick call.
type WriteStat struct {
	Kind      string        // "search" or "click"
	Latency   time.Duration // from the call to its synced commit (or failure)
	Err       error         // nil when stored or dropped as a repeat
	Duplicate bool          // a click dropped as a repeat
}

// CommitStat describes one group commit.
type CommitStat struct {
	Events  int           // requests in the transaction, rejected ones included
	Latency time.Duration // transaction, write and fsync
	Err     error
}

type commitMode int

const (
	commitGroup     commitMode = iota // one writer goroutine, natural batching
	commitEach                        // one db.Update per event
	commitBoltBatch                   // bbolt's db.Batch (timer-based batching)
)

// Store is the click log. Its methods are safe for concurrent use.
type Store struct {
	db      *bolt.DB
	opts    Options
	hashKey []byte
	log     *slog.Logger

	mu        sync.RWMutex // held for reading while sending on reqs, for writing by Close
	closed    bool
	reqs      chan *request
	committed chan struct{} // closed when the committer has exited
	stopPrune chan struct{}
	pruned    chan struct{} // closed when the retention loop has exited
}

// apply runs one event inside a write transaction. It checks first and writes
// last: a rejection (outcome.err) must leave the transaction untouched, since
// other events share it. A returned error aborts the whole transaction.
type applyFunc func(tx *bolt.Tx) (outcome, error)

type outcome struct {
	err error
	dup bool
}

type request struct {
	kind  string // "search" or "click", for WriteStat
	start time.Time
	apply applyFunc
	reply chan outcome // buffered: the committer never blocks on a caller
}

// Open opens (creating if needed) the log in dir/events.db. Only one process
// can hold it; a second Open fails after a short wait with an error that says so.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("clicklog: empty data folder")
	}
	if opts.Retention < 0 {
		return nil, fmt.Errorf("clicklog: retention %s is negative (0 keeps everything)", opts.Retention)
	}
	if opts.HashUserIDs && opts.HashKey == "" {
		return nil, errors.New("clicklog: hashing user ids needs a hash key")
	}
	if opts.ClickDedupWindow == 0 {
		opts.ClickDedupWindow = DefaultClickDedupWindow
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("clicklog: %w", err)
	}
	path := filepath.Join(dir, FileName)
	// The freelist is rebuilt on open instead of written on every commit:
	// less to sync per event, same durability.
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        lockTimeout,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("clicklog: %s is locked by another process (is `rerank serve` running on this data folder?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("clicklog: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktSearches, bktByTime, bktClicks} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("clicklog: init %s: %w", path, err)
	}
	s := &Store{
		db:        db,
		opts:      opts,
		log:       opts.Logger,
		reqs:      make(chan *request, maxGroup),
		committed: make(chan struct{}),
		stopPrune: make(chan struct{}),
		pruned:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.HashUserIDs {
		s.hashKey = []byte(opts.HashKey)
	}
	if opts.Retention > 0 {
		if _, err := s.Prune(context.Background(), time.Now().Add(-opts.Retention)); err != nil {
			db.Close()
			return nil, err
		}
		go s.retentionLoop()
	} else {
		close(s.pruned)
	}
	go s.commitLoop()
	return s, nil
}

// Close waits for accepted events to commit, then closes the database.
// Later calls return ErrClosed; Close itself may be called again.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	close(s.stopPrune)
	<-s.pruned
	<-s.committed
	return s.db.Close()
}

// LogSearch stores one impression. It returns after the commit is on disk.
// A search id that is already stored gives ErrDuplicateSearch and changes
// nothing. If ctx ends first, the error says so and the event may or may not
// have been stored.
func (s *Store) LogSearch(ctx context.Context, imp Impression) error {
	p, err := s.SubmitSearch(ctx, imp)
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}

// SubmitSearch checks imp and queues it for the next commit without waiting
// for the disk; Pending.Wait gives the durable outcome. It lets a server
// answer a search before the fsync and still never reject a click on it:
// events are committed in the order they were queued, so a click logged after
// SubmitSearch returned finds its search (unless the search itself fails).
// A search answered before its commit can be lost in a crash; a click is
// always acknowledged durably.
func (s *Store) SubmitSearch(ctx context.Context, imp Impression) (*Pending, error) {
	start := time.Now()
	imp, err := s.prepareImpression(imp)
	var apply applyFunc
	if err == nil {
		apply, err = searchApply(imp)
	}
	if err == nil {
		r := &request{kind: "search", start: start, apply: apply, reply: make(chan outcome, 1)}
		if err = s.enqueue(ctx, r); err == nil {
			return &Pending{r: r}, nil
		}
	}
	s.observe("search", start, outcome{err: err})
	return nil, err
}

// Pending is a queued search. Use it from one goroutine.
type Pending struct {
	r    *request
	done bool
	err  error
}

// Wait returns the search's outcome once its commit is on disk (nil when
// stored). If ctx ends first it returns ctx's error and may be called again.
func (p *Pending) Wait(ctx context.Context) error {
	if !p.done {
		o, ok := p.r.wait(ctx)
		if !ok {
			return o.err
		}
		p.done, p.err = true, o.err
	}
	return p.err
}

// LogClick stores one click; see Click for the rules and de-duplication. A
// search id never logged gives ErrUnknownSearch, a document the search did
// not show ErrNotShown.
func (s *Store) LogClick(ctx context.Context, c Click) error {
	_, err := s.logClick(ctx, c)
	return err
}

// logClick is LogClick that also says whether the click was dropped as a repeat.
func (s *Store) logClick(ctx context.Context, c Click) (dup bool, err error) {
	start := time.Now()
	c, err = prepareClick(c)
	if err == nil {
		r := &request{kind: "click", start: start, apply: s.clickApply(c), reply: make(chan outcome, 1)}
		if err = s.enqueue(ctx, r); err == nil {
			o, _ := r.wait(ctx)
			return o.dup, o.err
		}
	}
	s.observe("click", start, outcome{err: err})
	return false, err
}

func (s *Store) observe(kind string, start time.Time, o outcome) {
	if s.opts.OnWrite != nil {
		s.opts.OnWrite(WriteStat{Kind: kind, Latency: time.Since(start), Err: o.err, Duplicate: o.dup})
	}
}

// enqueue hands r to the committer (in the benchmarks' direct modes, commits
// it on the spot).
func (s *Store) enqueue(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.opts.commit != commitGroup {
		s.finish(r, s.commitDirect(r.apply))
		return nil
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finish reports r's outcome to the hooks and to its caller.
func (s *Store) finish(r *request, o outcome) {
	s.observe(r.kind, r.start, o)
	r.reply <- o
}

// wait returns r's outcome, or ctx's error and false if ctx ends first.
func (r *request) wait(ctx context.Context) (outcome, bool) {
	select {
	case o := <-r.reply:
		return o, true
	case <-ctx.Done():
		return outcome{err: fmt.Errorf("clicklog: gave up waiting for the commit (the event may still be stored): %w", ctx.Err())}, false
	}
}

// commitLoop is the single writer: it takes one request, adds every request
// already queued behind it, and commits them in one transaction. Requests that
// arrive during that commit's fsync form the next group.
func (s *Store) commitLoop() {
	defer close(s.committed)
	group := make([]*request, 0, maxGroup)
	for r := range s.reqs {
		group = append(group[:0], r)
	fill:
		for len(group) < maxGroup {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break fill
				}
				group = append(group, r)
			default:
				break fill
			}
		}
		s.commitGroup(group)
	}
}

func (s *Store) commitGroup(group []*request) {
	start := time.Now()
	outs := make([]outcome, len(group))
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, r := range group {
			o, err := r.apply(tx)
			if err != nil {
				return err
			}
			outs[i] = o
		}
		return nil
	})
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(CommitStat{Events: len(group), Latency: time.Since(start), Err: err})
	}
	for i, r := range group {
		if err != nil {
			outs[i] = outcome{err: fmt.Errorf("clicklog: commit: %w", err)}
		}
		s.finish(r, outs[i])
	}
}

// commitDirect is the benchmarks' baseline: a transaction per event, either
// alone or through bbolt's timer-driven Batch.
func (s *Store) commitDirect(apply applyFunc) outcome {
	var o outcome
	fn := func(tx *bolt.Tx) error {
		var err error
		o, err = apply(tx) // Batch may run fn more than once; the last run counts
		return err
	}
	var err error
	if s.opts.commit == commitBoltBatch {
		err = s.db.Batch(fn)
	} else {
		err = s.db.Update(fn)
	}
	if err != nil {
		return outcome{err: fmt.Errorf("clicklog: commit: %w", err)}
	}
	return o
}

func searchApply(imp Impression) (applyFunc, error) {
	id := []byte(imp.SearchID)
	tk := timeKey(imp.Time, imp.SearchID)
	val, err := json.Marshal(imp)
	if err != nil {
		return nil, fmt.Errorf("%w: search %s: encode: %v", ErrInvalid, imp.SearchID, err)
	}
	return func(tx *bolt.Tx) (outcome, error) {
		b := tx.Bucket(bktSearches)
		if b.Get(id) != nil {
			return outcome{err: fmt.Errorf("clicklog: search %s: %w", imp.SearchID, ErrDuplicateSearch)}, nil
		}
		if err := b.Put(id, val); err != nil {
			return outcome{}, err
		}
		return outcome{}, tx.Bucket(bktByTime).Put(tk, []byte{})
	}, nil
}

func (s *Store) clickApply(c Click) applyFunc {
	window := s.opts.ClickDedupWindow
	return func(tx *bolt.Tx) (outcome, error) {
		raw := tx.Bucket(bktSearches).Get([]byte(c.SearchID))
		if raw == nil {
			return outcome{err: fmt.Errorf("clicklog: click on search %s: %w", c.SearchID, ErrUnknownSearch)}, nil
		}
		var imp Impression
		if err := json.Unmarshal(raw, &imp); err != nil {
			return outcome{err: fmt.Errorf("clicklog: search %s: stored record unreadable: %v", c.SearchID, err)}, nil
		}
		i := slices.IndexFunc(imp.Results, func(r Shown) bool { return r.DocID == c.DocID })
		if i < 0 {
			return outcome{err: fmt.Errorf("clicklog: click on %q in search %s: %w", c.DocID, c.SearchID, ErrNotShown)}, nil
		}
		shownAt := imp.Results[i].Position
		if c.Position == 0 {
			c.Position = shownAt
		} else if c.Position != shownAt {
			return outcome{err: invalid("click on %q at position %d, but search %s showed it at %d", c.DocID, c.Position, c.SearchID, shownAt)}, nil
		}

		b := tx.Bucket(bktClicks)
		prefix := clickPrefix(c.SearchID)
		n := 0
		cur := b.Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			n++
			var old Click
			if err := json.Unmarshal(v, &old); err != nil {
				continue // an unreadable old click cannot be a repeat
			}
			if c.EventID != "" {
				if old.EventID == c.EventID {
					return outcome{dup: true}, nil
				}
			} else if window > 0 && old.DocID == c.DocID && absDuration(old.Time.Sub(c.Time)) <= window {
				return outcome{dup: true}, nil
			}
		}
		if n >= maxClicksPerSearch {
			return outcome{err: invalid("search %s already has %d clicks, the most kept", c.SearchID, maxClicksPerSearch)}, nil
		}
		val, err := json.Marshal(c)
		if err != nil {
			return outcome{err: fmt.Errorf("%w: encode: %v", ErrInvalid, err)}, nil
		}
		seq, err := b.NextSequence()
		if err != nil {
			return outcome{}, err
		}
		return outcome{}, b.Put(binary.BigEndian.AppendUint64(prefix, seq), val)
	}
}

// prepareImpression checks imp against the limits and normalises it: UTC
// time (now when zero), results sorted by position, ids hashed when asked.
func (s *Store) prepareImpression(imp Impression) (Impression, error) {
	if err := checkID("search id", imp.SearchID); err != nil {
		return imp, err
	}
	if imp.Query == "" {
		return imp, invalid("search %s: empty query", imp.SearchID)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"query", imp.Query, maxQueryBytes}, {"user id", imp.UserID, maxFieldBytes},
		{"session id", imp.SessionID, maxFieldBytes}, {"model version", imp.ModelVersion, maxFieldBytes},
		{"arm", imp.Arm, maxFieldBytes},
	} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return imp, fmt.Errorf("search %s: %w", imp.SearchID, err)
		}
	}
	var err error
	if imp.Time, err = eventTime(imp.Time); err != nil {
		return imp, fmt.Errorf("search %s: %w", imp.SearchID, err)
	}
	if len(imp.Results) > maxResults {
		return imp, invalid("search %s: %d results, more than the %d kept", imp.SearchID, len(imp.Results), maxResults)
	}
	res := slices.Clone(imp.Results) // the caller's slice stays as it was
	docs := make(map[string]bool, len(res))
	for i := range res {
		r := &res[i]
		if r.DocID == "" {
			return imp, invalid("search %s: result %d has no doc id", imp.SearchID, i)
		}
		if err := checkText("doc id", r.DocID, maxDocIDBytes); err != nil {
			return imp, fmt.Errorf("search %s: %w", imp.SearchID, err)
		}
		if docs[r.DocID] {
			return imp, invalid("search %s: doc %q shown twice", imp.SearchID, r.DocID)
		}
		docs[r.DocID] = true
		if r.Position < 1 {
			return imp, invalid("search %s: doc %q at position %d (positions start at 1)", imp.SearchID, r.DocID, r.Position)
		}
		for _, v := range []float64{r.BM25, r.Rerank, r.Cascade} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return imp, invalid("search %s: doc %q has a non-finite score", imp.SearchID, r.DocID)
			}
		}
		if !r.HasRerank {
			r.Rerank = 0
		}
		if !r.HasCascade {
			r.Cascade = 0
		}
		if err := checkText("team", r.Team, maxFieldBytes); err != nil {
			return imp, fmt.Errorf("search %s: %w", imp.SearchID, err)
		}
	}
	slices.SortStableFunc(res, func(a, b Shown) int { return a.Position - b.Position })
	for i := 1; i < len(res); i++ {
		if res[i].Position == res[i-1].Position {
			return imp, invalid("search %s: two results at position %d", imp.SearchID, res[i].Position)
		}
	}
	imp.Results = res
	imp.UserID = s.pseudonym(imp.UserID)
	imp.SessionID = s.pseudonym(imp.SessionID)
	return imp, nil
}

func prepareClick(c Click) (Click, error) {
	if err := checkID("search id", c.SearchID); err != nil {
		return c, err
	}
	if c.EventID != "" {
		if err := checkID("event id", c.EventID); err != nil {
			return c, err
		}
	}
	if c.DocID == "" {
		return c, invalid("click on search %s: no doc id", c.SearchID)
	}
	if err := checkText("doc id", c.DocID, maxDocIDBytes); err != nil {
		return c, err
	}
	if c.Position < 0 {
		return c, invalid("click on search %s: position %d", c.SearchID, c.Position)
	}
	if c.DwellMS < 0 {
		return c, invalid("click on search %s: negative dwell %d ms", c.SearchID, c.DwellMS)
	}
	var err error
	if c.Time, err = eventTime(c.Time); err != nil {
		return c, fmt.Errorf("click on search %s: %w", c.SearchID, err)
	}
	return c, nil
}

// pseudonym replaces a user or session id by its keyed hash when hashing is on.
func (s *Store) pseudonym(id string) string {
	if id == "" || s.hashKey == nil {
		return id
	}
	m := hmac.New(sha256.New, s.hashKey)
	m.Write([]byte(id))
	return "h:" + hex.EncodeToString(m.Sum(nil))
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// checkID accepts 1 to 128 of [A-Za-z0-9._:-]: ids become key prefixes, so
// they must not contain the 0x00 separator, and a narrow alphabet keeps them
// safe to echo in URLs and logs.
func checkID(name, id string) error {
	if id == "" {
		return invalid("empty %s", name)
	}
	if len(id) > maxIDLen {
		return invalid("%s of %d bytes, over %d", name, len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return invalid("%s %q: only letters, digits and . _ : - are allowed", name, id)
		}
	}
	return nil
}

func checkText(name, v string, max int) error {
	if len(v) > max {
		return invalid("%s of %d bytes, over %d", name, len(v), max)
	}
	if !utf8.ValidString(v) {
		return invalid("%s is not valid UTF-8", name)
	}
	return nil
}

// eventTime defaults a zero time to now and keeps times in the range the
// 8-byte time keys order correctly.
func eventTime(t time.Time) (time.Time, error) {
	if t.IsZero() {
		t = time.Now()
	}
	t = t.UTC()
	if t.Year() < 1970 || t.Year() >= 2200 {
		return t, invalid("time %s outside 1970..2199", t.Format(time.RFC3339))
	}
	return t, nil
}

func timeKey(t time.Time, id string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), uint64(t.UnixNano())), id...)
}

func clickPrefix(searchID string) []byte {
	return append(append(make([]byte, 0, len(searchID)+9), searchID...), 0)
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
