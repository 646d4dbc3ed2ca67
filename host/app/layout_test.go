package app

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/rerankloop/rerank/"

// goList runs go list in the repository with args, one line per package.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// The README's package map, as rules the build can check: the host binary
// is pure Go and shares only the contract and the two file formats with the
// plugin; the libraries below the host never import it.
func TestPackageMap(t *testing.T) {
	shared := map[string]bool{"plugin/contract": true, "plugin/contract/rerankpb": true, "plugin/checkpoint": true, "plugin/embcache": true}
	for _, p := range goList(t, "-deps", "./host/cmd/rerank") {
		if strings.Contains(p, "gotch") {
			t.Errorf("bin/rerank depends on %s: the host must build without cgo", p)
		}
		if rel, ok := strings.CutPrefix(p, module); ok && strings.HasPrefix(rel, "plugin/") && !shared[rel] {
			t.Errorf("bin/rerank depends on %s: only the contract, checkpoint files and the embedding cache cross the process boundary", rel)
		}
	}
	// What each top-level folder may import from the others.
	may := map[string][]string{
		"configs":     nil,
		"evalharness": {"evalharness"},
		"finetune":    {"finetune", "evalharness", "plugin/contract"},
		"plugin":      {"plugin", "evalharness"},
	}
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...") {
		fields := strings.Fields(line)
		pkg, _ := strings.CutPrefix(fields[0], module)
		top := strings.SplitN(pkg, "/", 2)[0]
		allowed, ruled := may[top]
		if !ruled {
			continue // host/ may import everything but plugin internals (checked above and by Go's internal rule)
		}
		for _, imp := range fields[1:] {
			rel, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || rel == a || strings.HasPrefix(rel, a+"/")
			}
			if !ok {
				t.Errorf("%s imports %s, which the package map does not allow", pkg, rel)
			}
		}
	}
}
