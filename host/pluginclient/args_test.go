package pluginclient

import (
	"slices"
	"testing"
)

// The host's settings reach the plugin's command line; unset ones leave the
// plugin's defaults.
func TestArgsCarryTheSettings(t *testing.T) {
	c := &Client{opts: Options{Device: "cpu", Precision: "bf16", Threads: 2, MaxDocuments: 300}}
	got := c.args()
	for _, want := range []string{"--device=cpu", "--precision=bf16", "--threads=2", "--max-documents=300"} {
		if !slices.Contains(got, want) {
			t.Errorf("args %v lack %s", got, want)
		}
	}
	if got := (&Client{}).args(); len(got) != 0 {
		t.Errorf("no settings give args %v, want none", got)
	}
}
