// ObjectStore: a node daemon's local object store. Objects are files named by their id in one
// directory (the node's session/objects dir, or a private temp dir); an object exists once its
// file does: writers write `<id>.part` and rename it into place, so a reader never sees half an
// object. Producing tasks (pooled workers) write their output here; FetchObject serves it to
// other nodes, which write what they fetch into their own store.
//
// Ids are restricted to [A-Za-z0-9._-] (no path can escape the directory), 1..200 characters.
//
// Thread safety: every method is thread-safe (the file system is the synchronisation).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "core/status.h"

namespace orrery::live {

class ObjectStore {
 public:
  // Uses `dir` (created if missing, mode 0700), or a fresh private directory in the system temp
  // dir ($TMPDIR, else /tmp) when `dir`
  // is empty. With `remove_on_close`, the destructor deletes the directory and its objects.
  static StatusOr<std::unique_ptr<ObjectStore>> Open(const std::filesystem::path& dir,
                                                     bool remove_on_close);
  ~ObjectStore();

  // InvalidArgument naming `field` unless `id` is a valid object id.
  static Status ValidateId(const std::string& id, const std::string& field);

  const std::filesystem::path& dir() const { return dir_; }
  // Where object `id` lives (whether or not it exists). REQUIRES: ValidateId(id) ok.
  std::filesystem::path PathOf(const std::string& id) const { return dir_ / id; }
  // The object's size, or NotFound.
  StatusOr<uint64_t> Size(const std::string& id) const;
  bool Contains(const std::string& id) const { return Size(id).ok(); }
  // Creates object `id` of `bytes` (a repeating pattern), replacing any old one. Blocks for the
  // write; call off the state loop.
  Status WriteSynthetic(const std::string& id, uint64_t bytes);

 private:
  ObjectStore(std::filesystem::path dir, bool remove) : dir_(std::move(dir)), remove_(remove) {}
  std::filesystem::path dir_;
  bool remove_ = false;
};

// Writes `bytes` of a repeating pattern to `path` through `path.part` and a rename. Also used by
// the PRODUCE workload inside a worker process.
Status WriteObjectFile(const std::filesystem::path& path, uint64_t bytes);

}  // namespace orrery::live
