#include "vectors.hpp"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>

#include "core/numeric.hpp"
#include "testing.hpp"

namespace llmk_test {
namespace {

struct Npy {
  std::string descr;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Reads a numpy format 1.0 array: only the descr and shape of the header matter here.
Npy read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  char magic[8];
  in.read(magic, 8);
  if (std::memcmp(magic, "\x93NUMPY\x01\x00", 8) != 0)
    throw std::runtime_error("not npy 1.0: " + path);
  uint8_t len_bytes[2];
  in.read(reinterpret_cast<char*>(len_bytes), 2);
  std::string header(len_bytes[0] | (len_bytes[1] << 8), '\0');
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  Npy npy;
  const size_t d = header.find("'descr': '") + 10;
  npy.descr = header.substr(d, header.find('\'', d) - d);
  const size_t s = header.find("'shape': (") + 10;
  std::stringstream dims(header.substr(s, header.find(')', s) - s));
  for (std::string dim; std::getline(dims, dim, ',');) {
    if (dim.find_first_not_of(' ') != std::string::npos) npy.shape.push_back(std::stoll(dim));
  }
  npy.bytes.assign(std::istreambuf_iterator<char>(in), {});
  return npy;
}

std::vector<int64_t> parse_ints(const std::string& text) {
  std::vector<int64_t> values;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) values.push_back(std::stoll(item));
  return values;
}

// One tensor role of a case: its view into a backing buffer. Buffers are llmk_malloc'd, one per
// role that names a file or is an output; a role `@S` views S's buffer.
struct Role {
  llmk_tensor view{};
  std::string buffer;  // the role whose buffer this view is in (itself, or S for `@S`)
  int64_t offset = 0;  // elements from the buffer's start to the view's first element
};

struct Buffer {
  void* data = nullptr;
  size_t element = 0;
  std::vector<uint8_t> initial;  // the bytes before the op
};

// Buffer elements of a view's elements, in C order of the view.
std::vector<int64_t> view_offsets(const Role& role) {
  const llmk_tensor& v = role.view;
  const int64_t count = llmk_test::numel(v);
  std::vector<int64_t> offsets(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    int64_t offset = role.offset, rest = i;
    for (int d = v.ndim - 1; d >= 0; --d) {
      offset += rest % v.shape[d] * v.strides[d];
      rest /= v.shape[d];
    }
    offsets[static_cast<size_t>(i)] = offset;
  }
  return offsets;
}

// Checks view `name` of a buffer's contents `after` against `expected`; marks its elements.
std::string check_view(const Role& role, const std::vector<uint8_t>& after, size_t element,
                       const Npy& expected, double rtol, double atol, const std::string& name,
                       std::vector<bool>& checked) {
  const std::vector<int64_t> offsets = view_offsets(role);
  if (expected.bytes.size() != offsets.size() * 8) {
    return name + ": expected array has the wrong size";
  }
  const auto* want = reinterpret_cast<const double*>(expected.bytes.data());
  std::ostringstream problems;
  int64_t bad = 0;
  for (size_t i = 0; i < offsets.size(); ++i) {
    checked[static_cast<size_t>(offsets[i])] = true;
    const double got = element_to_double(role.view.dtype, after.data() + offsets[i] * element);
    // An expected infinity (lse of a query with no visible key) matches only itself.
    const bool match =
        std::isinf(want[i])
            ? got == want[i]
            : std::isfinite(got) && std::fabs(got - want[i]) <= atol + rtol * std::fabs(want[i]);
    if (!match) {
      if (bad++ < 3)
        problems << name << "[" << i << "] = " << got << ", expected " << want[i] << "; ";
    }
  }
  if (bad == 0) return "";
  problems << bad << " of " << offsets.size() << " elements off (rtol " << rtol << ", atol " << atol
           << ")";
  return problems.str();
}

int32_t activation_from_name(const std::string& name) {
  static const std::map<std::string, int32_t> kNames = {{"identity", LLMK_ACTIVATION_IDENTITY},
                                                        {"gelu", LLMK_ACTIVATION_GELU},
                                                        {"gelu_tanh", LLMK_ACTIVATION_GELU_TANH},
                                                        {"silu", LLMK_ACTIVATION_SILU},
                                                        {"relu", LLMK_ACTIVATION_RELU}};
  return kNames.at(name);
}

int32_t matmul_path_from_name(const std::string& name) {
  static const std::map<std::string, int32_t> kNames = {{"auto", LLMK_MATMUL_PATH_AUTO},
                                                        {"cublaslt", LLMK_MATMUL_PATH_CUBLASLT},
                                                        {"gemv", LLMK_MATMUL_PATH_GEMV}};
  return kNames.at(name);
}

int32_t rope_style_from_name(const std::string& name) {
  static const std::map<std::string, int32_t> kNames = {{"neox", LLMK_ROPE_NEOX},
                                                        {"gptj", LLMK_ROPE_GPTJ}};
  return kNames.at(name);
}

// The tensor roles of each op, in the C argument order.
const std::map<std::string, std::vector<std::string>>& op_roles() {
  static const std::map<std::string, std::vector<std::string>> kRoles = {
      {"rms_norm", {"x", "weight", "y"}},
      {"add_rms_norm", {"x", "residual", "weight", "y"}},
      {"layer_norm", {"x", "weight", "bias", "y"}},
      {"bias_activation", {"x", "bias", "y"}},
      {"gated_activation", {"gate", "up", "y"}},
      {"rope", {"positions", "q", "k", "cos_sin_cache"}},
      {"embedding", {"ids", "table", "y"}},
      {"kv_cache_write", {"k", "v", "cache_seqlens", "k_cache", "v_cache"}},
      {"paged_kv_cache_write", {"k", "v", "slot_mapping", "k_cache", "v_cache"}},
      {"adamw_step", {"param", "grad", "exp_avg", "exp_avg_sq"}},
      {"matmul", {"a", "b", "c", "bias", "d"}},
      {"ffn", {"x", "w1", "b1", "w2", "b2", "y"}},
      {"gated_mlp", {"x", "w_gate", "w_up", "w_down", "y"}},
      {"attention", {"q", "k", "v", "o", "lse"}},
      {"attention_varlen", {"q", "k", "v", "cu_seqlens_q", "cu_seqlens_k", "o", "lse"}},
  };
  return kRoles;
}

// Calls the op of case `c` with the given tensors (NULL for an absent role). An op that takes a
// workspace gets it from `workspace(bytes)`: memory of the context that the caller frees after the
// op has finished.
llmk_status call_op(llmk_context* ctx, const VectorCase& c,
                    const std::function<const llmk_tensor*(const char*)>& tensor,
                    const std::function<void*(size_t)>& workspace) {
  const std::string& op = c.get("op");
  auto number = [&](const char* key) { return std::stod(c.get(key)); };
  if (op == "rms_norm") {
    return llmk_rms_norm(ctx, tensor("x"), tensor("weight"), static_cast<float>(number("eps")),
                         tensor("y"), nullptr);
  }
  if (op == "add_rms_norm") {
    return llmk_add_rms_norm(ctx, tensor("x"), tensor("residual"), tensor("weight"),
                             static_cast<float>(number("eps")), tensor("y"), nullptr);
  }
  if (op == "layer_norm") {
    return llmk_layer_norm(ctx, tensor("x"), tensor("weight"), tensor("bias"),
                           static_cast<float>(number("eps")), tensor("y"), nullptr);
  }
  if (op == "bias_activation") {
    const auto activation = static_cast<llmk_activation>(activation_from_name(c.get("activation")));
    return llmk_bias_activation(ctx, tensor("x"), tensor("bias"), activation, tensor("y"), nullptr);
  }
  if (op == "gated_activation") {
    const auto activation = static_cast<llmk_activation>(activation_from_name(c.get("activation")));
    return llmk_gated_activation(ctx, tensor("gate"), tensor("up"), activation, tensor("y"),
                                 nullptr);
  }
  if (op == "rope") {
    llmk_rope_config config;
    llmk_rope_config_init(&config);
    if (c.has("style")) config.style = rope_style_from_name(c.get("style"));
    if (c.has("rotary_dim")) config.rotary_dim = static_cast<int32_t>(number("rotary_dim"));
    if (c.has("theta")) config.theta = number("theta");
    if (c.has("llama3_factor")) config.llama3_factor = number("llama3_factor");
    if (c.has("llama3_low_freq_factor"))
      config.llama3_low_freq_factor = number("llama3_low_freq_factor");
    if (c.has("llama3_high_freq_factor"))
      config.llama3_high_freq_factor = number("llama3_high_freq_factor");
    if (c.has("llama3_original_max_position"))
      config.llama3_original_max_position = number("llama3_original_max_position");
    return llmk_rope(ctx, &config, tensor("positions"), tensor("q"), tensor("k"),
                     tensor("cos_sin_cache"), nullptr);
  }
  if (op == "embedding") {
    return llmk_embedding(ctx, tensor("ids"), tensor("table"), tensor("y"), nullptr);
  }
  if (op == "kv_cache_write") {
    return llmk_kv_cache_write(ctx, tensor("k"), tensor("v"), tensor("cache_seqlens"),
                               tensor("k_cache"), tensor("v_cache"), nullptr);
  }
  if (op == "paged_kv_cache_write") {
    return llmk_paged_kv_cache_write(ctx, tensor("k"), tensor("v"), tensor("slot_mapping"),
                                     tensor("k_cache"), tensor("v_cache"), nullptr);
  }
  if (op == "adamw_step") {
    llmk_adamw_config config;
    llmk_adamw_config_init(&config);
    if (c.has("lr")) config.lr = number("lr");
    if (c.has("beta1")) config.beta1 = number("beta1");
    if (c.has("beta2")) config.beta2 = number("beta2");
    if (c.has("eps")) config.eps = number("eps");
    if (c.has("weight_decay")) config.weight_decay = number("weight_decay");
    if (c.has("step")) config.step = std::stoll(c.get("step"));
    return llmk_adamw_step(ctx, &config, tensor("param"), tensor("grad"), tensor("exp_avg"),
                           tensor("exp_avg_sq"), nullptr);
  }
  if (op == "matmul") {
    llmk_matmul_config config;
    llmk_matmul_config_init(&config);
    if (c.has("alpha")) config.alpha = static_cast<float>(number("alpha"));
    if (c.has("beta")) config.beta = static_cast<float>(number("beta"));
    if (c.has("activation")) config.activation = activation_from_name(c.get("activation"));
    if (c.has("allow_tf32")) config.allow_tf32 = static_cast<int32_t>(number("allow_tf32"));
    if (c.has("path")) config.path = matmul_path_from_name(c.get("path"));
    return llmk_matmul(ctx, &config, tensor("a"), tensor("b"), tensor("c"), tensor("bias"),
                       tensor("d"), nullptr);
  }
  if (op == "ffn" || op == "gated_mlp") {
    llmk_mlp_config config;
    llmk_mlp_config_init(&config);
    if (c.has("allow_tf32")) config.allow_tf32 = static_cast<int32_t>(number("allow_tf32"));
    if (c.has("path")) config.path = matmul_path_from_name(c.get("path"));
    const auto activation = static_cast<llmk_activation>(activation_from_name(c.get("activation")));
    const bool ffn = op == "ffn";
    size_t bytes = 0;
    const llmk_status sized =
        ffn ? llmk_ffn_workspace_size(ctx, tensor("x"), tensor("w1"), &bytes)
            : llmk_gated_mlp_workspace_size(ctx, tensor("x"), tensor("w_gate"), &bytes);
    if (sized != LLMK_SUCCESS) return sized;
    void* scratch = bytes == 0 ? nullptr : workspace(bytes);
    if (ffn) {
      return llmk_ffn(ctx, &config, tensor("x"), tensor("w1"), tensor("b1"), tensor("w2"),
                      tensor("b2"), activation, scratch, bytes, tensor("y"), nullptr);
    }
    return llmk_gated_mlp(ctx, &config, tensor("x"), tensor("w_gate"), tensor("w_up"),
                          tensor("w_down"), activation, scratch, bytes, tensor("y"), nullptr);
  }
  if (op == "attention" || op == "attention_varlen") {
    llmk_attention_config config;
    llmk_attention_config_init(&config);
    if (c.has("scale")) config.scale = static_cast<float>(number("scale"));
    if (c.has("causal")) config.causal = static_cast<int32_t>(std::stoll(c.get("causal")));
    if (c.has("window_left"))
      config.window_left = static_cast<int32_t>(std::stoll(c.get("window_left")));
    if (c.has("window_right"))
      config.window_right = static_cast<int32_t>(std::stoll(c.get("window_right")));
    if (c.has("softcap")) config.softcap = static_cast<float>(number("softcap"));
    if (c.has("dropout_p")) config.dropout_p = static_cast<float>(number("dropout_p"));
    // Parsed as integers: a float64 would round seeds above 2^53.
    if (c.has("dropout_seed")) config.dropout_seed = std::stoull(c.get("dropout_seed"));
    if (c.has("dropout_offset"))
      config.dropout_offset = static_cast<uint32_t>(std::stoull(c.get("dropout_offset")));
    if (op == "attention") {
      return llmk_attention(ctx, &config, tensor("q"), tensor("k"), tensor("v"), tensor("o"),
                            tensor("lse"), nullptr);
    }
    return llmk_attention_varlen(ctx, &config, tensor("q"), tensor("k"), tensor("v"),
                                 tensor("cu_seqlens_q"), tensor("cu_seqlens_k"),
                                 std::stoll(c.get("max_seqlen_q")), tensor("o"), tensor("lse"),
                                 nullptr);
  }
  throw std::runtime_error("unknown op " + op);
}

}  // namespace

