// The libtorch version the plugin was compiled against (headers) and the one
// it runs with (the loaded library's build configuration): the two differ
// when the environment drifted since the build.
#include <torch/version.h>
#include <ATen/Version.h>

#include <cstdlib>
#include <cstring>
#include <string>

extern "C" const char *rerank_torch_header_version() { return TORCH_VERSION; }

// Returns a malloc'd copy of at::show_config() (the caller frees it), or
// NULL when libtorch throws.
extern "C" char *rerank_torch_config() {
  try {
    std::string s = at::show_config();
    return strdup(s.c_str());
  } catch (...) {
    return nullptr;
  }
}
