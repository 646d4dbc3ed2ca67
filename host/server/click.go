package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rerankloop/rerank/host/clicklog"
	"github.com/rerankloop/rerank/host/search"
)

// maxDwell bounds a click's dwell time; a page left open for days is not a
// reading time.
const maxDwell = 24 * time.Hour

// clickRequest is the body of POST /click; GET /click takes the same names
// as query parameters and redirects to the document.
type clickRequest struct {
	SearchID string `json:"search_id"`
	DocID    string `json:"doc_id"`
	Position int    `json:"position"`
	DwellMS  int64  `json:"dwell_ms"`
	// EventID makes a retried report of the same click count once.
	EventID string `json:"event_id"`
}

func (s *Server) handleClick(w http.ResponseWriter, r *http.Request) {
	if !s.clicks.allow(r) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("more than %g clicks a second from this address (http.click_rate)", s.cfg.HTTP.ClickRate))
		return
	}
	var req clickRequest
	if r.Method == http.MethodPost {
		if err := s.readJSON(w, r, &req, true); err != nil {
			s.fail(w, r, err)
			return
		}
	} else if err := clickQuery(r.URL.Query(), &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.logClick(r, req); err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Method == http.MethodGet {
		// Only ever to this host's own document page: no open redirect.
		http.Redirect(w, r, "/doc/"+url.PathEscape(req.DocID)+"?search_id="+url.QueryEscape(req.SearchID), http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"logged": true})
}

func clickQuery(q url.Values, req *clickRequest) error {
	for name, vals := range q {
		for _, v := range vals {
			if !utf8.ValidString(v) {
				return badRequest("parameter %q is not valid UTF-8", name)
			}
		}
	}
	req.SearchID, req.DocID, req.EventID = q.Get("search_id"), q.Get("doc_id"), q.Get("event_id")
	for _, f := range []struct {
		name string
		set  func(int64)
	}{
		{"position", func(v int64) { req.Position = int(v) }},
		{"dwell_ms", func(v int64) { req.DwellMS = v }},
	} {
		if v := q.Get(f.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n != int64(int(n)) {
				return badRequest("%s must be an integer, got %q", f.name, clip(v, 40))
			}
			f.set(n)
		}
	}
	return nil
}

func (s *Server) logClick(r *http.Request, req clickRequest) error {
	switch {
	case req.SearchID == "":
		return badRequest("search_id is missing: pass the search_id of the search the result was shown in")
	case req.DocID == "":
		return badRequest("doc_id is missing")
	case !utf8.ValidString(req.SearchID) || !utf8.ValidString(req.DocID) || !utf8.ValidString(req.EventID):
		return badRequest("search_id, doc_id and event_id must be valid UTF-8")
	case req.Position < 0 || req.Position > s.cfg.Search.MaxFrom+s.cfg.Search.MaxSize:
		return badRequest("position must be 1 to %d (or 0: as shown), got %d", s.cfg.Search.MaxFrom+s.cfg.Search.MaxSize, req.Position)
	case req.DwellMS < 0 || req.DwellMS > maxDwell.Milliseconds():
		return badRequest("dwell_ms must be 0 to %d, got %d", maxDwell.Milliseconds(), req.DwellMS)
	}
	if s.log == nil {
		return &apiError{http.StatusServiceUnavailable, "clicks are not recorded: this server runs without a click log"}
	}
	err := s.log.LogClick(r.Context(), clicklog.Click{SearchID: req.SearchID, DocID: req.DocID, Position: req.Position, DwellMS: req.DwellMS, EventID: req.EventID})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, clicklog.ErrUnknownSearch):
		return &apiError{http.StatusNotFound, fmt.Sprintf("unknown search_id %q: no search with that id was logged (or it expired)", clip(req.SearchID, 140))}
	case errors.Is(err, clicklog.ErrNotShown):
		return &apiError{http.StatusUnprocessableEntity, fmt.Sprintf("document %q was not shown in search %q", clip(req.DocID, 140), clip(req.SearchID, 140))}
	case errors.Is(err, clicklog.ErrInvalid):
		return badRequest("%v", err)
	case r.Context().Err() != nil:
		return &apiError{http.StatusServiceUnavailable, "request cancelled before the click was stored; it may or may not be recorded"}
	}
	return err
}

// docJSON is a stored document.
type docJSON struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

func (s *Server) getDoc(r *http.Request) (search.Doc, error) {
	id := r.PathValue("id")
	if id == "" {
		return search.Doc{}, badRequest("document id is missing: /docs/{id}")
	}
	if !utf8.ValidString(id) {
		return search.Doc{}, badRequest("document id is not valid UTF-8")
	}
	d, err := s.ix.Get(id)
	if errors.Is(err, search.ErrNotFound) {
		return d, &apiError{http.StatusNotFound, fmt.Sprintf("no document with id %q", clip(id, 140))}
	}
	return d, err
}

func (s *Server) handleDocJSON(w http.ResponseWriter, r *http.Request) {
	d, err := s.getDoc(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, docJSON{d.ID, d.Title, d.Text})
}
