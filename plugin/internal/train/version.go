package train

/*
#include <stdlib.h>
const char *rerank_torch_header_version();
char *rerank_torch_config();
*/
import "C"

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// Versions is what a training run records about its environment (the
// guide's "version mismatch" and "environment drift" failures).
type Versions struct {
	Go    string `json:"go"`
	Gotch string `json:"gotch"`
	// TorchHeaders is TORCH_VERSION of the headers compiled against;
	// TorchRuntime the version the loaded library reports, and TorchLibrary
	// the file it was loaded from.
	TorchHeaders string `json:"libtorch_headers"`
	TorchRuntime string `json:"libtorch_runtime"`
	TorchLibrary string `json:"libtorch_library"`
	BLAS         string `json:"blas"`
	Binary       string `json:"binary"`
	Device       string `json:"device"`
}

var configField = regexp.MustCompile(`\b(TORCH_VERSION|BLAS_INFO)=([^,\s]+)`)

func readVersions(device string) Versions {
	v := Versions{TorchHeaders: C.GoString(C.rerank_torch_header_version()), Device: device, Gotch: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v.Go = bi.GoVersion
		for _, d := range bi.Deps {
			if d.Path == "github.com/sugarme/gotch" {
				v.Gotch = d.Version
			}
		}
	}
	if cs := C.rerank_torch_config(); cs != nil {
		for _, m := range configField.FindAllStringSubmatch(C.GoString(cs), -1) {
			if m[1] == "TORCH_VERSION" {
				v.TorchRuntime = m[2]
			} else {
				v.BLAS = m[2]
			}
		}
		C.free(unsafe.Pointer(cs))
	}
	if v.Gotch == "unknown" {
		// Test binaries carry no dependency list; the source path names the version.
		file, _ := runtime.FuncForPC(reflect.ValueOf(ts.NewTensor).Pointer()).FileLine(0)
		if _, after, ok := strings.Cut(file, "gotch@"); ok {
			v.Gotch, _, _ = strings.Cut(after, "/")
		}
	}
	v.Binary, _ = os.Executable()
	v.TorchLibrary = loadedLibrary("libtorch_cpu.so")
	// Which BLAS serves the matrix products matters several times over in
	// speed (OpenBLAS against the reference BLAS).
	if lib := loadedLibrary("libopenblas"); lib != "" {
		v.BLAS += ", loaded " + lib
	} else if lib := loadedLibrary("libblas.so"); lib != "" {
		v.BLAS += ", loaded " + lib
	}
	return v
}

// loadedLibrary finds the file a shared library was mapped from.
func loadedLibrary(name string) string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if n := len(fields); n >= 6 && strings.Contains(fields[n-1], name) {
			return fields[n-1]
		}
	}
	return ""
}
