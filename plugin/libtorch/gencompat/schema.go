package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A wrapper can compile against another libtorch and still mean something
// else: PyTorch 2.11 swapped _efficient_attention_backward's max_seqlen_k and
// max_seqlen_q (both int), 1.13's batch_norm_backward_elemt takes mean_dy where
// 2.1's takes sum_dy. libtorch's headers carry each operator's schema as a
// comment ("// aten::name.overload(args) -> returns"), so comparing the schemas
// of the libtorch gotch was generated from (2.1.0) with the target's finds them.

// schema is one operator overload's signature in C++ argument order.
type schema struct {
	text   string
	params []param
	ret    string
}

type param struct {
	typ, name string
	def       bool // has a default
}

var schemaLine = regexp.MustCompile(`^\s*// aten::([\w.]+)\((.*)\) -> (.*)$`)

// readSchemas collects the schemas in <inc>/ATen/ops/*.h (functions) and
// <inc>/ATen/core/TensorBody.h (methods), keyed "name.overload".
func readSchemas(inc string) (map[string]schema, error) {
	files, err := filepath.Glob(filepath.Join(inc, "ATen", "ops", "*.h"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no operator headers under %s/ATen/ops", inc)
	}
	files = append(files, filepath.Join(inc, "ATen", "core", "TensorBody.h"))
	out := map[string]schema{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if m := schemaLine.FindStringSubmatch(sc.Text()); m != nil {
				out[m[1]] = parseSchema(m[1], m[2], m[3])
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return out, nil
}

var aliasAnnotation = regexp.MustCompile(`\([^)]*\)`)

func normType(t string) string {
	return strings.ReplaceAll(aliasAnnotation.ReplaceAllString(t, ""), "SymInt", "int")
}

// parseSchema puts the arguments in C++ order: an out= variant's C++ function
// takes its output tensors (keyword-only, mutable) first.
func parseSchema(key, args, ret string) schema {
	s := schema{text: "aten::" + key + "(" + args + ") -> " + ret, ret: normType(ret)}
	var outs []param
	kwOnly := false
	for _, a := range splitTop(args) {
		if a == "*" {
			kwOnly = true
			continue
		}
		decl, _, hasDef := strings.Cut(a, "=")
		decl = strings.TrimSpace(decl)
		i := strings.LastIndex(decl, " ")
		if i < 0 {
			continue
		}
		// A trailing underscore only dodges a C++ keyword (from_).
		p := param{typ: normType(decl[:i]), name: strings.TrimRight(decl[i+1:], "_"), def: hasDef}
		if kwOnly && strings.Contains(decl[:i], "!") {
			outs = append(outs, p)
		} else {
			s.params = append(s.params, p)
		}
	}
	s.params = append(outs, s.params...)
	return s
}

func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// sameCall reports whether a call written for ref means the same with tgt:
// the same arguments in the same places (a T may become an optional T?), any
// new ones at the end with defaults, and the same result.
func sameCall(ref, tgt schema) bool {
	if ref.ret != tgt.ret || len(tgt.params) < len(ref.params) {
		return false
	}
	for i, r := range ref.params {
		t := tgt.params[i]
		if r.name != t.name || (r.typ != t.typ && r.typ+"?" != t.typ) {
			return false
		}
	}
	for _, t := range tgt.params[len(ref.params):] {
		if !t.def {
			return false
		}
	}
	return true
}

// wrapperName is the name gotch's generator gives the wrapper of an overload:
// atg_<name>[_<overload>], with an in-place op's underscore moved to the end.
func wrapperName(key string) string {
	name, ov, _ := strings.Cut(key, ".")
	switch {
	case ov == "":
	case strings.HasSuffix(name, "_") && !strings.HasSuffix(name, "__"):
		name = strings.TrimSuffix(name, "_") + "_" + ov + "_"
	default:
		name += "_" + ov
	}
	return "atg_" + strings.ToLower(name)
}

// changedWrappers returns the wrappers whose operator's schema differs
// between ref and tgt (or is gone from tgt), with the two schemas.
func changedWrappers(ws []*wrapper, ref, tgt map[string]schema) map[string]string {
	byWrapper := map[string]string{}
	for key := range ref {
		byWrapper[wrapperName(key)] = key
	}
	out := map[string]string{}
	for _, w := range ws {
		key, ok := byWrapper[w.name]
		if !ok {
			continue
		}
		t, ok := tgt[key]
		switch {
		case !ok:
			out[w.name] = "gone: " + ref[key].text
		case !sameCall(ref[key], t):
			out[w.name] = "changed: " + ref[key].text + "  =>  " + t.text
		}
	}
	return out
}
