#include "vectors.hpp"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
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

// One tensor role of a case: its view, and the llmk_malloc'd backing buffer.
struct Role {
  llmk_tensor view{};
  void* buffer = nullptr;
  std::vector<uint8_t> initial;  // the buffer's bytes before the op
  bool owned = false;            // false for aliases
};

std::string check_role(const Role& role, const std::vector<uint8_t>& after, const Npy& expected,
                       double rtol, double atol, const std::string& name) {
  const llmk_tensor& v = role.view;
  const size_t element = llmk_dtype_bits(static_cast<llmk_dtype>(v.dtype)) / 8;
  std::vector<bool> in_view(after.size() / element, false);
  const int64_t count = llmk_test::numel(v);
  if (expected.bytes.size() != static_cast<size_t>(count) * 8) {
    return name + ": expected array has the wrong size";
  }
  const auto* want = reinterpret_cast<const double*>(expected.bytes.data());
  std::ostringstream problems;
  int64_t bad = 0;
  for (int64_t i = 0; i < count; ++i) {
    int64_t offset = 0, rest = i;
    for (int d = v.ndim - 1; d >= 0; --d) {
      offset += rest % v.shape[d] * v.strides[d];
      rest /= v.shape[d];
    }
    in_view[offset] = true;
    const double got = element_to_double(v.dtype, after.data() + offset * element);
    if (!(std::isfinite(got) && std::fabs(got - want[i]) <= atol + rtol * std::fabs(want[i]))) {
      if (bad++ < 3)
        problems << name << "[" << i << "] = " << got << ", expected " << want[i] << "; ";
    }
  }
  // Gap elements: untouched. Fresh outputs started as NaN, inputs as their file contents.
  for (size_t e = 0; e < in_view.size(); ++e) {
    if (!in_view[e] &&
        std::memcmp(after.data() + e * element, role.initial.data() + e * element, element) != 0) {
      problems << name << ": gap element " << e << " was written; ";
      ++bad;
      break;
    }
  }
  if (bad == 0) return "";
  problems << bad << " of " << count << " elements off (rtol " << rtol << ", atol " << atol << ")";
  return problems.str();
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
  static const std::map<std::string, std::vector<std::string>> kRoles = {
      {"rms_norm", {"x", "weight", "y"}},
      {"add_rms_norm", {"x", "residual", "weight", "y"}},
      {"layer_norm", {"x", "weight", "bias", "y"}},
  };
  const std::string& op = c.get("op");
  const auto roles_of_op = kRoles.find(op);
  if (roles_of_op == kRoles.end()) return {c.name + ": unknown op " + op};

  std::map<std::string, Role> roles;
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
      if (c.has(name) && c.get(name)[0] == '@') {
        role = roles.at(c.get(name).substr(1));
        role.owned = false;
        continue;
      }
      const std::vector<int64_t> shape = parse_ints(c.get(name + ".shape"));
      const std::vector<int64_t> strides = parse_ints(c.get(name + ".strides"));
      role.view.dtype = dtype_from_name(c.get(name + ".dtype"));
      role.view.ndim = static_cast<int32_t>(shape.size());
      for (size_t d = 0; d < shape.size(); ++d) {
        role.view.shape[d] = shape[d];
        role.view.strides[d] = strides[d];
      }
      const size_t element = llmk_dtype_bits(static_cast<llmk_dtype>(role.view.dtype)) / 8;
      if (c.has(name)) {
        role.initial = read_npy(dir + "/data/" + c.get(name)).bytes;
      } else {
        role.initial = nan_buffer(role.view.dtype, buffer_elements(role.view));
      }
      if (role.initial.size() != buffer_elements(role.view) * element) {
        throw std::runtime_error(name + ": buffer size does not match its view");
      }
      must(llmk_malloc(ctx, role.initial.size(), &role.buffer), "llmk_malloc");
      role.owned = true;
      role.view.data = role.buffer;
      must(llmk_memcpy(ctx, role.buffer, role.initial.data(), role.initial.size(), nullptr),
           "llmk_memcpy");
    }
    auto tensor = [&](const char* name) -> const llmk_tensor* {
      const auto it = roles.find(name);
      return it == roles.end() ? nullptr : &it->second.view;
    };
    const float eps = static_cast<float>(std::stod(c.get("eps")));
    llmk_status status;
    if (op == "rms_norm") {
      status = llmk_rms_norm(ctx, tensor("x"), tensor("weight"), eps, tensor("y"), nullptr);
    } else if (op == "add_rms_norm") {
      status = llmk_add_rms_norm(ctx, tensor("x"), tensor("residual"), tensor("weight"), eps,
                                 tensor("y"), nullptr);
    } else {
      status = llmk_layer_norm(ctx, tensor("x"), tensor("weight"), tensor("bias"), eps, tensor("y"),
                               nullptr);
    }
    must(status, op.c_str());
    must(llmk_synchronize(ctx, nullptr), "llmk_synchronize");

    for (const auto& [name, role] : roles) {
      if (!c.has("expect." + name)) continue;
      std::vector<uint8_t> after(role.initial.size());
      must(llmk_memcpy(ctx, after.data(), role.view.data, after.size(), nullptr), "llmk_memcpy");
      must(llmk_synchronize(ctx, nullptr), "llmk_synchronize");
      const std::string problem =
          check_role(role, after, read_npy(dir + "/data/" + c.get("expect." + name)),
                     std::stod(c.get("rtol." + name)), std::stod(c.get("atol." + name)), name);
      if (!problem.empty()) problems.push_back(problem);
    }
  } catch (const std::exception& e) {
    problems.push_back(e.what());
  }
  for (auto& [name, role] : roles) {
    if (role.owned && llmk_free(ctx, role.buffer) != LLMK_SUCCESS) {
      problems.push_back(name + ": llmk_free failed");
    }
  }
  return problems;
}

}  // namespace llmk_test
