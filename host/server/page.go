package server

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed web
var webFS embed.FS

var (
	webRoot, _ = fs.Sub(webFS, "web")
	docPage    = template.Must(template.ParseFS(webFS, "web/doc.html"))
)

func staticHandler() http.Handler {
	return http.StripPrefix("/static/", http.FileServerFS(webRoot))
}

// handlePage serves the search page at / and a JSON 404 for any other path
// no route claims.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		writeError(w, http.StatusNotFound, "no such endpoint: "+clip(r.URL.Path, 100))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed here; use GET")
		return
	}
	http.ServeFileFS(w, r, webRoot, "index.html")
}

// handleDocPage shows one document: where the page's no-script result links
// (/click?...) land after the click is logged.
func (s *Server) handleDocPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.getDoc(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := docPage.Execute(w, d); err != nil {
		s.logger.Error("doc page", "err", err)
	}
}