const std::string& VectorCase::get(const std::string& key) const {
  const auto it = fields.find(key);
  if (it == fields.end()) throw std::runtime_error(name + ": no key " + key);
  return it->second;
}

std::string test_identifier(const VectorCase& c) {
  std::string name = c.name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

std::string vectors_dir() {
  const char* env = std::getenv("LLMK_VECTORS_DIR");
  return env != nullptr ? env : LLMK_SOURCE_VECTORS_DIR;
}

std::vector<VectorCase> load_manifest(const std::string& dir) {
  std::ifstream in(dir + "/manifest.txt");
  if (!in) throw std::runtime_error("cannot open " + dir + "/manifest.txt");
  std::vector<VectorCase> cases;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    VectorCase c;
    std::stringstream tokens(line);
    for (std::string token; tokens >> token;) {
      const size_t eq = token.find('=');
      c.fields[token.substr(0, eq)] = token.substr(eq + 1);
    }
    c.name = c.get("name");
    cases.push_back(std::move(c));
  }
  return cases;
}

std::vector<std::string> run_vector_case(llmk_context* ctx, const VectorCase& c,
                                         const std::string& dir) {
  const auto roles_of_op = op_roles().find(c.get("op"));
  if (roles_of_op == op_roles().end()) return {c.name + ": unknown op " + c.get("op")};

  std::map<std::string, Role> roles;
  std::map<std::string, Buffer> buffers;
  std::vector<void*> workspaces;  // freed with the buffers
  std::vector<std::string> problems;
  auto must = [&](llmk_status status, const char* what) {
    if (status != LLMK_SUCCESS) {
      throw std::runtime_error(std::string(what) + ": " + llmk_status_string(status) + ": " +
                               llmk_last_error_message());
    }
  };
  try {
    for (const std::string& name : roles_of_op->second) {
      if (!c.has(name + ".shape")) continue;  // an optional tensor left out: NULL
      Role& role = roles[name];
      const std::vector<int64_t> shape = parse_ints(c.get(name + ".shape"));
      const std::vector<int64_t> strides = parse_ints(c.get(name + ".strides"));
      role.view = make_view(nullptr, dtype_from_name(c.get(name + ".dtype")), shape, strides);
      if (c.has(name) && c.get(name)[0] == '@') {
        role.buffer = c.get(name).substr(1);
        if (c.has(name + ".offset")) role.offset = std::stoll(c.get(name + ".offset"));
      } else {
        role.buffer = name;
        Buffer& buffer = buffers[name];
        buffer.element = element_bytes(role.view.dtype);
        buffer.initial = c.has(name) ? read_npy(dir + "/data/" + c.get(name)).bytes
                                     : nan_buffer(role.view.dtype, buffer_elements(role.view));
        if (buffer.initial.size() < buffer_elements(role.view) * buffer.element) {
          throw std::runtime_error(name + ": buffer smaller than its view");
        }
        if (!buffer.initial.empty()) {  // an empty view's data may stay NULL
          must(llmk_malloc(ctx, buffer.initial.size(), &buffer.data), "llmk_malloc");
          must(llmk_memcpy(ctx, buffer.data, buffer.initial.data(), buffer.initial.size(), nullptr),
               "llmk_memcpy");
        }
      }
      const Buffer& buffer = buffers.at(role.buffer);
      role.view.data = static_cast<uint8_t*>(buffer.data) + role.offset * buffer.element;
    }
    must(call_op(
             ctx, c,
             [&](const char* name) -> const llmk_tensor* {
               const auto it = roles.find(name);
               return it == roles.end() ? nullptr : &it->second.view;
             },
             [&](size_t bytes) {
               void* p = nullptr;
               must(llmk_malloc(ctx, bytes, &p), "llmk_malloc (workspace)");
               workspaces.push_back(p);
               return p;
             }),
         c.get("op").c_str());
    must(llmk_synchronize(ctx, nullptr), "llmk_synchronize");

    // Per buffer: the views with an expect. file must match it; every other element (gaps,
    // inputs) must hold its initial bytes.
    for (const auto& [buffer_name, buffer] : buffers) {
      if (buffer.initial.empty()) continue;
      std::vector<uint8_t> after(buffer.initial.size());
      must(llmk_memcpy(ctx, after.data(), buffer.data, after.size(), nullptr), "llmk_memcpy");
      must(llmk_synchronize(ctx, nullptr), "llmk_synchronize");
      std::vector<bool> checked(after.size() / buffer.element, false);
      for (const auto& [name, role] : roles) {
        if (role.buffer != buffer_name || !c.has("expect." + name)) continue;
        const std::string problem = check_view(
            role, after, buffer.element, read_npy(dir + "/data/" + c.get("expect." + name)),
            std::stod(c.get("rtol." + name)), std::stod(c.get("atol." + name)), name, checked);
        if (!problem.empty()) problems.push_back(problem);
      }
      for (size_t e = 0; e < checked.size(); ++e) {
        if (!checked[e] &&
            std::memcmp(after.data() + e * buffer.element,
                        buffer.initial.data() + e * buffer.element, buffer.element) != 0) {
          problems.push_back(buffer_name + ": element " + std::to_string(e) +
                             " outside every output view was written");
          break;
        }
      }
    }
  } catch (const std::exception& e) {
    problems.push_back(e.what());
  }
  for (auto& [name, buffer] : buffers) {
    if (llmk_free(ctx, buffer.data) != LLMK_SUCCESS)
      problems.push_back(name + ": llmk_free failed");
  }
  for (void* p : workspaces) {
    if (llmk_free(ctx, p) != LLMK_SUCCESS) problems.push_back("workspace: llmk_free failed");
  }
  return problems;
}

}  // namespace llmk_test
