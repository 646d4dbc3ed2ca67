package trec

import (
	"bytes"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWriteReadRoundTrip(t *testing.T) {
	run := Run{}
	run.Add("q2", "b", 0.1)
	run.Add("q1", "a", 1.0/3)
	run.Add("q1", "b", 1.0/3)
	run.Add("q1", "c", -2.5e-7)
	run["q3"] = map[string]float64{} // searched, nothing found: not writable, so not read back
	var buf bytes.Buffer
	if err := Write(&buf, run, "bm25"); err != nil {
		t.Fatal(err)
	}
	want := "q1 Q0 b 1 0.3333333333333333 bm25\nq1 Q0 a 2 0.3333333333333333 bm25\nq1 Q0 c 3 -2.5e-07 bm25\nq2 Q0 b 1 0.1 bm25\n"
	if buf.String() != want {
		t.Fatalf("wrote\n%s\nwant\n%s", buf.String(), want)
	}
	back, err := Read(&buf, "r")
	if err != nil {
		t.Fatal(err)
	}
	delete(run, "q3")
	if !reflect.DeepEqual(back, run) {
		t.Fatalf("read back %v, want %v", back, run)
	}

	path := filepath.Join(t.TempDir(), "x.run")
	if err := WriteFile(path, run, "t"); err != nil {
		t.Fatal(err)
	}
	if back, err = ReadFile(path); err != nil || !reflect.DeepEqual(back, run) {
		t.Fatalf("file round trip: %v, %v", back, err)
	}
}

func TestRankIgnoresFileRanks(t *testing.T) {
	// trec_eval orders by score whatever the rank column says.
	run, err := Read(strings.NewReader("q Q0 low 1 0.5 t\nq Q0 high 2 0.9 t\n"), "r")
	if err != nil {
		t.Fatal(err)
	}
	if got := Ranked(run["q"]); got[0] != "high" {
		t.Fatalf("order %v", got)
	}
}

func TestErrors(t *testing.T) {
	for content, part := range map[string]string{
		"q Q0 d 1 0.5\n":                   "r:1: want 6 fields",
		"q Q0 d one 0.5 t\n":               "r:1: rank",
		"q Q0 d 1 NaN t\n":                 "r:1: score",
		"q Q0 d 1 x t\n":                   "r:1: score",
		"q Q0 d 1 1 t\n\nq Q0 d 2 0.5 t\n": "r:3: query \"q\" lists document \"d\" twice",
	} {
		if _, err := Read(strings.NewReader(content), "r"); err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("%q: error %v, want %q", content, err, part)
		}
	}
	for _, tc := range []struct {
		run Run
		tag string
	}{
		{Run{"q": {"d": 1}}, "two words"},
		{Run{"q q": {"d": 1}}, "t"},
		{Run{"q": {"d d": 1}}, "t"},
		{Run{"q": {"d": math.Inf(1)}}, "t"},
	} {
		if err := Write(&bytes.Buffer{}, tc.run, tc.tag); err == nil {
			t.Errorf("Write(%v, %q): want an error", tc.run, tc.tag)
		}
	}
}

// FuzzRead checks that any input gives a run or an error naming the file,
// and that what is read writes back and reads again unchanged.
func FuzzRead(f *testing.F) {
	f.Add([]byte("q Q0 d 1 0.5 t\nq Q0 e 2 0.25 t\n"))
	f.Add([]byte("q Q0 d 1 1e308 t\nq Q0 d 1 -Inf t\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		run, err := Read(bytes.NewReader(data), "f.run")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.run") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, run, "t"); err != nil {
			return // e.g. infinite scores: readable, not writable
		}
		back, err := Read(&buf, "again")
		if err != nil || !reflect.DeepEqual(back, run) {
			t.Fatalf("round trip: %v\n%v\n%v", err, run, back)
		}
	})
}
