// Command gencompat writes the C++ header that lets gotch's generated libtorch
// wrappers (libtch/torch_api_generated.cpp.h, generated for libtorch 2.1) compile
// against another libtorch. It compiles gotch's libtch against the given headers,
// reads the compiler's error list, and declares a throwing stand-in for exactly
// the calls that no longer compile, plus (with -ref) those that compile but whose
// operator's signature changed. The header is force-included with
// CGO_CXXFLAGS="-include <header>", so such an op returns a Go error instead of
// breaking the build or computing something else; every other op is untouched.
//
// Usage (the Makefile's compat-header target runs it):
//
//	go run ./plugin/libtorch/gencompat -out plugin/libtorch/compat-2.11.h \
//	    -label "libtorch 2.11 (CPU)" -ref .build/torch-2.1.0/torch/include \
//	    -I $LIBTORCH/include -I $LIBTORCH/include/torch/csrc/api/include
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

const generatedFile = "torch_api_generated.cpp.h"

type includeDirs []string

func (d *includeDirs) String() string     { return strings.Join(*d, " ") }
func (d *includeDirs) Set(v string) error { *d = append(*d, v); return nil }

func main() {
	var incs includeDirs
	libtch := flag.String("libtch", "", "gotch's libtch folder (default: from `go list -m github.com/sugarme/gotch`)")
	out := flag.String("out", "", "header to write (required)")
	label := flag.String("label", "this libtorch", "libtorch name used in the stand-ins' error messages")
	cxx := flag.String("cxx", envOr("CXX", "g++"), "C++ compiler")
	ref := flag.String("ref", "", "include folder of the libtorch gotch was generated for (torch 2.1.0's torch/include), to find changed signatures")
	flag.Var(&incs, "I", "libtorch include folder (repeatable)")
	flag.Parse()
	if *out == "" {
		fail(errors.New("-out is required"))
	}
	if *libtch == "" {
		dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/sugarme/gotch").Output()
		if err != nil {
			fail(fmt.Errorf("locating gotch (run from the repo, module downloaded): %w", err))
		}
		*libtch = filepath.Join(strings.TrimSpace(string(dir)), "libtch")
	}
	if err := run(*libtch, *out, *label, *cxx, *ref, incs); err != nil {
		fail(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gencompat:", err)
	os.Exit(1)
}

const notCompiling = "does not compile"

func run(libtch, out, label, cxx, ref string, incs []string) error {
	src, err := os.ReadFile(filepath.Join(libtch, generatedFile))
	if err != nil {
		return err
	}
	api, err := os.ReadFile(filepath.Join(libtch, "torch_api.cpp"))
	if err != nil {
		return err
	}
	wrappers := parseWrappers(string(src))
	includes := torchIncludes(string(api), libtch)

	tmp, err := os.CreateTemp("", "gotch-compat-*.h")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	// failing: wrapper -> why it gets a stand-in.
	// Wrappers whose call compiles but whose operator's signature changed.
	var changed map[string]string
	if ref == "" {
		fmt.Fprintln(os.Stderr, "gencompat: no -ref: only calls that fail to compile get stand-ins")
	} else if changed, err = schemaChanges(wrappers, ref, incs); err != nil {
		return err
	}

	// failing: wrapper -> why it gets a stand-in. A stand-in can expose an error
	// the original one hid (a later overload check), so compile until the error
	// list is empty or stops shrinking.
	failing := map[string]string{}
	header := ""
	for round := 1; ; round++ {
		if err := os.WriteFile(tmp.Name(), []byte(header), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "gencompat: round %d: compiling %s against %s\n", round, filepath.Join(libtch, "torch_api.cpp"), strings.Join(incs, " "))
		lines, log, err := compile(cxx, libtch, incs, tmp.Name())
		if err != nil {
			return err
		}
		added := 0
		for _, l := range lines {
			w := wrapperAt(wrappers, l)
			if w == nil {
				return fmt.Errorf("error at %s:%d is outside any wrapper:\n%s", generatedFile, l, log)
			}
			if _, ok := failing[w.name]; !ok {
				failing[w.name] = notCompiling
				added++
			}
		}
		if round == 1 {
			for name, why := range changed {
				if _, ok := failing[name]; !ok {
					failing[name] = why
					added++
					fmt.Fprintf(os.Stderr, "gencompat: %s compiles, but %s\n", name, why)
				}
			}
		}
		if added == 0 {
			if log != "" {
				return fmt.Errorf("compile errors remain with the stand-ins (round %d):\n%s", round, log)
			}
			break
		}
		fmt.Fprintf(os.Stderr, "gencompat: round %d: %d wrappers need stand-ins\n", round, len(failing))
		if header, err = renderHeader(wrappers, failing, includes, label, string(api)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(out, []byte(header), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gencompat: wrote %s: stand-ins for %d wrappers\n", out, len(failing))
	return nil
}

func schemaChanges(ws []*wrapper, ref string, incs []string) (map[string]string, error) {
	refs, err := readSchemas(ref)
	if err != nil {
		return nil, err
	}
	for _, inc := range incs {
		if _, err := os.Stat(filepath.Join(inc, "ATen", "ops")); err == nil {
			tgt, err := readSchemas(inc)
			if err != nil {
				return nil, err
			}
			return changedWrappers(ws, refs, tgt), nil
		}
	}
	return nil, fmt.Errorf("no ATen/ops folder under %s", strings.Join(incs, " "))
}

var errLoc = regexp.MustCompile(regexp.QuoteMeta(generatedFile) + `:(\d+):\d+:\s+(?:error:|required from here)`)

// compile checks gotch's libtch C++ for errors only (-fsyntax-only is ~20 s,
// a full object build ~3 min) and returns the generated-file lines that
// errors point at, with the compiler's output when it failed.
func compile(cxx, libtch string, incs []string, header string) ([]int, string, error) {
	args := []string{"-std=c++17", "-fsyntax-only", "-fmax-errors=0", "-w", "-I" + libtch}
	for _, d := range incs {
		args = append(args, "-I"+d)
	}
	if header != "" {
		args = append(args, "-include", header)
	}
	args = append(args, filepath.Join(libtch, "torch_api.cpp"))
	var buf bytes.Buffer
	cmd := exec.Command(cxx, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if err == nil {
		return nil, "", nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return nil, "", fmt.Errorf("running %s: %w", cxx, err)
	}
	seen := map[int]bool{}
	var lines []int
	for _, m := range errLoc.FindAllStringSubmatch(buf.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		if !seen[n] {
			seen[n] = true
			lines = append(lines, n)
		}
	}
	if len(lines) == 0 {
		return nil, "", fmt.Errorf("compiler failed outside the generated wrappers:\n%s", buf.String())
	}
	return lines, buf.String(), nil
}

// wrapper is one generated C function (atg_*) and the torch call it makes.
type wrapper struct {
	name       string
	cret       string // the C function's return type
	start, end int    // 1-based line range
	body       string
}

var wrapperStart = regexp.MustCompile(`^(\w[\w ]*?\**)\s*\b(atg_\w+)\(`)

func parseWrappers(src string) []*wrapper {
	var ws []*wrapper
	var cur *wrapper
	var body []string
	for i, line := range strings.Split(src, "\n") {
		if cur == nil {
			if m := wrapperStart.FindStringSubmatch(line); m != nil {
				cur = &wrapper{name: m[2], cret: strings.TrimSpace(m[1]), start: i + 1}
				body = body[:0]
			}
			continue
		}
		body = append(body, line)
		if line == "}" {
			cur.end = i + 1
			cur.body = strings.Join(body, "\n")
			ws = append(ws, cur)
			cur = nil
		}
	}
	return ws
}

func wrapperAt(ws []*wrapper, line int) *wrapper {
	i := sort.Search(len(ws), func(i int) bool { return ws[i].end >= line })
	if i < len(ws) && ws[i].start <= line {
		return ws[i]
	}
	return nil
}

// call is the torch function or at::Tensor method a wrapper calls, with the
// number of arguments and the C++ type the wrapper's code needs back.
type call struct {
	method bool
	name   string
	arity  int
	result string
}

var (
	callStart = regexp.MustCompile(`PROTECT\(\s*(?:auto outputs__ = |return )?(torch::|self->)(\w+)\(`)
	tupleGet  = regexp.MustCompile(`new torch::Tensor\(std::get<(\d+)>\(outputs__\)\)`)
)

func (w *wrapper) call() (call, error) {
	m := callStart.FindStringSubmatchIndex(w.body)
	if m == nil {
		return call{}, fmt.Errorf("%s: no torch call found", w.name)
	}
	c := call{method: w.body[m[2]:m[3]] == "self->", name: w.body[m[4]:m[5]]}
	n, err := countArgs(w.body[m[1]:])
	if err != nil {
		return call{}, fmt.Errorf("%s: %w", w.name, err)
	}
	c.arity = n
	switch {
	case !strings.Contains(w.body, "auto outputs__ ="):
		if w.cret == "void" {
			c.result = "void"
		} else {
			c.result = w.cret
		}
	case strings.Contains(w.body, "outputs__.size()"):
		c.result = "std::vector<at::Tensor>"
	case strings.Contains(w.body, "std::get<"):
		k := len(tupleGet.FindAllString(w.body, -1))
		if k != strings.Count(w.body, "std::get<") {
			return call{}, fmt.Errorf("%s: tuple result holds more than tensors", w.name)
		}
		c.result = "std::tuple<" + strings.TrimSuffix(strings.Repeat("at::Tensor, ", k), ", ") + ">"
	case strings.Contains(w.body, "new torch::Tensor(outputs__)"):
		c.result = "at::Tensor"
	default:
		return call{}, fmt.Errorf("%s: unknown use of the call's result", w.name)
	}
	return c, nil
}

// countArgs counts the top-level arguments of a call whose opening
// parenthesis was just consumed.
func countArgs(s string) (int, error) {
	depth, n, empty := 0, 1, true
	for _, r := range s {
		switch r {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			if depth == 0 {
				if empty {
					return 0, nil
				}
				return n, nil
			}
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		}
		if r != ' ' && r != '\n' && r != ')' {
			empty = false
		}
	}
	return 0, errors.New("unbalanced call")
}

var quotedInclude = regexp.MustCompile(`(?m)^#include\s+[<"]([^>"]+)[>"]`)

// torchIncludes lists the headers torch_api.cpp pulls from libtorch. The
// header includes them before defining its macros, so their include guards
// keep the macros out of libtorch's own code.
func torchIncludes(api, libtch string) []string {
	var out []string
	for _, m := range quotedInclude.FindAllStringSubmatch(api, -1) {
		if _, err := os.Stat(filepath.Join(libtch, m[1])); err == nil {
			continue // gotch's own file (torch_api.h, stb_*)
		}
		out = append(out, m[1])
	}
	return out
}

type standIn struct {
	method   bool
	name     string
	overload map[int]string // arity -> result type
	forced   map[int]bool   // arities whose real overload compiles but means something else
	wrappers []string
	notes    []string
	okArity  map[int]bool // arities compiling wrappers call with
	okAny    bool         // other compiling code calls it (arity unknown)
}

func (s *standIn) key() string {
	if s.method {
		return "->" + s.name
	}
	return s.name
}

func renderHeader(ws []*wrapper, failing map[string]string, includes []string, label, api string) (string, error) {
	byName := map[string]*standIn{}
	var okCalls []call
	// Compiling code whose calls were not counted: torch_api.cpp's hand-written
	// part, wrappers the parser does not follow, anything besides a wrapper's main call.
	other := []string{api}
	for _, w := range ws {
		why, bad := failing[w.name]
		c, err := w.call()
		if !bad {
			if err != nil {
				other = append(other, w.body)
				continue
			}
			okCalls = append(okCalls, c)
			prefix := "torch::"
			if c.method {
				prefix = "self->"
			}
			other = append(other, strings.Replace(w.body, prefix+c.name+"(", "", 1))
			continue
		}
		if err != nil {
			return "", err
		}
		s := &standIn{method: c.method, name: c.name, overload: map[int]string{}, forced: map[int]bool{}, okArity: map[int]bool{}}
		if old := byName[s.key()]; old != nil {
			s = old
		}
		byName[s.key()] = s
		if r, ok := s.overload[c.arity]; ok && r != c.result {
			return "", fmt.Errorf("%s: %s with %d arguments is needed as both %s and %s", w.name, c.name, c.arity, r, c.result)
		}
		s.overload[c.arity] = c.result
		s.wrappers = append(s.wrappers, w.name)
		if why != notCompiling {
			s.forced[c.arity] = true
			s.notes = append(s.notes, why)
		}
	}
	for _, c := range okCalls {
		k := c.name
		if c.method {
			k = "->" + k
		}
		if s := byName[k]; s != nil {
			s.okArity[c.arity] = true
		}
	}
	keys := make([]string, 0, len(byName))
	for k, s := range byName {
		if byName[s.name] != nil && byName["->"+s.name] != nil {
			return "", fmt.Errorf("%s gets stand-ins both as a function and as a method; one macro cannot serve both", s.name)
		}
		s.okAny = regexp.MustCompile(`\b` + regexp.QuoteMeta(s.name) + `\(`).MatchString(strings.Join(other, "\n"))
		for a := range s.forced {
			if s.okArity[a] || s.okAny {
				return "", fmt.Errorf("%s: compiling code also calls %s with %d arguments; the stand-in cannot be told apart", strings.Join(s.wrappers, ", "), s.name, a)
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)

	var b strings.Builder
	fmt.Fprintf(&b, `// Code generated by plugin/libtorch/gencompat for %s; DO NOT EDIT.
// Regenerate: make compat-header (see plugin/libtorch/README.md).
//
// gotch v0.9.1's wrappers were generated for libtorch 2.1; %d of them do not
// compile against %s, or compile but call an operator whose signature changed.
// For each function or at::Tensor method they call, a macro routes the call to
// torch::gotch_compat, where a stand-in throws (gotch's PROTECT turns that into
// the op's Go error). Where compiling wrappers call the same name, a forwarding
// template makes exactly the original call for every argument count they use;
// the stand-in's catch-all parameters rank below any real overload.
#ifndef RERANK_GOTCH_COMPAT_H
#define RERANK_GOTCH_COMPAT_H
#ifdef __cplusplus
`, label, len(failing), label)
	seen := map[string]bool{}
	for _, inc := range append(includes, "stdexcept", "string", "tuple", "type_traits", "utility", "vector") {
		if !seen[inc] {
			seen[inc] = true
			fmt.Fprintf(&b, "#include <%s>\n", inc)
		}
	}
	fmt.Fprintf(&b, `
namespace torch {
namespace gotch_compat {

// Converts from anything through a user-defined conversion: ranks below any real overload.
struct any_arg {
  template <class T> any_arg(T &&) {}
};

[[noreturn]] inline void unavailable(const char *op) {
  throw std::runtime_error(std::string(op) + " is not available in %s (gotch compatibility stand-in)");
}
`, label)
	var macros strings.Builder
	for _, k := range keys {
		s := byName[k]
		fmt.Fprintf(&b, "\n// %s\n", strings.Join(s.wrappers, ", "))
		for _, n := range s.notes {
			fmt.Fprintf(&b, "// %s\n", n)
		}
		arities := make([]int, 0, len(s.overload))
		for a := range s.overload {
			arities = append(arities, a)
		}
		sort.Ints(arities)
		fn, what := s.name, s.name
		if s.method {
			fn, what = "m_"+s.name, "Tensor::"+s.name
		}
		if len(s.okArity) > 0 || s.okAny {
			// Argument counts only stand-ins use never reach the real function.
			var excl []string
			for _, a := range arities {
				if !s.okArity[a] && !s.okAny {
					excl = append(excl, fmt.Sprintf("sizeof...(A) != %d", a))
				}
			}
			tmpl := "class... A"
			if s.method {
				tmpl = "class T, class... A"
			}
			if len(excl) > 0 {
				tmpl += ", std::enable_if_t<(" + strings.Join(excl, " && ") + "), int> = 0"
			}
			if s.method {
				fmt.Fprintf(&b, "template <%s> auto %s(T &t, A &&...a) -> decltype(t.%s(std::forward<A>(a)...)) {\n  return t.%s(std::forward<A>(a)...);\n}\n", tmpl, fn, s.name, s.name)
			} else {
				fmt.Fprintf(&b, "template <%s> auto %s(A &&...a) -> decltype(::torch::%s(std::forward<A>(a)...)) {\n  return ::torch::%s(std::forward<A>(a)...);\n}\n", tmpl, fn, s.name, s.name)
			}
		}
		for _, a := range arities {
			params := make([]string, 0, a+1)
			if s.method {
				params = append(params, "const at::Tensor &")
			}
			for i := 0; i < a; i++ {
				params = append(params, "any_arg")
			}
			fmt.Fprintf(&b, "inline %s %s(%s) { unavailable(%q); }\n", s.overload[a], fn, strings.Join(params, ", "), what)
		}
		if s.method {
			// A macro cannot reach the object before `->`; gotch's wrappers always
			// call methods on `self`, and the conditional (both arms the same call)
			// turns `self->name(args)` into one expression.
			fmt.Fprintf(&macros, "#define %s(...) defined() ? ::torch::gotch_compat::%s(*self __VA_OPT__(,) __VA_ARGS__) : ::torch::gotch_compat::%s(*self __VA_OPT__(,) __VA_ARGS__)\n", s.name, fn, fn)
		} else {
			fmt.Fprintf(&macros, "#define %s(...) gotch_compat::%s(__VA_ARGS__)\n", s.name, fn)
		}
	}
	b.WriteString("\n} // namespace gotch_compat\n} // namespace torch\n\n")
	b.WriteString(macros.String())
	b.WriteString("\n#endif // __cplusplus\n#endif // RERANK_GOTCH_COMPAT_H\n")
	return b.String(), nil
}
