package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// hostFlags are the flags of the commands that act through a running host's
// admin API (bearer admin_token).
type hostFlags struct {
	url, token string
}

func (h *hostFlags) add(fs *pflag.FlagSet, required bool) {
	use := "base URL of a running host, e.g. http://127.0.0.1:8080: act through its admin API"
	if !required {
		use += " (default: open the data folder directly; the host must be stopped)"
	}
	fs.StringVar(&h.url, "host", "", use)
	fs.StringVar(&h.token, "token", "", "the host's admin_token (default $RERANK_ADMIN_TOKEN)")
}

// adminClient calls one host's admin API.
type adminClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

func (h hostFlags) client() (*adminClient, error) {
	if h.url == "" {
		return nil, errors.New("--host is required: the base URL of the running host")
	}
	u, err := url.Parse(h.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--host %q: want http://HOST:PORT", h.url)
	}
	tok := h.token
	if tok == "" {
		tok = os.Getenv("RERANK_ADMIN_TOKEN")
	}
	if tok == "" {
		return nil, errors.New("no admin token: pass --token or set RERANK_ADMIN_TOKEN to the host's admin_token")
	}
	return &adminClient{base: u, token: tok, http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// call sends body (nil: none) as JSON and decodes a 2xx answer into out
// (nil: discard); any other answer is an error with the host's message.
func (c *adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.JoinPath(path).String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &apiErr{resp.StatusCode, e.Error}
		}
		return &apiErr{resp.StatusCode, strings.TrimSpace(resp.Status)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
	}
	return nil
}

// apiErr is a host's refusal.
type apiErr struct {
	code int
	msg  string
}

func (e *apiErr) Error() string { return fmt.Sprintf("host answered %d: %s", e.code, e.msg) }
