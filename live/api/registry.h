// The registry of remote functions, actor factories and actor methods of the C++ client API.
//
// ORRERY_REMOTE (orrery_api.h) adds one entry per registered callable when the shared library
// that holds it is loaded: in the driver (which links the library) and in every code worker
// (which dlopen()s it). The registry lives in its own small shared library,
// liborrery_api_registry.so, so the driver, the worker binary and the user's library all see one
// instance per process (a static library would give each module its own copy).
//
// Entries are found by name (the worker executes by name) and by the callable's bytes (the
// driver turns `Task(fn)` into the name). Names are the registration's spelling: `Add`,
// `Counter::Create`, `&Counter::Increment`.
//
// Thread safety: Add() runs during library loading (static initialisation, serialised by the
// dynamic loader); Find/NameOf take a lock and may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace orrery::api::internal {

struct Entry {
  enum class Kind { kFunction, kFactory, kMethod };
  Kind kind = Kind::kFunction;
  std::string name;
  // Runs the call: decodes `args`, calls, and returns the encoded result. For kFactory the new
  // instance is stored in `*instance`; kMethod calls `*instance` (REQUIRES: non-null). Throws what
  // the callable throws, or CodecError.
  std::function<std::string(std::string_view args, std::shared_ptr<void>* instance)> invoke;
};

class Registry {
 public:
  // Registers `e` under e.name and `key` (the callable's bytes). A second registration of a name
  // replaces the first (a library loaded twice registers twice).
  void Add(std::string key, Entry e);
  // nullptr if no entry has that name / key.
  const Entry* Find(const std::string& name) const;
  const Entry* FindByKey(const std::string& key) const;

  struct Impl;
  Registry();
  ~Registry();

 private:
  std::unique_ptr<Impl> impl_;
};

// The process's registry (in liborrery_api_registry.so).
Registry& GlobalRegistry();

}  // namespace orrery::api::internal
