package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/rerankloop/rerank/host/replica"
)

// routeReplica registers what followers read from a primary (bearer
// admin_token): the serving version and its checkpoint's files.
func (s *Server) routeReplica(admin func(http.HandlerFunc) http.HandlerFunc) {
	s.route("/admin/serving", "admin_serving", admin(s.handleServing), http.MethodGet)
	s.route("/admin/models/{id}/files", "admin_model_files", admin(s.handleModelFiles), http.MethodGet)
	s.route("/admin/models/{id}/files/{path...}", "admin_model_file", admin(s.handleModelFile), http.MethodGet)
}

// handleServing answers which version serves, noting the follower that asks.
func (s *Server) handleServing(w http.ResponseWriter, r *http.Request) {
	s.roster.Saw(replica.Report{Name: r.Header.Get(replica.HeaderName), Addr: r.RemoteAddr,
		Serving: r.Header.Get(replica.HeaderServing), Seen: time.Now().UTC()})
	v, err := s.loop.Serving()
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// handleModelFiles lists a version's checkpoint files with their sha256.
func (s *Server) handleModelFiles(w http.ResponseWriter, r *http.Request) {
	v, err := s.loop.Version(r.PathValue("id"))
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	files, err := replica.Manifest(v.Checkpoint)
	if err != nil {
		s.loopFail(w, r, fmt.Errorf("version %s: checkpoint %s: %w", v.ID, v.Checkpoint, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": v.ID, "files": files})
}

// handleModelFile sends one file of a version's checkpoint folder.
func (s *Server) handleModelFile(w http.ResponseWriter, r *http.Request) {
	v, err := s.loop.Version(r.PathValue("id"))
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	name := r.PathValue("path")
	f, err := replica.Open(v.Checkpoint, name)
	if err != nil {
		code := http.StatusNotFound
		if !errors.Is(err, fs.ErrNotExist) {
			code = http.StatusBadRequest
		}
		writeError(w, code, fmt.Sprintf("version %s has no file %q in its checkpoint folder", v.ID, clip(name, 200)))
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.loopFail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// primaryOnly refuses, on a follower, what changes the registry: the
// primary owns it and the follower copies what it serves.
func (s *Server) primaryOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.follower != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusConflict, fmt.Sprintf("this host is a replica of %s (replica.primary): retrain, swap, roll back and run experiments there; this host serves the primary's serving version within replica.poll (%s)",
				s.cfg.Replica.Primary, s.cfg.Replica.Poll))
			return
		}
		h(w, r)
	}
}
