// The argument and result codec of the C++ client API: a small, explicit binary format.
//
// Supported types (anything else is a compile-time error naming this list):
//   - arithmetic types (bool, char, the integer types, float, double): fixed width, the host's
//     byte order (driver and workers run the same build on the same architecture);
//   - std::string: a uint64 length, then the bytes;
//   - std::vector<T> of a supported T: a uint64 count, then the elements.
// An argument tuple is the concatenation of its elements' encodings; a void result is empty.
// Decoding checks every length against the remaining bytes and throws CodecError on a short or
// oversized buffer (the worker turns that into a failed task, never a crash).
//
// Thread safety: stateless functions.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace orrery::api {

struct CodecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads encodings front to back from a buffer it does not own.
class CodecReader {
 public:
  explicit CodecReader(std::string_view in) : in_(in) {}
  // The next `n` bytes. Throws CodecError if fewer are left.
  std::string_view Take(size_t n) {
    if (n > in_.size()) throw CodecError("codec: buffer too short");
    std::string_view out = in_.substr(0, n);
    in_.remove_prefix(n);
    return out;
  }
  size_t remaining() const { return in_.size(); }

 private:
  std::string_view in_;
};

template <typename T>
inline constexpr bool kCodecUnsupported = false;

// Codec<T>: static void Encode(std::string* out, const T&); static T Decode(CodecReader*).
template <typename T, typename Enable = void>
struct Codec {
  static_assert(kCodecUnsupported<T>,
                "orrery::api: unsupported argument or result type. Supported: arithmetic types, "
                "std::string, and std::vector of a supported type (see live/api/codec.h)");
};

template <typename T>
struct Codec<T, std::enable_if_t<std::is_arithmetic_v<T>>> {
  static void Encode(std::string* out, const T& v) {
    char buf[sizeof(T)];
    std::memcpy(buf, &v, sizeof(T));
    out->append(buf, sizeof(T));
  }
  static T Decode(CodecReader* in) {
    T v;
    std::memcpy(&v, in->Take(sizeof(T)).data(), sizeof(T));
    return v;
  }
};

template <>
struct Codec<std::string> {
  static void Encode(std::string* out, const std::string& v) {
    Codec<uint64_t>::Encode(out, v.size());
    out->append(v);
  }
  static std::string Decode(CodecReader* in) {
    const uint64_t n = Codec<uint64_t>::Decode(in);
    if (n > in->remaining()) throw CodecError("codec: string longer than the buffer");
    return std::string(in->Take(n));
  }
};

template <typename T>
struct Codec<std::vector<T>> {
  static void Encode(std::string* out, const std::vector<T>& v) {
    Codec<uint64_t>::Encode(out, v.size());
    if constexpr (std::is_same_v<T, bool>) {
      for (bool b : v) Codec<bool>::Encode(out, b);
    } else {
      for (const T& e : v) Codec<T>::Encode(out, e);
    }
  }
  static std::vector<T> Decode(CodecReader* in) {
    const uint64_t n = Codec<uint64_t>::Decode(in);
    // Every element takes at least one byte: a count beyond the buffer is corrupt.
    if (n > in->remaining()) throw CodecError("codec: vector longer than the buffer");
    std::vector<T> v;
    v.reserve(n);
    for (uint64_t i = 0; i < n; ++i) v.push_back(Codec<T>::Decode(in));
    return v;
  }
};

// The argument tuple of a call with parameter types Ps (decayed), encoded from `args`.
template <typename... Ps, typename... As>
std::string EncodeArgs(As&&... args) {
  static_assert(sizeof...(Ps) == sizeof...(As), "orrery::api: wrong number of arguments");
  std::string out;
  (Codec<Ps>::Encode(&out, static_cast<Ps>(std::forward<As>(args))), ...);
  return out;
}

// Decodes a tuple of Ps; throws CodecError on malformed input or trailing bytes.
template <typename... Ps>
std::tuple<Ps...> DecodeArgs(std::string_view bytes) {
  CodecReader in(bytes);
  // Braced initialisation evaluates left to right.
  std::tuple<Ps...> t{Codec<Ps>::Decode(&in)...};
  if (in.remaining() != 0) throw CodecError("codec: trailing bytes after the arguments");
  return t;
}

template <typename T>
std::string EncodeValue(const T& v) {
  std::string out;
  Codec<T>::Encode(&out, v);
  return out;
}

template <typename T>
T DecodeValue(std::string_view bytes) {
  CodecReader in(bytes);
  T v = Codec<T>::Decode(&in);
  if (in.remaining() != 0) throw CodecError("codec: trailing bytes after the value");
  return v;
}

}  // namespace orrery::api
