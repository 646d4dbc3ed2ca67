package clicklog

import (
	"context"
	"testing"
	"time"
)

func TestImportClickSaysWhetherNew(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	at := time.Now().UTC()
	if err := s.LogSearch(ctx, Impression{SearchID: "s1", Time: at, Query: "q", Results: []Shown{{DocID: "d1", Position: 1}}}); err != nil {
		t.Fatal(err)
	}
	c := Click{SearchID: "s1", DocID: "d1", Time: at, EventID: "e1"}
	for i, want := range []bool{true, false} {
		if added, err := s.ImportClick(ctx, c); err != nil || added != want {
			t.Fatalf("import %d: added %v, %v; want %v", i, added, err, want)
		}
	}
	if _, err := s.ImportClick(ctx, Click{SearchID: "s2", DocID: "d1", Time: at, EventID: "e2"}); err == nil {
		t.Fatal("a click on an unknown search was accepted")
	}
}
