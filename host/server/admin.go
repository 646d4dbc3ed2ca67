package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/rerankloop/rerank/host/search"
)

// maxDocID is the longest document id accepted: the click log's limit, so
// every document can be logged when shown.
const maxDocID = 512

// handleAdminPut adds or replaces documents: the body is one {id, title,
// text} object or an array of them, indexed together.
func (s *Server) handleAdminPut(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	if err := s.readJSON(w, r, &raw, true); err != nil {
		s.fail(w, r, err)
		return
	}
	var docs []docJSON
	dec := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	var err error
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		err = dec(&docs)
	} else {
		docs = make([]docJSON, 1)
		err = dec(&docs[0])
	}
	if err != nil {
		s.fail(w, r, badRequest("want a document {\"id\", \"title\", \"text\"} or an array of them: %s", jsonProblem(err, raw)))
		return
	}
	if len(docs) == 0 {
		s.fail(w, r, badRequest("no documents in the array"))
		return
	}
	seen := make(map[string]bool, len(docs))
	out := make([]search.Doc, len(docs))
	for i, d := range docs {
		if err := checkDocID(d.ID); err != nil {
			s.fail(w, r, badRequest("document %d: %v", i, err))
			return
		}
		if seen[d.ID] {
			s.fail(w, r, badRequest("document %d: id %q appears twice", i, clip(d.ID, 140)))
			return
		}
		seen[d.ID] = true
		out[i] = search.Doc{ID: d.ID, Title: d.Title, Text: d.Text}
	}
	if err := s.ix.Put(out...); err != nil {
		s.fail(w, r, err)
		return
	}
	s.logger.Info("documents indexed", "count", len(out))
	writeJSON(w, http.StatusOK, map[string]any{"indexed": len(out)})
}

// handleAdminDoc replaces (PUT, body {title, text}) or deletes one document.
func (s *Server) handleAdminDoc(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !utf8.ValidString(id) {
		s.fail(w, r, badRequest("document id is not valid UTF-8"))
		return
	}
	if err := checkDocID(id); err != nil {
		s.fail(w, r, badRequest("%v", err))
		return
	}
	if r.Method == http.MethodDelete {
		err := s.ix.Delete(id)
		if errors.Is(err, search.ErrNotFound) {
			err = &apiError{http.StatusNotFound, fmt.Sprintf("no document with id %q", clip(id, 140))}
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.logger.Info("document deleted", "id", id)
		writeJSON(w, http.StatusOK, map[string]any{"deleted": id})
		return
	}
	var d docJSON
	if err := s.readJSON(w, r, &d, true); err != nil {
		s.fail(w, r, err)
		return
	}
	if d.ID != "" && d.ID != id {
		s.fail(w, r, badRequest("body id %q differs from the id in the path %q", clip(d.ID, 140), clip(id, 140)))
		return
	}
	if err := s.ix.Put(search.Doc{ID: id, Title: d.Title, Text: d.Text}); err != nil {
		s.fail(w, r, err)
		return
	}
	s.logger.Info("document indexed", "id", id)
	writeJSON(w, http.StatusOK, map[string]any{"indexed": 1, "id": id})
}

func checkDocID(id string) error {
	switch {
	case id == "":
		return errors.New("id is missing")
	case len(id) > maxDocID:
		return fmt.Errorf("id is %d bytes long, over the %d-byte limit", len(id), maxDocID)
	case !utf8.ValidString(id):
		return errors.New("id is not valid UTF-8")
	}
	return nil
}
