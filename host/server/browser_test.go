package server

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/rerankloop/rerank/finetune/impression"
)

const chromium = "/usr/bin/chromium"

// TestBrowserSearchAndClick drives the page in headless Chromium: type a
// query, open a result, close it, and find the click (with its dwell) in the
// click log; then open another and leave the page, which reports it by beacon.
func TestBrowserSearchAndClick(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("end-to-end browser test skipped: %s not found (Debian: apt-get install chromium)", chromium)
	}
	if testing.Short() {
		t.Skip("end-to-end browser test skipped in -short mode")
	}
	e := start(t, setup{reranker: &overlapReranker{}})

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	err := chromedp.Do(ctx,
		chromedp.Navigate(e.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#q")),
		chromedp.SendKeys(chromedp.CSS("#q"), "stem cells"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS("#results li.hit:nth-child(2) h2 a")),
	)
	if err != nil {
		t.Fatal(err)
	}
	status := run(t, ctx, chromedp.Text(chromedp.CSS("#status")))
	firstID := run(t, ctx, chromedp.AttributeValue(chromedp.CSS("#results li.hit:nth-child(1)"), "data-id")).Value
	secondID := run(t, ctx, chromedp.AttributeValue(chromedp.CSS("#results li.hit:nth-child(2)"), "data-id")).Value
	marks := run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll("#results mark").length`))
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#results li.hit:nth-child(1) h2 a")),
		chromedp.WaitVisible(chromedp.CSS("#results li.hit:nth-child(1) .reader .text")),
		chromedp.Poll[chromedp.Void](`document.querySelector(".reader .text").textContent !== "Loading…"`),
	)
	if err != nil {
		t.Fatal(err)
	}
	readerText := run(t, ctx, chromedp.Text(chromedp.CSS(".reader .text")))
	err = chromedp.Do(ctx,
		chromedp.Sleep(300*time.Millisecond), // reading time
		chromedp.Click(chromedp.CSS(".reader button.close")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "reranked by overlap-v1") || marks == 0 || len(readerText) < 50 || firstID == "" {
		t.Fatalf("page shows status %q, %d marked terms, reader text %q, first result %q", status, marks, readerText, firstID)
	}

	click := waitClick(t, e, firstID)
	if click.Position != 1 || click.DwellMS < 300 {
		t.Fatalf("click on %s logged at position %d with dwell %d ms; want 1 and at least 300", firstID, click.Position, click.DwellMS)
	}

	// A reader left open when the page goes away is reported by beacon.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#results li.hit:nth-child(2) h2 a")),
		chromedp.WaitVisible(chromedp.CSS("#results li.hit:nth-child(2) .reader")),
		chromedp.Sleep(100*time.Millisecond),
		chromedp.Navigate("about:blank"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if c := waitClick(t, e, secondID); c.Position != 2 {
		t.Fatalf("beacon click at position %d, want 2", c.Position)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitClick polls the click log until a click on doc appears.
func waitClick(t *testing.T, e *env, doc string) impression.Result {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		waitLogged(e)
		for _, imp := range exportLog(t, e.store) {
			for _, r := range imp.Results {
				if r.DocID == doc && r.Clicks > 0 {
					return r
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no click on %s reached the click log", doc)
	return impression.Result{}
}
