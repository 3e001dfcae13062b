// StreamFileChunks: serve a file over a server stream with flow control (issue 12.3). The next
// chunk is read only when the previous one has been written (StreamWriter::SetOnDrained), so a
// stream holds at most one chunk in memory however slowly, or never, its client reads; the file
// is closed and the chunk freed as soon as the stream ends (done, canceled or broken).
//
// Used by HeadService.DownloadPackage (live/head/package_store.cc) and NodeService.FetchObject.
// Thread safety: the reads run on `io` (blocking disk work off gRPC's threads); the writer's
// callbacks only post to it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "live/rpc/event_loop.h"
#include "live/rpc/rpc_util.h"

namespace orrery::live {

// Builds one message of the stream from a chunk of the file: `first` is true for the first
// message (which carries the total size by convention), `total` is the file's size.
template <typename Msg>
using MakeChunk = std::function<Msg(std::string_view data, bool first, uint64_t total)>;

// Streams the file at `path` over `w` in chunks of at most `chunk_bytes` (a file of 0 bytes is
// one empty chunk), then closes `w` OK. If the file cannot be opened, closes `w` with
// `not_found`. REQUIRES: called on `io`; `io` outlives the stream.
template <typename Msg>
void StreamFileChunks(std::shared_ptr<StreamWriter<Msg>> w, EventLoop& io, const std::string& path,
                      size_t chunk_bytes, MakeChunk<Msg> make, grpc::Status not_found) {
  // The producer: owned by the writer's drained callback (and by reads posted to `io`), and
  // holding the writer only weakly, so the writer's end releases it (and the file) at once.
  struct Producer {
    std::weak_ptr<StreamWriter<Msg>> writer;
    EventLoop* io;
    std::ifstream in;
    uint64_t total = 0;
    uint64_t sent = 0;
    size_t chunk_bytes;
    MakeChunk<Msg> make;

    void SendNext() {
      auto w = writer.lock();
      if (!w || w->done()) return;
      std::string buf(static_cast<size_t>(std::min<uint64_t>(chunk_bytes, total - sent)), '\0');
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      if (static_cast<size_t>(in.gcount()) != buf.size()) {
        w->Close(grpc::Status(grpc::StatusCode::DATA_LOSS, "the file shrank while being sent"));
        return;
      }
      const bool first = sent == 0;
      sent += buf.size();
      w->Push(make(buf, first, total));
      if (sent >= total) w->Close(grpc::Status::OK);
    }
  };
  auto p = std::make_shared<Producer>();
  p->in.open(path, std::ios::binary | std::ios::ate);
  if (!p->in) {
    w->Close(std::move(not_found));
    return;
  }
  p->total = static_cast<uint64_t>(p->in.tellg());
  p->in.seekg(0);
  p->writer = w;
  p->io = &io;
  p->chunk_bytes = chunk_bytes;
  p->make = std::move(make);
  w->SetOnDrained([p] { p->io->Post([p] { p->SendNext(); }); });
  p->SendNext();
}

}  // namespace orrery::live
