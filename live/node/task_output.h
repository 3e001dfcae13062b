// The bound on a RunTask stream's buffer (NodeService.RunTask): a process's stdout/stderr chunks
// wait there while the caller (the head's job driver run, `orrery submit`) reads slower than the
// process writes. Beyond kRunTaskOutputBufferBytes [4 MiB] the oldest chunks are dropped and the
// caller gets, in their place, one stderr chunk
//   "[orrery: N bytes of output dropped (M chunks): the reader is slower than the process]\n"
// The pid and exit messages are never dropped. Memory per running task stays bounded whatever
// the process prints (issue 12.2: `yes` made a node buffer 4.5 GB).
//
// Thread safety: pure.
#pragma once

#include <string>

#include "live/rpc/rpc_util.h"
#include "orrery.pb.h"

namespace orrery::live {

inline constexpr size_t kRunTaskOutputBufferBytes = 4u << 20;

inline StreamWriter<v1::RunTaskReply>::Bound RunTaskOutputBound(
    size_t max_bytes = kRunTaskOutputBufferBytes) {
  StreamWriter<v1::RunTaskReply>::Bound b;
  b.max_bytes = max_bytes;
  b.droppable_bytes = [](const v1::RunTaskReply& m) -> size_t {
    if (m.has_stdout_chunk()) return m.stdout_chunk().size() + 1;
    if (m.has_stderr_chunk()) return m.stderr_chunk().size() + 1;
    return 0;
  };
  b.marker = [](uint64_t chunks, uint64_t bytes) {
    v1::RunTaskReply m;
    m.set_stderr_chunk("[orrery: " + std::to_string(bytes - chunks) + " bytes of output dropped (" +
                       std::to_string(chunks) +
                       " chunks): the reader is slower than the process]\n");
    return m;
  };
  return b;
}

}  // namespace orrery::live
